import t from 'tap'
import { createBackoff } from '../../src/shared/backoff.js'

/** Draws the next `count` delays. */
function take(backoff: { next(): number }, count: number): number[] {
  return Array.from({ length: count }, () => backoff.next())
}

t.test('grows by the factor from initialMs', async (t) => {
  // jitter 0 isolates the exponential part.
  t.same(take(createBackoff({ initialMs: 10, maxMs: 10_000, jitter: 0 }), 5), [10, 20, 40, 80, 160])
  t.same(take(createBackoff({ initialMs: 10, maxMs: 10_000, factor: 3, jitter: 0 }), 4), [10, 30, 90, 270])
})

t.test('never exceeds maxMs, however many attempts', async (t) => {
  const backoff = createBackoff({ initialMs: 100, maxMs: 1000, jitter: 0 })
  t.same(take(backoff, 6), [100, 200, 400, 800, 1000, 1000])
  // factor ** attempt overflows to Infinity long before 5000 attempts; the cap must still hold.
  const late = take(backoff, 5000)
  t.equal(Math.max(...late), 1000)
  t.ok(late.every(Number.isFinite))
})

t.test('jitter only shortens a delay, by at most the given fraction', async (t) => {
  // random() at its extremes gives the bounds of the jitter window exactly.
  t.equal(createBackoff({ initialMs: 1000, maxMs: 5000, jitter: 0.2, random: () => 0 }).next(), 1000)
  t.equal(createBackoff({ initialMs: 1000, maxMs: 5000, jitter: 0.2, random: () => 0.999999 }).next(), 800)
  t.equal(createBackoff({ initialMs: 1000, maxMs: 5000, jitter: 0.2, random: () => 0.5 }).next(), 900)

  // At the cap the window is [0.8 max, max]: still capped, still spread.
  const capped = createBackoff({ initialMs: 1000, maxMs: 1000, random: () => 0.999999 })
  t.equal(capped.next(), 800)

  // A faulty random source outside [0, 1) cannot break the cap or go negative.
  t.equal(createBackoff({ initialMs: 100, maxMs: 100, jitter: 0.5, random: () => -3 }).next(), 100)
  t.equal(createBackoff({ initialMs: 100, maxMs: 100, jitter: 0.5, random: () => 7 }).next(), 50)
})

t.test('default jitter is 20% with Math.random', async (t) => {
  const delays = take(createBackoff({ initialMs: 1000, maxMs: 1000 }), 200)
  t.ok(delays.every((d) => d >= 800 && d <= 1000), 'all within [800, 1000]')
  t.ok(new Set(delays).size > 1, 'actually randomised')
})

t.test('attempt counts delays handed out; reset starts over', async (t) => {
  const backoff = createBackoff({ initialMs: 5, maxMs: 100, jitter: 0 })
  t.equal(backoff.attempt, 0)
  take(backoff, 3)
  t.equal(backoff.attempt, 3)
  backoff.reset()
  t.equal(backoff.attempt, 0)
  t.same(take(backoff, 2), [5, 10], 'back to initialMs after reset')
})

t.test('rejects settings that would make the backoff meaningless', async (t) => {
  t.throws(() => createBackoff({ initialMs: -1, maxMs: 10 }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => createBackoff({ initialMs: 10, maxMs: 5 }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => createBackoff({ initialMs: 10, maxMs: Infinity }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => createBackoff({ initialMs: 10, maxMs: 50, factor: 0.5 }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => createBackoff({ initialMs: 10, maxMs: 50, jitter: 1.5 }), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => createBackoff({ initialMs: 10, maxMs: 50, jitter: Number.NaN }), { code: 'ERR_CONFIG_INVALID' })
})
