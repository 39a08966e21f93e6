/**
 * src/call/silence-keeper.ts on hand-driven time (test/support/fake-timers.ts): which frames go
 * out, exactly when, and how many timer wake-ups it costs.
 */
import t from 'tap'
import { SILENCE_FRAME_MS, SilenceKeeper, type SilenceMode } from '../../src/call/silence-keeper.js'
import { FakeTimers } from '../support/fake-timers.js'

const T0 = 1_000_000
const AFTER_MS = 1000
const SILENCE = Buffer.from('silence-8k')

function rig(mode: SilenceMode, afterMs = AFTER_MS) {
  const timers = new FakeTimers(T0)
  const writes: Array<{ at: number; frame: Buffer }> = []
  const keeper = new SilenceKeeper(
    {
      mode,
      afterMs,
      write: (frame) => writes.push({ at: timers.now(), frame }),
      clock: timers,
    },
    SILENCE,
  )
  /** Caller audio every 20 ms for `ms` (first frame 20 ms from now). */
  const talk = (ms: number): void => {
    for (let elapsed = 0; elapsed < ms; elapsed += SILENCE_FRAME_MS) {
      timers.advance(SILENCE_FRAME_MS)
      keeper.onInboundAudio()
    }
  }
  return { timers, writes, keeper, talk, times: () => writes.map((w) => w.at) }
}

/** `count` times on the 20 ms grid starting at `from`. */
function grid(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, n) => from + n * SILENCE_FRAME_MS)
}

t.test('off: nothing is ever sent, no timer is ever set', async (t) => {
  const r = rig('off')
  r.timers.advance(10_000)
  r.keeper.onInboundAudio()
  r.timers.advance(10_000)
  t.equal(r.writes.length, 0)
  t.equal(r.timers.calls.length, 0)
  t.equal(r.keeper.totalFrames, 0)
})

t.test('gaps', async (t) => {
  t.test('nothing while the caller talks; after afterMs of quiet, a frame exactly every 20 ms', async (t) => {
    const r = rig('gaps')
    r.talk(5000)
    t.equal(r.writes.length, 0, 'no silence while audio arrives every 20 ms')
    const lastAudioAt = r.timers.now()
    r.timers.advance(AFTER_MS - 1)
    t.equal(r.writes.length, 0, 'still nothing 1 ms before afterMs of quiet')
    r.timers.advance(1 + 10 * SILENCE_FRAME_MS)
    t.strictSame(r.times(), grid(lastAudioAt + AFTER_MS, 11), 'first frame at last audio + afterMs, then every 20 ms')
    t.ok(r.writes.every((w) => w.frame === SILENCE), 'the silence frame given')
    t.equal(r.keeper.totalFrames, 11)
  })

  t.test('from the start of the call when no audio ever comes', async (t) => {
    const r = rig('gaps')
    r.timers.advance(AFTER_MS + 3 * SILENCE_FRAME_MS)
    t.strictSame(r.times(), grid(T0 + AFTER_MS, 4))
  })

  t.test('onInboundAudio stops them; quiet again restarts them afterMs later', async (t) => {
    const r = rig('gaps')
    r.timers.advance(AFTER_MS + 100) // 6 frames
    t.equal(r.writes.length, 6)
    r.timers.advance(5)
    r.keeper.onInboundAudio()
    const resumedAt = r.timers.now()
    t.equal(r.timers.pending, 1, 'the pacer is gone; only the watchdog is left')
    r.talk(2000)
    t.equal(r.writes.length, 6, 'no silence while audio flows again')
    const lastAudioAt = r.timers.now()
    r.timers.advance(AFTER_MS + 40)
    t.strictSame(r.times().slice(6), grid(lastAudioAt + AFTER_MS, 3), 'restart afterMs after the last audio frame')
    t.ok(lastAudioAt > resumedAt)
  })

  t.test('the watchdog does not re-arm per frame', async (t) => {
    const r = rig('gaps')
    const before = r.timers.calls.length
    r.talk(10_000) // 500 inbound frames
    const armed = r.timers.calls.length - before
    t.ok(armed <= Math.ceil(10_000 / AFTER_MS) + 1, `about one timer per afterMs (${armed} for 10 s of audio at afterMs=${AFTER_MS})`)
    t.ok(armed >= Math.floor(10_000 / AFTER_MS) - 1, `and it keeps watching (${armed})`)
    t.equal(r.timers.clears, 0, 'no timer cancelled per frame either')
    t.equal(r.timers.pending, 1, 'one watchdog pending')
  })
})

t.test('continuous: frames from the start, every 20 ms, even while the caller talks', async (t) => {
  const r = rig('continuous')
  t.strictSame(r.times(), [T0], 'the first frame goes out at once')
  r.talk(1000)
  t.strictSame(r.times(), grid(T0, 51), '51 frames in the first second: 0, 20, ... 1000 ms')
  t.equal(r.keeper.totalFrames, 51)
  t.equal(r.timers.pending, 1, 'one pacer, no watchdog')
})

t.test('drift correction: a timer 7 ms late does not move the grid', async (t) => {
  const r = rig('continuous')
  r.timers.advance(3 * SILENCE_FRAME_MS) // frames at 0, 20, 40, 60
  t.equal(r.writes.length, 4)
  r.timers.runNext(7) // frame 4 (due at +80) fires at +87
  t.equal(r.writes.at(-1)?.at, T0 + 87)
  t.equal(r.timers.calls.at(-1)?.ms, 13, 'the next frame is asked for 13 ms later, not 20')
  t.equal(r.timers.nextDue, T0 + 100, 'frame 5 is due on the grid at start + 5*20')
  r.timers.runNext(7)
  r.timers.runNext(3)
  r.timers.advance(100)
  const times = r.times()
  t.strictSame(times, [T0, T0 + 20, T0 + 40, T0 + 60, T0 + 87, T0 + 107, T0 + 123, ...grid(T0 + 140, 5)])
  t.equal(times.length, 12, 'no frame lost or added: one per 20 ms slot')
})

t.test('drift correction in gaps mode too', async (t) => {
  const r = rig('gaps')
  r.timers.advance(AFTER_MS) // first frame at T0 + afterMs
  const start = T0 + AFTER_MS
  t.strictSame(r.times(), [start])
  for (let i = 0; i < 5; i++) r.timers.runNext(7)
  r.timers.advance(SILENCE_FRAME_MS)
  t.strictSame(r.times(), [start, ...grid(start + 20, 5).map((at) => at + 7), start + 120])
})

t.test('the long-run mean interval is 20 ms when wake-ups come late', async (t) => {
  /** Frames a punctual grid from the first frame would have sent by `elapsed` ms. */
  const slots = (elapsed: number): number => Math.floor(elapsed / SILENCE_FRAME_MS) + 1

  t.test('every wake-up 3 ms after its due time', async (t) => {
    const r = rig('continuous')
    for (let i = 0; i < 1000; i++) r.timers.runNext(3)
    const elapsed = r.timers.now() - T0
    t.ok(Math.abs(r.writes.length - slots(elapsed)) <= 1, `${r.writes.length} frames in ${elapsed} ms: one per 20 ms`)
  })

  t.test('a busy event loop that can wake the pacer only every 23 ms', async (t) => {
    // A loaded loop whose turns take 23 ms: a timer runs at its due time or one turn after the
    // previous wake-up, whichever is later. Sending one frame per wake-up would pace at 23 ms
    // (the 23.06 ms mean measured under load); the frames due are sent together instead.
    const r = rig('continuous')
    let lastWake = T0
    while (r.timers.now() - T0 < 1000 * SILENCE_FRAME_MS) {
      const due = r.timers.nextDue ?? Infinity
      const at = Math.max(due, lastWake + 23)
      r.timers.runNext(at - due)
      lastWake = at
    }
    const elapsed = r.timers.now() - T0
    t.ok(Math.abs(r.writes.length - slots(elapsed)) <= 1, `${r.writes.length} frames in ${elapsed} ms (${slots(elapsed)} slots)`)
    const meanMs = elapsed / (r.writes.length - 1)
    t.ok(Math.abs(meanMs - SILENCE_FRAME_MS) < 0.1, `mean interval ${meanMs.toFixed(3)} ms`)
    t.ok(r.times().every((at, n) => at >= T0 + n * SILENCE_FRAME_MS), 'no frame before its slot: caught up, never ahead')
  })

  t.test('gaps mode, wake-ups 3 to 15 ms late in turn', async (t) => {
    const r = rig('gaps')
    r.timers.advance(AFTER_MS) // pacing starts: first frame at T0 + afterMs
    const lateness = [3, 15, 9]
    for (let i = 0; i < 1000; i++) r.timers.runNext(lateness[i % lateness.length])
    const elapsed = r.timers.now() - (T0 + AFTER_MS)
    t.ok(Math.abs(r.writes.length - slots(elapsed)) <= 1, `${r.writes.length} frames in ${elapsed} ms`)
  })
})

t.test('after a stall longer than 100 ms it resynchronises instead of bursting', async (t) => {
  t.test('a 250 ms stall', async (t) => {
    const r = rig('continuous')
    r.timers.advance(60) // frames at 0, 20, 40, 60
    r.timers.stallUntil(T0 + 80 + 250) // frame 4 was due at +80
    t.strictSame(r.times().slice(4), [T0 + 330], 'one frame at the end of the stall, no catch-up burst')
    r.timers.advance(100)
    const after = r.times().slice(4)
    t.strictSame([...new Set(after)], grid(T0 + 330, 6), 'the frames keep a new 20 ms grid from the end of the stall')
    t.strictSame(after, grid(T0 + 330, 6), 'one frame per 20 ms slot after the resync')
  })
  t.test('a 110 ms stall', async (t) => {
    const r = rig('continuous')
    r.timers.advance(60)
    r.timers.stallUntil(T0 + 80 + 110)
    const atStall = r.times().filter((at) => at === T0 + 190).length
    t.equal(atStall, 1, `one frame at the end of a 110 ms stall (${atStall} were written at once)`)
  })
  t.test('a short stall (60 ms) is caught up: the grid and the frame count are kept', async (t) => {
    const r = rig('continuous')
    r.timers.advance(60)
    r.timers.stallUntil(T0 + 80 + 60)
    r.timers.advance(60)
    t.strictSame(r.times(), [...grid(T0, 4), T0 + 140, T0 + 140, T0 + 140, T0 + 140, T0 + 160, T0 + 180, T0 + 200])
  })
})

t.test('a wall clock that steps back does not stop the silence', async (t) => {
  /** The rig on a clock that reads `offset` ms off the timers' time: a settable wall clock. */
  function steppedRig(mode: SilenceMode) {
    const timers = new FakeTimers(T0)
    let offset = 0
    const writes: number[] = []
    const keeper = new SilenceKeeper(
      { mode, afterMs: AFTER_MS, write: () => writes.push(timers.now()), clock: { now: () => timers.now() + offset, setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout } },
      SILENCE,
    )
    return { timers, writes, keeper, stepBack: (ms: number) => (offset -= ms) }
  }

  t.test('while pacing: a new grid from the stepped clock, not an hour-long timer', async (t) => {
    const r = steppedRig('continuous')
    r.timers.advance(100) // frames at 0..100
    r.stepBack(3_600_000)
    r.timers.advance(100)
    const after = r.writes.filter((at) => at > T0 + 100)
    t.strictSame(after, grid(T0 + 120, 5), 'the frame due at +120 goes out, then every 20 ms')
  })

  t.test('while watching (gaps): quiet is counted from the step', async (t) => {
    const r = steppedRig('gaps')
    r.timers.advance(500)
    r.keeper.onInboundAudio()
    r.stepBack(3_600_000)
    r.timers.advance(AFTER_MS + 500 + 40)
    t.ok(r.writes.length >= 1 && (r.writes[0] ?? Infinity) <= T0 + 500 + 2 * AFTER_MS, `silence starts within two afterMs of the last audio (first frame at +${(r.writes[0] ?? NaN) - T0} ms)`)
  })

  t.test('woken early by a clock rounding: no frame before its time, and the timer is re-armed', async (t) => {
    const r = steppedRig('continuous')
    r.timers.advance(40) // frames at 0, 20, 40
    r.stepBack(5) // the next wake-up (due +60) reads 55
    r.timers.runNext()
    t.equal(r.writes.length, 3, 'nothing sent 5 ms early')
    t.equal(r.timers.pending, 1, 're-armed')
    r.timers.advance(5)
    t.equal(r.writes.length, 4, 'the frame goes out at its time')
  })
})

t.test('setFrame changes the frame written', async (t) => {
  const r = rig('continuous')
  r.timers.advance(20)
  const wideband = Buffer.from('silence-16k')
  r.keeper.setFrame(wideband)
  r.timers.advance(40)
  t.strictSame(
    r.writes.map((w) => w.frame.toString()),
    ['silence-8k', 'silence-8k', 'silence-16k', 'silence-16k'],
  )
})

t.test('stop() cancels everything', async (t) => {
  t.test('while pacing (continuous)', async (t) => {
    const r = rig('continuous')
    r.timers.advance(100)
    const sent = r.writes.length
    r.keeper.stop()
    t.equal(r.timers.pending, 0, 'no timer left')
    r.timers.advance(10_000)
    r.keeper.onInboundAudio()
    r.timers.advance(10_000)
    t.equal(r.writes.length, sent)
  })
  t.test('while watching (gaps)', async (t) => {
    const r = rig('gaps')
    r.talk(500)
    r.keeper.stop()
    t.equal(r.timers.pending, 0, 'the watchdog is cancelled')
    r.timers.advance(10_000)
    t.equal(r.writes.length, 0)
  })
  t.test('while pacing (gaps), then audio arrives', async (t) => {
    const r = rig('gaps')
    r.timers.advance(AFTER_MS + 40)
    const sent = r.writes.length
    r.keeper.stop()
    r.keeper.onInboundAudio()
    t.equal(r.timers.pending, 0, 'audio after stop() arms nothing')
    r.timers.advance(10_000)
    t.equal(r.writes.length, sent)
  })
  t.test('from inside write()', async (t) => {
    const timers = new FakeTimers(T0)
    let writes = 0
    const keeper: SilenceKeeper = new SilenceKeeper(
      {
        mode: 'continuous',
        afterMs: AFTER_MS,
        write: () => {
          writes++
          if (writes === 3) keeper.stop()
        },
        clock: timers,
      },
      SILENCE,
    )
    timers.runNext()
    timers.runNext()
    t.equal(writes, 3, 'stop() was called from the third write')
    t.equal(timers.pending, 0, 'no timer left behind by the write that called stop()')
    timers.advance(1000)
    t.equal(writes, 3, 'no frame after stop()')
    t.equal(timers.pending, 0, 'nothing pending in the end')
  })
})
