/**
 * bench/lib/roles.ts epochMs(): the time every role stamps events with, anchored on the wall clock
 * itself rather than on performance.timeOrigin (which a process started on a loaded machine can get
 * wrong by tens of milliseconds), so cross-process differences are latencies.
 */
import t from 'tap'
import { epochMs, epochOf } from '../../bench/lib/roles.js'
import { median } from '../../bench/lib/stats.js'

t.test('epochMs() reads the wall clock with sub-millisecond resolution', async (t) => {
  // Date.now() truncates to the millisecond, so a true reading is 0 to 1 ms ahead of it; a read
  // descheduled between the two calls is off, hence the median of many.
  // Readings 0.3 ms apart, so they fall at every point of the millisecond.
  const cell = new Int32Array(new SharedArrayBuffer(4))
  const ahead: number[] = []
  for (let i = 0; i < 200; i++) {
    const precise = epochMs()
    ahead.push(precise - Date.now())
    Atomics.wait(cell, 0, 0, 0.3)
  }
  const middle = median(ahead)
  t.ok(middle > -0.2 && middle < 1.2, `the median reading is within a millisecond of Date.now() (${middle.toFixed(3)} ms ahead)`)
  t.ok(ahead.some((d) => d % 1 !== 0), 'fractions of a millisecond')
})

t.test('epochOf(performance.now()) is epochMs()', async (t) => {
  const a = epochOf(performance.now())
  const b = epochMs()
  t.ok(b - a >= 0 && b - a < 5, `the same clock (${(b - a).toFixed(3)} ms apart)`)
})
