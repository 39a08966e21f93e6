import t from 'tap'
import { clearLongTimeout, LongWait, longTimer, MAX_TIMER_DELAY_MS, setLongTimeout } from '../../src/shared/long-timer.js'
import { FakeTimers } from '../support/fake-timers.js'

const DAY = 86_400_000

/** Fake base timers; `timers.calls` records every arming, whose delay must fit a Node timer. */
function fakeBase() {
  const timers = new FakeTimers(0)
  const long = longTimer({ setTimer: timers.setTimer, clearTimer: timers.clearTimer })
  return { timers, ...long, legs: () => timers.calls.map((call) => call.ms) }
}

t.test('a delay a Node timer holds goes to the base timer as it is: the same handle', async (t) => {
  const { timers, setTimer, clearTimer, legs } = fakeBase()
  let fired = 0
  const handle = setTimer(() => fired++, MAX_TIMER_DELAY_MS)
  t.notOk(handle instanceof LongWait, 'the base handle itself')
  t.same(legs(), [MAX_TIMER_DELAY_MS])
  timers.advance(MAX_TIMER_DELAY_MS)
  t.equal(fired, 1)
  const cleared = setTimer(() => fired++, 1000)
  clearTimer(cleared)
  timers.advance(2000)
  t.same([fired, timers.pending], [1, 0], 'clearTimer clears it')
})

t.test('29 days fire once, at 29 days, never before; every leg fits a Node timer', async (t) => {
  const { timers, setTimer, legs } = fakeBase()
  const firedAt: number[] = []
  const handle = setTimer(() => firedAt.push(timers.now()), 29 * DAY)
  t.ok(handle instanceof LongWait)
  timers.advanceTo(29 * DAY - 1)
  t.same(firedAt, [], 'not 1 ms before')
  timers.advance(1)
  t.same(firedAt, [29 * DAY], 'at 29 days')
  timers.advance(365 * DAY)
  t.same(firedAt, [29 * DAY], 'and only once')
  t.same(legs(), [MAX_TIMER_DELAY_MS, 29 * DAY - MAX_TIMER_DELAY_MS])
  t.equal(timers.pending, 0)
})

t.test('a delay of several legs: 100 days', async (t) => {
  const { timers, setTimer, legs } = fakeBase()
  const firedAt: number[] = []
  setTimer(() => firedAt.push(timers.now()), 100 * DAY)
  timers.advance(400 * DAY)
  t.same(firedAt, [100 * DAY])
  t.same(legs(), [MAX_TIMER_DELAY_MS, MAX_TIMER_DELAY_MS, MAX_TIMER_DELAY_MS, MAX_TIMER_DELAY_MS, 100 * DAY - 4 * MAX_TIMER_DELAY_MS])
})

t.test('a leg that wakes late delays the end by as much, never brings it forward', async (t) => {
  const { timers, setTimer } = fakeBase()
  const firedAt: number[] = []
  setTimer(() => firedAt.push(timers.now()), 29 * DAY)
  timers.runNext(5000) // the first leg runs 5 s late (a stalled loop)
  timers.advance(365 * DAY)
  t.same(firedAt, [29 * DAY + 5000])
})

t.test('clearTimer stops it at any leg', async (t) => {
  for (const clearAfter of [0, MAX_TIMER_DELAY_MS - 1, MAX_TIMER_DELAY_MS, MAX_TIMER_DELAY_MS + 1, 3 * MAX_TIMER_DELAY_MS, 100 * DAY - 1]) {
    const { timers, setTimer, clearTimer } = fakeBase()
    let fired = 0
    const handle = setTimer(() => fired++, 100 * DAY)
    timers.advance(clearAfter)
    clearTimer(handle)
    timers.advance(400 * DAY)
    t.same([fired, timers.pending], [0, 0], `cleared ${clearAfter} ms in`)
  }
})

t.test('NaN and negative delays are 0; Infinity never fires, until cleared', async (t) => {
  const { timers, setTimer, clearTimer, legs } = fakeBase()
  let fired = 0
  setTimer(() => fired++, Number.NaN)
  setTimer(() => fired++, -5)
  t.same(legs(), [0, 0])
  timers.advance(0)
  t.equal(fired, 2)
  const never = setTimer(() => fired++, Number.POSITIVE_INFINITY)
  timers.advance(10 * 365 * DAY)
  t.same([fired, timers.pending], [2, 1], 'still waiting after ten years')
  t.ok(legs().slice(2).every((ms) => ms === MAX_TIMER_DELAY_MS), 're-armed at the maximum each time')
  clearTimer(never)
  t.equal(timers.pending, 0)
})

t.test('unref() reaches every leg of a long wait', async (t) => {
  const unrefed: number[] = []
  const callbacks: Array<() => void> = []
  const long = longTimer({
    setTimer: (callback: () => void) => {
      const id = callbacks.push(callback) - 1
      return { unref: () => unrefed.push(id) }
    },
    clearTimer: () => {},
  })
  const handle = long.setTimer(() => {}, 3 * MAX_TIMER_DELAY_MS)
  if (!(handle instanceof LongWait)) throw new Error('a long wait should be a LongWait')
  handle.unref()
  t.same(unrefed, [0], 'the leg armed now')
  callbacks[0]?.()
  callbacks[1]?.()
  t.same(unrefed, [0, 1, 2], 'and each one armed after')
})

t.test('setLongTimeout on Node timers: no overflow warning, and clearLongTimeout leaves nothing pending', async (t) => {
  const warnings: string[] = []
  const onWarning = (warning: Error): void => void warnings.push(warning.name)
  process.on('warning', onWarning)
  t.teardown(() => void process.off('warning', onWarning))
  const long = setLongTimeout(() => t.fail('a 30-day timer fired'), 30 * DAY)
  // Node emits its overflow warning on the next tick, well before a 0 ms timer runs.
  await new Promise<void>((resolve) => setLongTimeout(resolve, 0))
  t.same(warnings, [], 'no TimeoutOverflowWarning')
  // Were it still pending, this 30-day timer would keep the test process alive.
  clearLongTimeout(long)
  clearLongTimeout(undefined)
})
