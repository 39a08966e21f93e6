/**
 * CAPTURE_DIR: the real server records every call it serves, both directions, and the recording
 * replays to the same transcript. A directory that cannot be written costs the recording, never
 * the call.
 */
import t from 'tap'
import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { directionStream, readCaptureFile } from '../../src/capture/index.js'
import { planReplay, replayCall } from '../../src/tools/index.js'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { loadFixtureCapture } from '../support/capture-fixtures.js'
import { startHarness } from '../support/harness.js'

t.test('with CAPTURE_DIR the server records each call, and the recording replays to the same transcript', async (t) => {
  const dir = join(t.testdir(), 'calls')
  const h = await startHarness({ env: { CAPTURE_DIR: dir } })
  let stopped = false
  t.teardown(() => (stopped ? undefined : h.stop()))
  t.ok(h.logs.some((r) => r.msg === 'recording every call to CAPTURE_DIR (the files hold call audio)' && r.captureDir === dir), 'the start log says calls are recorded')

  const original = loadFixtureCapture('app-8k-dtmf')
  const id = randomUUID()
  const result = await replayCall(planReplay(original, 'app-8k-dtmf'), { host: '127.0.0.1', port: h.port, speed: 8, uuid: id })
  t.equal(result.ok, true)
  await h.receiver.waitFor((events) => events.some((e) => e.call_id === id && e.type === 'call.ended'), 15000)
  const transcript = h.receiver.eventsFor(id).find((e) => e.type === 'call.ended')?.data.transcript as string
  await h.stop() // drains the recorder
  stopped = true

  const files = readdirSync(dir)
  // If the recording failed, its warning says why.
  const captureLogs = JSON.stringify(h.logs.filter((r) => r.component === 'capture'))
  t.equal(files.length, 1, 'one capture for one call')
  t.match(files[0], new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\d\\.\\d{3}Z-${id}\\.ascap$`), `named by time and call id (capture logs: ${captureLogs})`)
  const recorded = await readCaptureFile(join(dir, files[0]!))
  t.match(recorded.header, { mode: 'server', asterisk: { address: '127.0.0.1' }, server: { port: h.port } })
  const sent = Buffer.from(directionStream(original, 'in').bytes)
  uuidToBytes(id).copy(sent, 3)
  t.ok(directionStream(recorded, 'in').bytes.equals(sent), 'every byte the call sent, as read by the server')
  t.equal(directionStream(recorded, 'out').bytes.length, result.server.bytes, 'and everything the server wrote back')
  t.ok(directionStream(recorded, 'in').finUs !== undefined, "Asterisk's FIN")

  const h2 = await startHarness()
  t.teardown(() => h2.stop())
  const again = await replayCall(planReplay(recorded, 'recorded'), { host: '127.0.0.1', port: h2.port, speed: Infinity })
  t.equal(again.ok, true)
  await h2.receiver.waitFor((events) => events.some((e) => e.call_id === again.uuid && e.type === 'call.ended'), 15000)
  t.equal(h2.receiver.eventsFor(again.uuid!).find((e) => e.type === 'call.ended')?.data.transcript, transcript, 'the server-side recording replays to the same transcript')
  t.ok(transcript.length > 0)
})

t.test('a CAPTURE_DIR that cannot be written: one warning, and the call is untouched', async (t) => {
  const root = t.testdir()
  writeFileSync(join(root, 'file'), 'not a directory')
  const h = await startHarness({ env: { CAPTURE_DIR: join(root, 'file', 'calls') } })
  t.teardown(() => h.stop())
  const id = randomUUID()
  const result = await replayCall(planReplay(loadFixtureCapture('app-8k-dtmf'), 'x'), { host: '127.0.0.1', port: h.port, speed: Infinity, uuid: id })
  t.match(result, { ok: true, completed: true })
  const events = await h.receiver.waitFor((all) => all.some((e) => e.call_id === id && e.type === 'call.ended'), 15000)
  const ended = events.find((e) => e.call_id === id && e.type === 'call.ended')
  t.equal(ended?.data.reason, 'hangup')
  t.same(events.filter((e) => e.call_id === id && e.type === 'call.dtmf').map((e) => e.data.digit), ['2', '4', '7', '#'], 'the call ran completely')
  t.ok(ended?.data.transcript.length > 0)
  const warnings = h.logs.filter((r) => r.msg === 'call recording stopped; the call continues unrecorded')
  t.equal(warnings.length, 1, 'exactly one warning')
  t.match(warnings[0], { level: 40, component: 'capture', err: { code: 'ERR_CAPTURE_WRITE' } })
})
