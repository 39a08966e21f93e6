/**
 * src/shared/log-destination.ts with a scripted write system call, the fake clock and a fake sleep:
 * lines in order; a full pipe (EAGAIN) queues and retries on an unref()ed timer; a broken one
 * (EPIPE) drops everything at once, for good; the queue is bounded, and the gap is said where it
 * is; flush(cb) and flushSync() always end, whatever the output does. The spawned-server side
 * (SIGTERM with stderr a closed pipe) is in test/cli/serve-shutdown.test.ts.
 */
import t from 'tap'
import { LogDestination } from '../../src/shared/log-destination.js'
import type { Clock, ClockTimer } from '../../src/shared/clock.js'
import { FakeTimers } from '../support/fake-timers.js'

type Answer = 'ok' | 'EAGAIN' | 'EPIPE' | number

/**
 * A write(2) whose answers the test scripts: 'ok' takes the whole buffer, a number takes that many
 * bytes, an error code throws as fs.writeSync does. With no script left, it takes everything.
 */
function scriptedFd() {
  const answers: Answer[] = []
  let written = ''
  let calls = 0
  const write = (_fd: number, buffer: Buffer): number => {
    calls++
    const answer = answers.shift() ?? 'ok'
    if (answer === 'EAGAIN' || answer === 'EPIPE') throw Object.assign(new Error(`${answer}: write`), { code: answer })
    const n = answer === 'ok' ? buffer.length : Math.min(answer, buffer.length)
    written += buffer.subarray(0, n).toString('utf8')
    return n
  }
  return {
    write,
    script: (...a: Answer[]) => answers.push(...a),
    /** Every answer from now on. */
    always: (a: Answer) => {
      answers.length = 0
      for (let i = 0; i < 10_000; i++) answers.push(a)
    },
    clear: () => (answers.length = 0),
    get written() {
      return written
    },
    get calls() {
      return calls
    },
  }
}

/** The fake clock, recording which timers were unref()ed. */
function clockWithUnrefs(timers: FakeTimers): Clock & { unrefs: number } {
  const clock = {
    unrefs: 0,
    now: () => timers.now(),
    setTimeout: (fn: () => void, ms: number): ClockTimer => {
      const inner = timers.setTimeout(fn, ms)
      return Object.assign(Object.create(null) as object, {
        inner,
        refresh: () => inner.refresh(),
        unref: () => {
          clock.unrefs++
          inner.unref()
        },
      })
    },
    clearTimeout: (timer: ClockTimer | undefined) => timers.clearTimeout((timer as { inner?: ClockTimer } | undefined)?.inner),
  }
  return clock
}

/**
 * `turns`: the deferred writes are held until the test runs them (`endTurn()`), as the event loop
 * would after the current turn; without it each write goes out at once, so the other tests read
 * each step's effect directly.
 */
function setup(options: { maxBufferedBytes?: number; stallWaitMs?: number; turns?: boolean } = {}) {
  const fd = scriptedFd()
  const timers = new FakeTimers()
  const clock = clockWithUnrefs(timers)
  const slept: number[] = []
  // A blocking sleep moves the fake time, as the real one moves the real time.
  const sleep = (ms: number): void => {
    slept.push(ms)
    timers.advance(ms)
  }
  const deferred: Array<() => void> = []
  const { turns, ...limits } = options
  const defer = turns ? (write: () => void) => void deferred.push(write) : (write: () => void) => write()
  const destination = new LogDestination({ fd: 2, write: fd.write, clock, sleep, flushAtExit: false, defer, ...limits })
  const endTurn = (): void => {
    for (const write of deferred.splice(0)) write()
  }
  return { fd, timers, clock, slept, destination, endTurn, deferred }
}

const line = (n: number): string => `{"n":${n}}\n`

t.test('the lines of one turn go out in one write, in order, after the turn', async (t) => {
  const { fd, timers, destination, endTurn, deferred } = setup({ turns: true })
  destination.write(line(1))
  destination.write(line(2))
  destination.write(line(3))
  t.equal(fd.calls, 0, 'nothing written during the turn')
  t.equal(deferred.length, 1, 'one write deferred for the three lines')
  endTurn()
  t.equal(fd.written, line(1) + line(2) + line(3))
  t.equal(fd.calls, 1, 'one write for the turn')
  destination.write(line(4))
  endTurn()
  t.equal(fd.written, line(1) + line(2) + line(3) + line(4), 'the next turn\'s line follows')
  t.equal(fd.calls, 2, 'one write per turn')
  t.equal(timers.pending, 0, 'no timer')
  let flushed = false
  destination.flush(() => (flushed = true))
  await new Promise((resolve) => process.nextTick(resolve))
  t.ok(flushed, 'flush(cb) with nothing queued calls back on the next tick')
})

t.test('a full pipe (EAGAIN): the line is queued and retried on an unref()ed timer, later lines keep their order', async (t) => {
  const { fd, timers, clock, destination } = setup()
  fd.script('EAGAIN')
  destination.write(line(1))
  t.equal(fd.written, '')
  t.equal(destination.bufferedBytes, line(1).length)
  t.equal(timers.pending, 1, 'a retry is due')
  t.equal(clock.unrefs, 1, 'the retry timer does not keep the process alive')
  destination.write(line(2))
  t.equal(fd.calls, 1, 'a line behind a queue does not jump it (no write until the retry)')
  fd.script('EAGAIN')
  timers.runNext()
  t.equal(fd.written, '', 'still full at the first retry')
  timers.runNext()
  t.equal(fd.written, line(1) + line(2), 'both, in order, once the pipe takes them')
  t.equal(destination.bufferedBytes, 0)
  t.equal(timers.pending, 0)
  t.same(
    timers.calls.map((c) => c.ms),
    [10, 20],
    'retries 10 ms, then doubling (to 100 ms at most)',
  )
})

t.test('a partial write: the rest goes next, bytes intact (a character split across writes)', async (t) => {
  const { fd, timers, destination } = setup()
  const text = '{"msg":"héllo wörld"}\n'
  fd.script(9, 'EAGAIN')
  destination.write(text)
  t.equal(destination.bufferedBytes, Buffer.byteLength(text) - 9)
  timers.runNext()
  t.equal(fd.written, text)
})

t.test('a broken pipe (EPIPE): the queue is dropped, every later line too, without a system call; flush calls back', async (t) => {
  const { fd, timers, destination } = setup()
  fd.script('EAGAIN')
  destination.write(line(1))
  destination.write(line(2))
  let flushError: Error | undefined | null = null
  destination.flush((err) => (flushError = err))
  fd.script('EPIPE')
  timers.runNext()
  t.ok(destination.broken)
  t.equal(destination.bufferedBytes, 0, 'nothing kept for a reader that has gone')
  t.equal(flushError, undefined, 'the waiting flush calls back (there is nothing left to wait for)')
  t.equal(timers.pending, 0, 'no retry, and the flush deadline is cleared')
  const calls = fd.calls
  for (let i = 0; i < 100; i++) destination.write(line(i))
  t.equal(fd.calls, calls, 'no write is even attempted any more')
  let called = false
  destination.flush(() => (called = true))
  await new Promise((resolve) => process.nextTick(resolve))
  t.ok(called)
  destination.flushSync()
  t.equal(fd.calls, calls, 'flushSync on a broken output returns at once')
})

t.test('bounded: lines beyond maxBufferedBytes are dropped and counted; one warn line says so where the gap is', async (t) => {
  const { fd, timers, destination } = setup({ maxBufferedBytes: 30 })
  fd.script('EAGAIN')
  destination.write(line(1)) // 8 bytes
  destination.write(line(2))
  destination.write(line(3))
  destination.write(line(4)) // 32 > 30: dropped
  destination.write(line(5)) // dropped
  t.equal(destination.droppedLines, 2)
  t.equal(destination.bufferedBytes, 24)
  timers.runNext()
  t.equal(fd.written, line(1) + line(2) + line(3))
  destination.write(line(6))
  const lines = fd.written.trim().split('\n')
  t.equal(lines.length, 5)
  t.match(JSON.parse(lines[3] as string), { level: 40, droppedLines: 2, msg: 'log lines dropped: the log output was not being read' }, 'after the lines before the gap')
  t.equal(lines[4], line(6).trim(), 'before the first line after it')
})

t.test('flush(cb) on an output that stays full calls back with an error after stallWaitMs', async (t) => {
  const { fd, timers, destination } = setup({ stallWaitMs: 500 })
  fd.always('EAGAIN')
  destination.write(line(1))
  let flushError: Error | undefined
  destination.flush((err) => (flushError = err))
  timers.advance(499)
  t.equal(flushError, undefined)
  timers.advance(1)
  t.match(flushError?.message, /the log output is not being read: 8 bytes still queued/)
  t.equal(destination.bufferedBytes, 8, 'the line is still queued: it goes out if the reader comes back')
  fd.clear()
  timers.advance(100)
  t.equal(fd.written, line(1))
})

t.test('flushSync: writes what is queued; a full pipe is waited for at most maxWaitMs in all, then the rest is dropped', async (t) => {
  const queued = setup()
  queued.fd.script('EAGAIN', 'EAGAIN')
  queued.destination.write(line(1))
  queued.destination.write(line(2))
  queued.destination.flushSync()
  t.equal(queued.fd.written, line(1) + line(2), 'written once the pipe takes it')
  t.same(queued.slept, [10], 'one 10 ms wait in between')
  t.equal(queued.timers.pending, 0, 'the retry timer is cancelled')

  const stuck = setup()
  stuck.fd.always('EAGAIN')
  stuck.destination.write(line(1))
  stuck.destination.flushSync(250)
  t.equal(
    stuck.slept.reduce((a, b) => a + b, 0),
    250,
    'waited 250 ms in all, no more',
  )
  t.equal(stuck.destination.bufferedBytes, 0, 'then dropped')
  t.equal(stuck.destination.droppedLines, 1)

  const broken = setup()
  broken.fd.script('EAGAIN', 'EPIPE')
  broken.destination.write(line(1))
  broken.destination.flushSync()
  t.same(broken.slept, [], 'EPIPE: no wait, no retry (the loop that kept pino.destination from exiting)')
  t.ok(broken.destination.broken)
})
