/**
 * src/tools/replay/: writes go out at their recorded times on the injected clock (divided by
 * the speed), drift-corrected; the bytes are the recorded ones with only the UUID changed; the
 * call ends as the capture did; a server that ends the call is handled as Asterisk would and
 * reported; the runner keeps to its concurrency. Real TCP throughout; time is a FakeTimers clock where
 * pacing is the point.
 */
import t from 'tap'
import { planReplay, replayCall, runReplays, Scheduler, type CallReplayResult } from '../../../src/tools/index.js'
import { uuidToString } from '../../../src/audiosocket/index.js'
import { captureOf } from '../../support/capture-builders.js'
import { loadFixtureCapture } from '../../support/capture-fixtures.js'
import { FakeTimers } from '../../support/fake-timers.js'
import { frames } from '../../support/frames.js'
import { startTcpSink } from '../../support/tcp-sink.js'

const ID = '0b0e1f2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b'

/** UUID at 1 ms (split across two reads), audio at 20, 40, 60 ms, DTMF at 80, FIN at 85. */
function shortCall() {
  const uuid = frames.uuid(ID)
  return captureOf((c) => {
    c.at(1).in(uuid.subarray(0, 10)).at(1.2).in(uuid.subarray(10))
    c.at(20).audio(0x10, 3) // ends at 80
    c.in(frames.dtmf('5'))
    c.at(85).finIn()
  })
}

/** Milliseconds after `start`, rounded to the microsecond (clock times are floats). */
const after = (start: number, ms: number): number => Math.round((ms - start) * 1000) / 1000

const inboundBytes = (capture: ReturnType<typeof shortCall>): Buffer =>
  Buffer.concat(capture.records.filter((r) => r.direction === 'in' && r.type === 'data').map((r) => r.data))

t.test('paced: each write at connect + its recorded offset on the injected clock, then FIN at its time', async (t) => {
  const sink = await startTcpSink()
  t.teardown(() => sink.close())
  const clock = new FakeTimers()
  const sends: Array<{ dueMs: number; atMs: number; bytes: number }> = []
  const capture = shortCall()
  const armed = clock.nextTimer().then(() => clock.nextTimer()) // the connect timeout, then the first write
  const done = replayCall(planReplay(capture, 'short'), { host: '127.0.0.1', port: sink.port, scheduler: new Scheduler(clock, { earlyMs: 0 }), keepUuid: true, onSend: (s) => sends.push(s) })
  const connection = await sink.nextConnection()
  await armed
  const start = clock.now()

  clock.advance(0.4)
  t.same(sends, [], 'nothing before the first recorded time')
  clock.advanceTo(start + 1.2)
  t.same(sends.map((s) => after(start, s.atMs)), [1, 1.2], 'the UUID frame in its two recorded reads, at 1 and 1.2 ms')
  clock.advanceTo(start + 79)
  t.same(sends.map((s) => after(start, s.dueMs)), [1, 1.2, 20, 40, 60], 'audio at 20, 40, 60 ms')
  t.same(sends.map((s) => s.atMs), sends.map((s) => s.dueMs), 'a punctual clock: every write exactly on time')
  clock.advanceTo(start + 90)
  t.equal(await connection.ended, 'fin', "the capture's FIN, sent at 85 ms")
  const result = await done
  t.ok(connection.received().equals(inboundBytes(capture)), 'the server received exactly the recorded bytes')
  t.match(result, { ok: true, completed: true, ending: 'fin', framesSent: 5, framesTotal: 5, writes: 6, uuid: ID })
  t.match(result.server, { ending: 'fin', endedFirst: false, bytes: 0 })
})

t.test('drift-corrected: a late wake-up catches up, and later writes keep their own times', async (t) => {
  const sink = await startTcpSink()
  t.teardown(() => sink.close())
  const clock = new FakeTimers()
  const sends: Array<{ dueMs: number; atMs: number }> = []
  const armed = clock.nextTimer().then(() => clock.nextTimer())
  const done = replayCall(planReplay(shortCall(), 'short'), { host: '127.0.0.1', port: sink.port, scheduler: new Scheduler(clock, { earlyMs: 0 }), onSend: (s) => sends.push(s) })
  await sink.nextConnection()
  await armed
  const start = clock.now()
  clock.advanceTo(start + 0.9)
  t.same(sends, [], 'nothing due yet')
  // The event loop stalls: the timer due at 1 ms fires only at 45 ms.
  clock.stallUntil(start + 45)
  t.same(sends.map((s) => after(start, s.dueMs)), [1, 1.2, 20, 40], 'every write due by 45 ms goes out at once, in order')
  t.ok(sends.every((s) => s.atMs === start + 45), 'all at the late wake-up')
  clock.advanceTo(start + 90)
  t.equal(after(start, sends[4]!.atMs), 60, 'the next write is still sent at 60 ms: the stall did not shift the schedule')
  t.equal(after(start, sends[5]!.atMs), 80)
  const result = await done
  t.equal(result.lateness.maxMs, 44, 'the worst lateness is reported')
})

t.test('speed: times are divided by it; max sends everything at once', async (t) => {
  const sink = await startTcpSink()
  t.teardown(() => sink.close())
  const clock = new FakeTimers()
  const sends: number[] = []
  const armed = clock.nextTimer().then(() => clock.nextTimer())
  const fast = replayCall(planReplay(shortCall(), 'short'), { host: '127.0.0.1', port: sink.port, speed: 10, scheduler: new Scheduler(clock, { earlyMs: 0 }), onSend: (s) => sends.push(s.dueMs) })
  await sink.nextConnection()
  await armed
  const start = clock.now()
  clock.advance(10)
  t.same(sends.map((d) => after(start, d)), [0.1, 0.12, 2, 4, 6, 8], 'at a tenth of the recorded times')
  t.equal((await fast).ok, true)

  const asFast = await replayCall(planReplay(shortCall(), 'short'), { host: '127.0.0.1', port: sink.port, speed: Infinity, scheduler: new Scheduler(new FakeTimers()) })
  t.match(asFast, { ok: true, completed: true, writes: 6, ending: 'fin' }, 'speed Infinity needs no clock at all')
  t.ok(sink.connections[1]!.received().subarray(19).equals(inboundBytes(shortCall()).subarray(19)))
})

t.test('UUIDs: fresh per call by default (even across a split read), kept or given on request', async (t) => {
  const sink = await startTcpSink()
  t.teardown(() => sink.close())
  const plan = planReplay(shortCall(), 'short')
  t.equal(plan.uuid, ID)
  const run = async (options: { keepUuid?: boolean; uuid?: string }): Promise<{ result: CallReplayResult; bytes: Buffer }> => {
    const next = sink.nextConnection()
    const result = await replayCall(plan, { host: '127.0.0.1', port: sink.port, speed: Infinity, ...options })
    return { result, bytes: (await next).received() }
  }
  const original = inboundBytes(shortCall())
  const a = await run({})
  const b = await run({})
  t.not(a.result.uuid, ID)
  t.not(a.result.uuid, b.result.uuid, 'a different UUID per call')
  t.equal(uuidToString(a.bytes.subarray(3, 19)), a.result.uuid, 'the UUID frame carries the reported UUID')
  t.ok(a.bytes.subarray(0, 3).equals(original.subarray(0, 3)) && a.bytes.subarray(19).equals(original.subarray(19)), 'every other byte as recorded')
  t.ok((await run({ keepUuid: true })).bytes.equals(original), '--keep-uuid sends the recorded bytes unchanged')
  const given = '12345678-1234-4234-8234-123456789abc'
  t.equal(uuidToString((await run({ uuid: given })).bytes.subarray(3, 19)), given)
  t.equal(planReplay(loadFixtureCapture('violation-first-frame'), 'x').uuid, undefined, 'a stream without a leading UUID frame is sent as recorded')
})

t.test('the server hangs up: the replay stops like Asterisk and reports the call cut short', async (t) => {
  const sink = await startTcpSink(async (c) => {
    await c.receivedAtLeast(19)
    c.socket.write(Buffer.from([0, 0, 0]))
  })
  t.teardown(() => sink.close())
  const capture = captureOf((c) => c.at(1).in(frames.uuid(ID)).at(20).audio(0x10, 50).finIn())
  const result = await replayCall(planReplay(capture, 'long'), { host: '127.0.0.1', port: sink.port, speed: 4 })
  t.equal(result.ok, false)
  t.match(result.failure, /cut short: the server ended the call \(hangup-frame\) after \d+ of 51 frames/)
  t.match(result.server, { ending: 'hangup-frame', endedFirst: true, bytes: 3, frames: { '0x00': 1 } })
  t.equal(result.completed, false)
  t.equal(result.ending, 'fin', 'we answered the hangup by closing')
  t.ok(result.framesSent < 51)

  const recorded = loadFixtureCapture('violation-server-writes')
  const expected = await replayCall(planReplay(recorded, 'x'), { host: '127.0.0.1', port: sink.port, speed: 8 })
  t.equal(expected.ok, true, 'not a failure when the capture itself recorded the server ending the call')
})

t.test('a reset in the capture is replayed as a reset; a refused connection is a failure', async (t) => {
  const sink = await startTcpSink()
  t.teardown(() => sink.close())
  const capture = captureOf((c) => c.at(1).in(frames.uuid(ID)).at(20).audio(0x10, 2).resetIn())
  // Paced, and the data read before the reset comes: Linux reports a reset that finds unread data
  // in the receive queue as a plain EOF, which would hide what the replay did.
  const clock = new FakeTimers()
  const armed = clock.nextTimer().then(() => clock.nextTimer())
  const done = replayCall(planReplay(capture, 'reset'), { host: '127.0.0.1', port: sink.port, scheduler: new Scheduler(clock) })
  const connection = await sink.nextConnection()
  await armed
  clock.advance(59)
  await connection.receivedAtLeast(19 + 2 * 323)
  clock.advance(10)
  t.equal(await connection.ended, 'reset', 'the server saw a reset')
  t.match(await done, { ok: true, ending: 'reset', completed: true })

  const closedPort = sink.port
  await sink.close()
  const refused = await replayCall(planReplay(capture, 'reset'), { host: '127.0.0.1', port: closedPort })
  t.match(refused, { ok: false, connected: false, failure: /cannot connect to 127\.0\.0\.1:\d+: .*ECONNREFUSED/ })
})

t.test('holdUntil: a stream that outlives its audio (an externalMedia channel) ends when it settles, not with the plan', async (t) => {
  const sink = await startTcpSink()
  t.teardown(() => sink.close())
  // Audio and no recorded ending: Asterisk's stream of a tap goes quiet when the call does, and
  // closes only when the externalMedia channel is hung up.
  const quiet = captureOf((c) => c.at(1).in(frames.uuid(ID)).at(20).audio(0x10, 3))
  let hangUp!: () => void
  const hungUp = new Promise<void>((resolve) => (hangUp = resolve))
  const next = sink.nextConnection()
  const held = replayCall(planReplay(quiet, 'held'), { host: '127.0.0.1', port: sink.port, speed: Infinity, holdUntil: hungUp })
  const connection = await next
  await connection.receivedAtLeast(19 + 3 * 323)
  const early = await Promise.race([connection.ended, new Promise<string>((resolve) => setTimeout(() => resolve('open'), 100))])
  t.equal(early, 'open', 'every frame sent, and the stream still open')
  hangUp()
  t.equal(await connection.ended, 'fin', 'a FIN once it settled')
  t.match(await held, { ok: true, completed: true, ending: 'fin', framesSent: 4 })

  // Settled mid-plan: our side ends at once, the rest of the audio unsent.
  const long = captureOf((c) => c.at(1).in(frames.uuid(ID)).at(20).audio(0x10, 50))
  let cut!: () => void
  const cutNow = new Promise<void>((resolve) => (cut = resolve))
  const nextLong = sink.nextConnection()
  const cutShort = replayCall(planReplay(long, 'cut'), { host: '127.0.0.1', port: sink.port, holdUntil: cutNow })
  await (await nextLong).receivedAtLeast(19 + 323)
  cut()
  const result = await cutShort
  t.match(result, { ok: true, completed: false, ending: 'fin' }, 'not a failure: the caller chose the end')
  t.ok(result.framesSent < 51, `the rest unsent (${result.framesSent} of 51 frames)`)
})

t.test('runReplays: files x repeat calls, at most `concurrency` at once, fresh UUIDs, totals', async (t) => {
  const sink = await startTcpSink()
  t.teardown(() => sink.close())
  const plans = [planReplay(shortCall(), 'a'), planReplay(shortCall(), 'b'), planReplay(shortCall(), 'c')]
  const order: number[] = []
  const summary = await runReplays(plans, { host: '127.0.0.1', port: sink.port, speed: 4, concurrency: 2, repeat: 2, onResult: (_, i) => order.push(i) })
  t.equal(summary.calls, 6)
  t.equal(summary.ok, 6)
  t.equal(summary.failed, 0)
  t.same(summary.results.map((r) => r.name), ['a', 'b', 'c', 'a', 'b', 'c'], 'results in job order')
  t.same([...order].sort(), [0, 1, 2, 3, 4, 5], 'each reported as it finished')
  t.equal(new Set(summary.results.map((r) => r.uuid)).size, 6, 'six different UUIDs')
  t.equal(sink.connections.length, 6)
  t.ok(sink.maxConcurrent <= 2, `never more than 2 calls at once (saw ${sink.maxConcurrent})`)
  t.equal(summary.framesSent, 6 * 5)
  t.equal(summary.bytesSent, 6 * inboundBytes(shortCall()).length)
  await t.rejects(runReplays(plans, { host: '127.0.0.1', port: sink.port, concurrency: 0 }), RangeError)
})
