/**
 * Running it in production, as separate processes: the HTTP endpoint's metrics parse and move while
 * calls run, and SIGTERM drains (not ready, new connections refused, live calls finish on their own
 * or are ended properly at DRAIN_TIMEOUT_MS, events flushed, exit 0).
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { expectedTranscript, startFakeSoniox } from '../support/fake-soniox.js'
import { loadCapture, loadCaptureSummary } from '../support/frames.js'
import { freePort } from '../support/free-port.js'
import { WEBHOOK_SECRET } from '../support/harness.js'
import { scrapeMetrics } from '../support/prometheus.js'
import { captureAudio, replayCapture } from '../support/replay.js'
import { framesSentBack } from '../support/silence.js'
import { spawnCli } from '../support/spawn-server.js'
import { callSessions } from '../support/soniox-probes.js'
import { SONIOX_VERIFIED_MESSAGE } from '../../src/soniox/soniox-health.js'
import { startWebhookReceiver } from '../support/webhook-receiver.js'

const DTMF = loadCapture('app-8k-dtmf')
const SPEECH = loadCapture('app-8k-speech')

async function startServer(t: Test, env: Record<string, string> = {}) {
  const soniox = await startFakeSoniox()
  const receiver = await startWebhookReceiver({ secret: WEBHOOK_SECRET })
  const spoolDir = mkdtempSync(join(tmpdir(), 'audiosocket-soniox-ops-'))
  const httpPort = await freePort()
  const spawnedAt = Date.now()
  const p = spawnCli(['serve'], {
    AUDIOSOCKET_PORT: '0',
    HTTP_PORT: String(httpPort),
    SONIOX_API_KEY: 'test-key',
    SONIOX_WEBSOCKET_URL: soniox.url,
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET,
    SPOOL_DIR: spoolDir,
    ...env,
  })
  t.teardown(async () => {
    p.child.kill('SIGKILL')
    await receiver.close()
    await soniox.close()
    rmSync(spoolDir, { recursive: true, force: true })
  })
  const listening = await p.waitForLog((r) => r.msg === 'AudioSocket server listening')
  // Ready once Soniox (the stand-in) has answered the start probe: its first session.
  await p.waitForLog((r) => r.msg === SONIOX_VERIFIED_MESSAGE)
  return { p, soniox, receiver, httpPort, port: listening.port as number, spawnedAt }
}

t.test('the process metrics an SRE expects, under prom-client\'s names, with sane values', async (t) => {
  const s = await startServer(t)
  const m = await scrapeMetrics(s.httpPort)
  const now = Date.now()
  t.ok(m.value('process_cpu_user_seconds_total') > 0)
  t.ok(m.value('process_cpu_seconds_total') > 0, `CPU ${m.value('process_cpu_seconds_total')} s`)
  t.ok(m.value('process_cpu_seconds_total') >= m.value('process_cpu_system_seconds_total'))
  t.ok(m.value('process_resident_memory_bytes') > 0)
  const start = m.value('process_start_time_seconds') * 1000
  t.ok(start >= s.spawnedAt - 1000 && start <= now, `started within its own lifetime (${start - s.spawnedAt} ms after the spawn)`)
  t.ok(m.value('nodejs_eventloop_lag_p99_seconds') >= 0)
  t.ok(m.value('nodejs_eventloop_lag_max_seconds') >= m.value('nodejs_eventloop_lag_p50_seconds'))
  t.ok(m.value('nodejs_heap_size_used_bytes') > 0)
  if (process.platform !== 'linux') return
  const open = m.value('process_open_fds')
  t.ok(open >= 3, `open fds ${open}`)
  t.ok(m.value('process_max_fds') >= open)
})

t.test('metrics parse and move as a call runs', async (t) => {
  const s = await startServer(t)
  const before = await scrapeMetrics(s.httpPort)
  t.equal(before.value('audiosocket_calls_active'), 0)
  t.equal(before.value('audiosocket_calls_started_total'), 0)
  t.equal(before.value('audiosocket_calls_ended_total', { reason: 'hangup' }), 0, 'end reasons exist at 0 from the start')
  t.equal(before.value('audiosocket_calls_total', { reason: 'hangup' }), 0, 'and under the deprecated name')
  t.equal(before.value('audiosocket_ready'), 1)
  t.equal(before.types.get('audiosocket_transcript_delivery_latency_seconds'), 'histogram')
  t.ok(before.samples.every((x) => !Object.values(x.labels).some((v) => /^[0-9a-f-]{36}$/.test(v))), 'no per-call labels')

  const id = randomUUID()
  const summary = loadCaptureSummary('app-8k-dtmf')
  const replay = replayCapture(DTMF, { port: s.port, speed: 4, uuidBytes: uuidToBytes(id) })
  await s.p.waitForLog((r) => r.msg === 'audio format' && r.callId === id)
  const during = await scrapeMetrics(s.httpPort)
  t.equal(during.value('audiosocket_calls_active'), 1, 'one call in progress')
  t.equal(during.value('audiosocket_soniox_sessions_active'), 1, 'with its Soniox session')
  t.ok(during.value('audiosocket_frames_received_total', { kind: 'audio' }) > 0, 'audio frames are being counted')
  t.equal(during.value('audiosocket_soniox_connect_seconds_count'), 1, 'the connect time was observed')

  await replay
  const events = await s.receiver.waitFor((all) => all.some((e) => e.call_id === id && e.type === 'call.ended'), 15000)
  const mine = events.filter((e) => e.call_id === id)
  const finals = mine.filter((e) => e.type === 'transcript.final').length
  t.ok(finals > 0)
  // The receiver records an event before the server has read its 2xx; wait for the counter to catch up.
  let after = await scrapeMetrics(s.httpPort)
  while (after.value('audiosocket_webhook_deliveries_total') < mine.length) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    after = await scrapeMetrics(s.httpPort)
  }

  const audioFrames = DTMF.frames.filter((f) => f.kind === 0x10)
  t.equal(after.value('audiosocket_calls_active'), 0)
  t.equal(after.value('audiosocket_calls_started_total'), 1)
  t.equal(after.value('audiosocket_calls_ended_total', { reason: 'hangup' }), 1)
  t.equal(after.value('audiosocket_calls_total', { reason: 'hangup' }), 1, 'the deprecated name follows')
  t.equal(after.value('audiosocket_connections_total'), 1)
  t.equal(after.value('audiosocket_frames_received_total', { kind: 'uuid' }), 1)
  t.equal(after.value('audiosocket_frames_received_total', { kind: 'audio' }), audioFrames.length, 'every audio frame counted')
  t.equal(after.value('audiosocket_bytes_received_total', { kind: 'audio' }), audioFrames.reduce((n, f) => n + f.length, 0), 'and every payload byte')
  t.equal(after.value('audiosocket_frames_received_total', { kind: 'dtmf' }), summary.dtmf.length)
  t.equal(after.value('audiosocket_soniox_sessions_total'), 1)
  t.equal(after.value('audiosocket_soniox_sessions_active'), 0)
  t.equal(after.value('audiosocket_webhook_deliveries_total'), mine.length, 'one delivery per event')
  t.equal(after.value('audiosocket_webhook_failures_total'), 0)
  t.equal(after.value('audiosocket_webhook_pending_events'), 0, 'the spool is empty again')
  t.equal(after.value('audiosocket_transcript_delivery_latency_seconds_count'), finals, 'one latency sample per transcript.final')
  const latencySum = after.value('audiosocket_transcript_delivery_latency_seconds_sum')
  t.ok(latencySum > 0 && latencySum < finals * 1, `latency measured and small on loopback (${latencySum.toFixed(4)} s in all)`)
  const ended = mine.find((e) => e.type === 'call.ended')
  t.equal(after.value('audiosocket_frames_sent_total', { kind: 'silence' }), ended.data.silence_frames_sent, 'silence frames sent agree with call.ended')
})

t.test('SIGTERM drains: not ready, new connections refused, live calls finish, the rest end at DRAIN_TIMEOUT_MS, exit 0', async (t) => {
  const s = await startServer(t, { DRAIN_TIMEOUT_MS: '4000', FLUSH_TIMEOUT_MS: '5000' })
  const short = randomUUID()
  const long = randomUUID()
  // The short call ends by itself within the drain; the long one (18 s of speech) outlasts it.
  const shortReplay = replayCapture(DTMF, { port: s.port, speed: 8, uuidBytes: uuidToBytes(short) })
  const longReplay = replayCapture(SPEECH, { port: s.port, speed: 1, uuidBytes: uuidToBytes(long) })
  await s.p.waitForLog((r) => r.msg === 'audio format' && r.callId === short)
  await s.p.waitForLog((r) => r.msg === 'audio format' && r.callId === long)

  s.p.child.kill('SIGTERM')
  await s.p.waitForLog((r) => r.msg === 'draining: new connections refused, live calls go on')
  const ready = await fetch(`http://127.0.0.1:${s.httpPort}/readyz`)
  t.equal(ready.status, 503, 'not ready while draining (the HTTP endpoint stays up)')
  t.match(await ready.json(), { status: 'not_ready', reason: 'draining' })
  const refused = await new Promise<string>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: s.port })
    socket.once('connect', () => {
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'))
  })
  t.equal(refused, 'ECONNREFUSED', 'a new connection is refused')
  t.equal((await scrapeMetrics(s.httpPort)).value('audiosocket_ready'), 0)

  const [shortResult, longResult] = await Promise.all([shortReplay, longReplay])
  t.equal(await s.p.exited, 0, 'exit code 0')

  t.equal(shortResult.closedByServer, false, 'the short call was not cut')
  t.notOk(framesSentBack(shortResult.received).some((f) => f.type === 'hangup'), 'and got no hangup frame')
  const shortEvents = s.receiver.eventsFor(short)
  t.equal(shortEvents.at(-1)?.type, 'call.ended')
  t.equal(shortEvents.at(-1)?.data.reason, 'hangup')
  t.equal(shortEvents.at(-1)?.data.transcript, expectedTranscript(captureAudio(DTMF), 8000).transcript, 'its whole transcript was delivered')

  t.ok(longResult.closedByServer, 'the long call was ended by the server at the drain timeout')
  const back = framesSentBack(longResult.received)
  t.equal(back.at(-1)?.type, 'hangup', 'with a hangup frame to Asterisk')
  const longEvents = s.receiver.eventsFor(long)
  const ended = longEvents.at(-1)
  t.equal(ended?.type, 'call.ended')
  t.equal(ended?.data.reason, 'shutdown')
  const session = callSessions(s.soniox).find((x) => x.startMessage?.client_reference_id === long)
  t.equal(session?.endOfAudio, 'binary', 'Soniox was asked for its last words')
  t.equal(ended?.data.transcript, session?.transcript, 'and every word it sent was delivered before exit')
  t.ok((ended?.data.audio_ms ?? 0) > 4000, `the call went on during the drain (${ended?.data.audio_ms} ms of audio)`)
  t.same(longEvents.map((e) => e.seq), longEvents.map((_, i) => i), 'no event lost or reordered')
  const logs = s.p.stderrLines.map((l) => JSON.parse(l) as Record<string, unknown>)
  t.ok(logs.some((r) => r.msg === 'drain timeout: ending the remaining calls' && r.activeCalls === 1))
})

t.test('drain with no live calls exits at once', async (t) => {
  const s = await startServer(t, { DRAIN_TIMEOUT_MS: '60000' })
  const started = Date.now()
  s.p.child.kill('SIGINT')
  t.equal(await s.p.exited, 0)
  t.ok(Date.now() - started < 10000, 'the drain timeout is an upper bound, not a wait')
})
