/**
 * bench/run.ts combine() and bench/lib/stats.ts: how repeated benchmark runs become one row.
 * Pure functions; no processes are started.
 */
import t from 'tap'
import { combine, type Figures } from '../../bench/run.js'
import { distribution, median } from '../../bench/lib/stats.js'

function run(cpu: number, rss: number, audio: number[], transcript: number[], words: number, lateness: number): Figures {
  return {
    target: 'server',
    calls: 100,
    cpuPerCallSecond: cpu,
    mainThreadCpuPerCallSecond: cpu / 2,
    wakeupsPerSecond: rss * 10,
    rssPerCallKb: rss,
    audioLatencyMs: distribution(audio),
    transcriptLatencyMs: distribution(transcript),
    wordsProduced: words,
    wordsDelivered: words - 1,
    callsFailed: 0,
    errors: 1,
    maxLoadLatenessMs: lateness,
    runs: 1,
    samples: { audio, transcript },
  }
}

t.test('median', async (t) => {
  t.equal(median([3, 1, 2]), 2, 'odd count: the middle value')
  t.equal(median([4, 1, 3, 2]), 2.5, 'even count: the mean of the two middle values')
  t.ok(Number.isNaN(median([])), 'no values: NaN')
})

t.test('combine: median CPU and RSS, pooled latency samples, summed counts, worst lateness', async (t) => {
  const runs = [
    run(0.002, 300, [1, 2], [5], 10, 3),
    run(0.009, 100, [3], [1, 9], 20, 7),
    run(0.003, 200, [4, 10], [2], 30, 1),
  ]
  const c = combine(runs)
  t.equal(c.cpuPerCallSecond, 0.003, 'a noisy run (0.009) does not move the CPU figure')
  t.equal(c.mainThreadCpuPerCallSecond, 0.0015, 'the main-thread share is the median of its own')
  t.equal(c.rssPerCallKb, 200)
  t.equal(c.wakeupsPerSecond, 2000, 'wake-ups: the median run')
  t.equal(c.audioLatencyMs.count, 5, 'all audio samples pooled')
  t.equal(c.audioLatencyMs.max, 10)
  t.same(c.transcriptLatencyMs, distribution([5, 1, 9, 2]), 'transcript latency over the pooled samples')
  t.equal(c.wordsProduced, 60)
  t.equal(c.wordsDelivered, 57, 'a word lost in any run shows in the sum')
  t.equal(c.errors, 3)
  t.equal(c.maxLoadLatenessMs, 7)
  t.equal(c.runs, 3)
})

t.test('combine: one run is returned as it is; none is an error', async (t) => {
  const one = run(0.002, 300, [1], [1], 10, 3)
  t.equal(combine([one]), one)
  t.throws(() => combine([]), /at least one run/)
})
