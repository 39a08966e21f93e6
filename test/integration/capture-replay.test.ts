/**
 * Captures against real sockets: the real server in process (strict Soniox stand-in, webhook
 * receiver), the capture tool in listen mode and as a tee proxy. All real-cadence replays run at
 * once, so the file takes one call's length (about 18 s):
 *
 * - capture -> replay -> capture: a real Asterisk capture replayed at its recorded cadence into
 *   the capture tool comes back with the same bytes, order, chunking and ending, its timing within
 *   a tolerance;
 * - the same capture gives the same transcript at real time, at 10x and through the tee proxy, and
 *   the proxy records both directions without changing a byte;
 * - a capture that breaks the protocol is ended by the server, and the replay and the tee show how.
 */
import t from 'tap'
import { join } from 'node:path'
import { directionStream, readCaptureFile } from '../../src/capture/index.js'
import { CaptureServer, captureAudio, inspectCapture, planReplay, replayCall, type CapturedConnection } from '../../src/tools/index.js'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { createLogger } from '../../src/shared/logger.js'
import { expectedTranscript } from '../support/fake-soniox.js'
import { loadFixtureCapture } from '../support/capture-fixtures.js'
import { startHarness } from '../support/harness.js'

/** A capture tool on port 0 (listen mode, or a tee to `upstream`) whose finished captures can be awaited in order. */
async function startCaptureTool(dir: string, upstream?: number): Promise<{ port: number; next(): Promise<CapturedConnection>; close(): Promise<void> }> {
  const done: CapturedConnection[] = []
  const waiting: Array<(c: CapturedConnection) => void> = []
  const server = new CaptureServer({
    host: '127.0.0.1',
    port: 0,
    ...(upstream === undefined ? {} : { upstream: { host: '127.0.0.1', port: upstream } }),
    dir,
    logger: createLogger({ level: 'silent' }),
    tool: 'test',
    onCapture: (c) => {
      const waiter = waiting.shift()
      if (waiter) waiter(c)
      else done.push(c)
    },
  })
  const { port } = await server.listen()
  return {
    port,
    next: () => {
      const ready = done.shift()
      return ready ? Promise.resolve(ready) : new Promise((resolve) => waiting.push(resolve))
    },
    close: () => server.close({ abort: true }),
  }
}

t.test('at real cadence, all at once: round trip through the capture tool; real time, 10x and tee give one transcript', async (t) => {
  const h = await startHarness()
  t.teardown(() => h.stop())
  const dir = t.testdir()
  const listen = await startCaptureTool(join(dir, 'listen'))
  t.teardown(() => listen.close())
  const tee = await startCaptureTool(join(dir, 'tee'), h.port)
  t.teardown(() => tee.close())

  // The pcap import: Asterisk's real TCP segments and packet times.
  const capture = loadFixtureCapture('app-8k-speech.from-pcap')
  const plan = planReplay(capture, 'app-8k-speech')
  const audio = captureAudio(capture)
  const expected = expectedTranscript(audio.pcm, audio.sampleRate).transcript
  t.ok(expected.trim().split(/\s+/).length >= 10, 'the capture holds real speech for the stand-in')

  const [roundTrip, realTime, tenTimes, viaTee] = await Promise.all([
    replayCall(plan, { host: '127.0.0.1', port: listen.port, keepUuid: true }),
    replayCall(plan, { host: '127.0.0.1', port: h.port, speed: 1 }),
    replayCall(plan, { host: '127.0.0.1', port: h.port, speed: 10 }),
    replayCall(plan, { host: '127.0.0.1', port: tee.port, speed: 1 }),
  ])
  for (const [name, r] of [['into the capture tool', roundTrip], ['real time', realTime], ['10x', tenTimes], ['via tee', viaTee]] as const) {
    t.match(r, { ok: true, completed: true, ending: 'fin', framesSent: 839 }, `${name}: every frame sent, ended with FIN`)
  }

  t.test('capture -> replay -> capture round-trips bytes, order, chunking and timing', async (t) => {
    const call = await listen.next()
    t.equal(call.uuid, '000289f2-eedc-4a20-a6a5-685414930762')
    const again = await readCaptureFile(call.path!)
    t.equal(again.header.mode, 'listen')
    const before = directionStream(capture, 'in')
    const after = directionStream(again, 'in')
    t.equal(after.bytes.length, before.bytes.length, `${before.bytes.length} bytes`)
    t.ok(after.bytes.equals(before.bytes), 'the same bytes in the same order')

    // Each recorded read was one write and is read as one (reads are 18 ms or more apart); a
    // stalled machine merges some, so only most boundaries must survive.
    const boundaries = new Set(after.reads.map((r) => r.offset))
    const kept = before.reads.filter((r) => boundaries.has(r.offset)).length
    t.ok(kept / before.reads.length >= 0.5, `read boundaries kept: ${kept} of ${before.reads.length}`)

    // The cadence itself is proven with an injected clock (test/capture/replayer.test.ts); over
    // real sockets on a shared machine only what load cannot change is checked: a real-cadence
    // replay is never faster than the recording (load only makes it later).
    // Both times count from the connection (accepted by the capture tool / recorded by Asterisk's side).
    const duration = again.endUs / 1000
    const recordedDuration = capture.endUs / 1000
    t.ok(duration >= recordedDuration - 20, `the call lasted at least as long as recorded (${duration.toFixed(0)} ms vs ${recordedDuration.toFixed(0)} ms)`)
    t.ok(after.finUs !== undefined, "Asterisk's FIN came back as a FIN")
    t.equal(directionStream(again, 'out').bytes.length, 0, 'the capture tool never answers')
  })

  t.test('real time, 10x and the tee proxy: the same transcript', async (t) => {
    t.ok(tenTimes.durationMs < realTime.durationMs, `10x took ${Math.round(tenTimes.durationMs)} ms against ${Math.round(realTime.durationMs)} ms`)
    const ids = [realTime.uuid!, tenTimes.uuid!, viaTee.uuid!]
    await h.receiver.waitFor((events) => ids.every((id) => events.some((e) => e.call_id === id && e.type === 'call.ended')), 30000)
    const ended = ids.map((id) => h.receiver.eventsFor(id).find((e) => e.type === 'call.ended')?.data)
    t.equal(ended[0]?.transcript, expected, 'real time: the transcript of exactly these audio bytes')
    t.equal(ended[1]?.transcript, ended[0]?.transcript, '--speed 10 gives the same transcript as real time')
    t.equal(ended[2]?.transcript, ended[0]?.transcript, 'through the tee proxy: the same transcript as direct')
    t.same(ended.map((d) => d?.reason), ['hangup', 'hangup', 'hangup'])
  })

  t.test('the tee proxy passes every byte unchanged and records both directions', async (t) => {
    const call = await tee.next()
    t.equal(call.uuid, viaTee.uuid)
    const recorded = await readCaptureFile(call.path!)
    t.equal(recorded.header.mode, 'tee')
    t.same(recorded.header.server, { address: '127.0.0.1', port: h.port }, 'the header names the real server')
    const sent = Buffer.from(directionStream(capture, 'in').bytes)
    uuidToBytes(viaTee.uuid!).copy(sent, 3)
    const inbound = directionStream(recorded, 'in')
    t.ok(inbound.bytes.equals(sent), 'every byte Asterisk sent, unchanged')
    const outbound = directionStream(recorded, 'out')
    t.equal(outbound.bytes.length, viaTee.server.bytes, 'exactly what the server sent back')
    t.ok(inbound.finUs !== undefined && outbound.finUs !== undefined, 'both FINs passed through and were recorded')
  })
})

t.test('a capture that breaks the protocol: the server hangs up, and replay and tee show it', async (t) => {
  const h = await startHarness()
  t.teardown(() => h.stop())
  const tee = await startCaptureTool(t.testdir(), h.port)
  t.teardown(() => tee.close())

  const plan = planReplay(loadFixtureCapture('violation-bad-dtmf'), 'violation-bad-dtmf')
  const direct = await replayCall(plan, { host: '127.0.0.1', port: h.port })
  t.match(direct, { ok: false, failure: /cut short: the server ended the call \(hangup-frame\) after \d+ of 17 frames/ })
  t.match(direct.server, { ending: 'hangup-frame', endedFirst: true, frames: { '0x00': 1 } })
  const events = await h.receiver.waitFor((all) => all.some((e) => e.call_id === direct.uuid && e.type === 'call.ended'), 10000)
  t.equal(events.find((e) => e.call_id === direct.uuid && e.type === 'call.ended')?.data.error?.code, 'ERR_AUDIOSOCKET_BAD_DTMF')

  const viaTee = await replayCall(plan, { host: '127.0.0.1', port: tee.port })
  t.match(viaTee.server, { ending: 'hangup-frame', endedFirst: true })
  const report = inspectCapture(await readCaptureFile((await tee.next()).path!))
  t.equal(report.inbound.violations[0]?.code, 'bad-dtmf', 'inspect finds the violation in the tee capture')
  t.ok(report.ending.serverHangupAtMs !== undefined, "and the server's hangup frame")
  t.equal(report.ending.by, 'server', 'the server closed first')
})

t.test('the hand-built violations round-trip through the capture tool too (as fast as possible)', async (t) => {
  const listen = await startCaptureTool(t.testdir())
  t.teardown(() => listen.close())
  for (const stem of ['violation-bad-dtmf', 'violation-first-frame', 'violation-truncated-frame', 'violation-rate-change']) {
    const original = loadFixtureCapture(stem)
    await replayCall(planReplay(original, stem), { host: '127.0.0.1', port: listen.port, keepUuid: true, speed: Infinity })
    const again = await readCaptureFile((await listen.next()).path!)
    t.ok(directionStream(again, 'in').bytes.equals(directionStream(original, 'in').bytes), `${stem}: the same bytes`)
  }
})
