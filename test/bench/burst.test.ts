/**
 * The burst scenario's pure parts (bench/burst.ts): which audio writes fall in a window, how
 * repeated runs combine; and bench/profile-stalls.ts on a made-up CPU profile. The scenario run end
 * to end is in test/bench/smoke.test.ts.
 */
import t from 'tap'
import { combineBurst, type BurstFigures, type LoopDelayWindow } from '../../bench/burst.js'
import { findStalls, type CpuProfile } from '../../bench/profile-stalls.js'
import { audioLatencies } from '../../bench/lib/reports.js'
import { distribution } from '../../bench/lib/stats.js'

t.test('audioLatencies: only writes made within [from, to), each to the arrival holding its last byte', async (t) => {
  // Writes of 320 bytes at 0, 20, 40, 60 ms (the first entry is the UUID frame: no audio yet).
  const writes = { a: [[0, -5], [320, 0], [640, 20], [960, 40], [1280, 60]] as Array<[number, number]> }
  // The stand-in got the first two writes in one message at 25 ms, the rest one by one.
  const standIn = { calls: { a: { wordsProduced: 0, utteranceEnds: [], arrivals: [[640, 25], [960, 41.5], [1280, 63]] as Array<[number, number]> } } }
  t.same(audioLatencies(writes, standIn), [25, 5, 1.5, 3], 'every write, the first two to the same arrival')
  t.same(audioLatencies(writes, standIn, 20, 60), [5, 1.5], 'the window holds its start, not its end')
  t.same(audioLatencies(writes, { calls: {} }, 0, 1000), [], 'a call the stand-in did not sample has none')
})

function window(maxMs: number, p99Ms: number): LoopDelayWindow {
  return { at: 0, count: 3000, p50Ms: 1, p99Ms, maxMs }
}

function burstRun(maxMs: number, audio: number[], words: number): BurstFigures {
  const loopDelay = { steady: window(maxMs / 2, 2), burst: window(maxMs, 4) }
  return {
    target: 'server',
    live: 100,
    burst: 100,
    spreadMs: 1000,
    loopDelay,
    worstLoopDelayMs: maxMs,
    liveAudioMs: { steady: distribution([1]), burst: distribution(audio) },
    cpuMsPerBurstCall: maxMs / 10,
    callsFailed: 0,
    errors: 0,
    wordsProduced: words,
    wordsDelivered: words,
    maxLoadLatenessMs: maxMs,
    runs: 1,
    samples: { steady: [1], burst: audio, loopDelay: [loopDelay] },
  }
}

t.test('combineBurst: median event-loop delays, the worst run kept, latency samples pooled, counts summed', async (t) => {
  const c = combineBurst([burstRun(10, [1, 2], 100), burstRun(40, [3], 200), burstRun(20, [4, 5, 6], 300)])
  t.equal(c.runs, 3)
  t.equal(c.loopDelay.burst.maxMs, 20, 'the median run\'s max')
  t.equal(c.loopDelay.steady.maxMs, 10, 'the median of the steady windows too')
  t.equal(c.worstLoopDelayMs, 40, 'the worst run apart')
  t.equal(c.liveAudioMs.burst.count, 6, 'every latency sample')
  t.equal(c.liveAudioMs.burst.max, 6)
  t.equal(c.wordsProduced, 600)
  t.equal(c.cpuMsPerBurstCall, 2)
  t.equal(c.maxLoadLatenessMs, 40)
  t.throws(() => combineBurst([]), /at least one run/)
})

t.test('findStalls: the longest stretches without an idle sample, with the functions that took them', async (t) => {
  const frame = (functionName: string, url = '') => ({ functionName, url, lineNumber: 0 })
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 3, 5] },
      { id: 2, callFrame: frame('(idle)') },
      { id: 3, callFrame: frame('onData', 'file:///srv/dist/call/call-session.js'), children: [4] },
      { id: 4, callFrame: frame('beginCall', 'file:///srv/dist/call/call-session.js') },
      { id: 5, callFrame: frame('(garbage collector)') },
    ],
    startTime: 0,
    endTime: 100_000,
    // 1 ms apart: idle, 3 ms busy (beginCall, beginCall, GC), idle, 8 ms busy, idle.
    samples: [2, 4, 4, 5, 2, 3, 4, 4, 4, 4, 4, 5, 5, 2],
    timeDeltas: [0, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
  }
  const stalls = findStalls(profile, 5, 3, 2)
  t.equal(stalls.length, 2, 'both busy stretches of 2 ms or more')
  const [longest, second] = stalls
  t.equal(longest?.durationMs, 8, 'the longest first')
  t.equal(longest?.startMs, 5)
  t.same(longest?.functions, [['beginCall dist/call/call-session.js:1', 5], ['(garbage collector)', 2], ['onData dist/call/call-session.js:1', 1]], 'self time by function, largest first')
  t.same(longest?.entries[0], ['onData dist/call/call-session.js:1', 6], 'entered from the frame below the root')
  t.equal(second?.durationMs, 3)
  t.same(findStalls(profile, 5, 3, 5).length, 1, 'stretches shorter than the minimum are left out')
})
