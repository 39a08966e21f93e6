import t from 'tap'
import { LogThrottle } from '../../src/shared/log-throttle.js'

t.test('one line per key per interval, with the count held back', async (t) => {
  let now = 0
  const throttle = new LogThrottle(10_000, () => now)
  t.equal(throttle.take('source'), 0, 'the first refusal is logged')
  t.equal(throttle.take('source'), undefined, 'a second one within the interval is not')
  t.equal(throttle.take('max_calls'), 0, 'another key has its own interval')
  now += 5_000
  t.equal(throttle.take('source'), undefined)
  now += 5_000
  t.equal(throttle.take('source'), 2, 'after the interval: logged, reporting the two held back')
  t.equal(throttle.take('source'), undefined)
})
