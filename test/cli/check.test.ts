/**
 * `audiosocket-soniox check`, spawned as an admin runs it after installing: one verdict per item,
 * a real (stand-in) Soniox session and a real signed POST, and an exit code a script can use.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FAKE_ARI_PASSWORD, FAKE_ARI_USERNAME, startFakeAri } from '../support/fake-ari.js'
import { startFakeSoniox } from '../support/fake-soniox.js'
import { freePort } from '../support/free-port.js'
import { WEBHOOK_SECRET } from '../support/harness.js'
import { spawnCli } from '../support/spawn-server.js'
import { startWebhookReceiver } from '../support/webhook-receiver.js'

t.test('everything works: ok per item, a signed test event, exit 0', async (t) => {
  const soniox = await startFakeSoniox()
  const receiver = await startWebhookReceiver({ secret: WEBHOOK_SECRET })
  const spoolDir = mkdtempSync(join(tmpdir(), 'audiosocket-soniox-check-'))
  t.teardown(async () => {
    await receiver.close()
    await soniox.close()
    rmSync(spoolDir, { recursive: true, force: true })
  })
  const p = spawnCli(['check'], {
    SONIOX_API_KEY: 'test-key',
    SONIOX_WEBSOCKET_URL: soniox.url,
    SONIOX_LANGUAGE_HINTS: 'en,de',
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET,
    SPOOL_DIR: join(spoolDir, 'spool'),
  })
  t.equal(await p.exited, 0)
  const out = p.stdoutLines
  t.match(out[0], /^ok {4}config {3}valid: AudioSocket on 127\.0\.0\.1:9092, HTTP off, events to http:\/\/127\.0\.0\.1:\d+/)
  t.match(out[1], /^ok {4}dns {6}127\.0\.0\.1 resolves to 127\.0\.0\.1$/)
  t.match(out[2], /^ok {4}soniox {3}session accepted and finished in \d+ ms \(connected in \d+ ms; model stt-rt-v6\)$/)
  t.equal(out[3], 'ok    model    stt-rt-v6 exists (Speech-to-Text Real-time v6)', 'the default model, asked of the models API')
  t.match(out[4], /^ok {4}webhook {2}http:\/\/127\.0\.0\.1:\d+\/\S* answered 204 to a signed test event$/)
  t.match(out[5], /^ok {4}spool {4}.*spool does not exist yet; the server creates it/)
  t.equal(out.at(-1), 'verdict: ready to take calls')

  const session = soniox.sessions[0]
  t.equal(soniox.sessions.length, 1)
  t.match(session?.startMessage, { client_reference_id: 'audiosocket-soniox-check', language_hints: ['en', 'de'] }, 'the configured options are what is checked')
  t.equal(session?.audio.length, 1600, '100 ms of silence')
  t.equal(session?.endOfAudio, 'binary', 'then the empty frame')
  t.same(session?.violations, [])
  t.same(soniox.apiRequests, [{ method: 'GET', url: '/v1/models', authorization: 'Bearer test-key' }], 'the models API of the same server, with the key')
  t.equal(receiver.requests.length, 1)
  const request = receiver.requests[0]
  t.equal(request?.signatureValid, true, 'the test event is signed like every event')
  t.match(request?.body, { type: 'webhook.test', call_id: '00000000-0000-0000-0000-000000000000', seq: 0, data: { version: String } })
})

t.test('a refused key and a refusing webhook: FAIL lines that say what to fix, exit 1', async (t) => {
  const soniox = await startFakeSoniox()
  const receiver = await startWebhookReceiver({ respond: () => ({ status: 401, body: '{"error":"bad signature"}' }) })
  t.teardown(async () => {
    await receiver.close()
    await soniox.close()
  })
  const p = spawnCli(['check'], { SONIOX_API_KEY: 'not-the-key', SONIOX_WEBSOCKET_URL: soniox.url, WEBHOOK_URL: receiver.url })
  t.equal(await p.exited, 1)
  const text = p.stdoutLines.join('\n')
  t.match(text, /^FAIL {2}soniox {3}Soniox error 401 .*SONIOX_API_KEY is refused/m)
  t.match(text, /^FAIL {2}webhook {2}http:\/\/\S+ answered 401: \{"error":"bad signature"\}$/m)
  t.match(text, /^verdict: 2 problem\(s\)/m)
  t.notMatch(text + p.stderrLines.join('\n'), /not-the-key/, 'the key is never printed')
})

t.test('no webhook: skipped, not failed; bad settings: exit 78', async (t) => {
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  const p = spawnCli(['check'], { SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url })
  t.equal(await p.exited, 0)
  t.match(p.stdoutLines.join('\n'), /^skip {2}webhook {2}WEBHOOK_URL is not set/m)

  const bad = spawnCli(['check'], { SONIOX_API_KEY: 'test-key', MAX_CALLS: 'lots' })
  t.equal(await bad.exited, 78)
  t.match(bad.stdoutLines.join('\n'), /^FAIL {2}config {3}invalid configuration:\n\s+MAX_CALLS \(admission\.maxCalls\): must be a whole number/m)
})

t.test('a retired variable (WEBHOOK_MAX_ATTEMPTS) is a warn line that says what replaced it, not a failure', async (t) => {
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  const p = spawnCli(['check'], { SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url, WEBHOOK_MAX_ATTEMPTS: '5' })
  t.equal(await p.exited, 0, 'a warning does not fail the check')
  const out = p.stdoutLines
  t.match(out[0], /^ok {4}config {3}valid:/)
  t.match(out[1], /^warn {2}config {3}WEBHOOK_MAX_ATTEMPTS is no longer used: .*WEBHOOK_MAX_AGE.*dead-letter file; remove WEBHOOK_MAX_ATTEMPTS$/)
})

t.test('ARI_URL set: GET /ari/asterisk/info proves the address and the login; a refused login or no ARI is a FAIL that says what to fix', async (t) => {
  const soniox = await startFakeSoniox()
  const ari = await startFakeAri({ asteriskVersion: '22.10.1' })
  t.teardown(async () => {
    await ari.close()
    await soniox.close()
  })
  const env = { SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url, ARI_URL: ari.url, ARI_USERNAME: FAKE_ARI_USERNAME, ARI_PASSWORD: FAKE_ARI_PASSWORD }

  const ok = spawnCli(['check'], env)
  t.equal(await ok.exited, 0)
  t.match(ok.stdoutLines.join('\n'), /^ok {4}ari {6}http:\/\/127\.0\.0\.1:\d+\/ari reachable, login accepted \(Asterisk 22\.10\.1\)$/m)
  t.same(
    ari.requests.map((r) => `${r.method} ${r.rawUrl}`),
    ['GET /ari/asterisk/info'],
  )
  t.same(ari.violations, [])

  const refused = spawnCli(['check'], { ...env, ARI_PASSWORD: 'wrong-ari-password' })
  t.equal(await refused.exited, 1)
  const refusedText = refused.stdoutLines.join('\n')
  t.match(refusedText, /^FAIL {2}ari {6}ARI GET \/ari\/asterisk\/info answered 401: Authentication required \(ARI refused the username\/password: check ARI_USERNAME\/ARI_PASSWORD and ari\.conf\)$/m)
  t.match(refusedText, /^verdict: 1 problem\(s\)/m)
  t.notMatch(refusedText + refused.stderrLines.join('\n'), 'wrong-ari-password', 'the password is never printed')

  const port = await freePort()
  const unreachable = spawnCli(['check'], { ...env, ARI_URL: `http://127.0.0.1:${port}` })
  t.equal(await unreachable.exited, 1)
  t.match(unreachable.stdoutLines.join('\n'), new RegExp(`^FAIL {2}ari {6}ARI GET /ari/asterisk/info: http://127\\.0\\.0\\.1:${port}/ari is unreachable: .*ECONNREFUSED.*\\(is Asterisk running, http\\.conf enabled = yes`, 'm'))

  const off = spawnCli(['check'], { SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url })
  t.equal(await off.exited, 0)
  t.match(off.stdoutLines.join('\n'), /^skip {2}ari {6}ARI_URL is not set: no tapping of bridged calls$/m)

  const noLogin = spawnCli(['check'], { SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url, ARI_URL: ari.url })
  t.equal(await noLogin.exited, 78, 'ARI_URL without the login is a settings problem')
  t.match(noLogin.stdoutLines.join('\n'), /ARI_URL \(ari\.url\): needs ARI_USERNAME and ARI_PASSWORD/)
})

t.test('SONIOX_MODEL asked of Soniox\'s models API: an alias and a deprecated model pass with what to know, an unknown model fails', async (t) => {
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  const env = { SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url }
  const modelLine = (lines: string[]): string | undefined => lines.find((l) => / model {4}/.test(l))

  const alias = spawnCli(['check'], { ...env, SONIOX_MODEL: 'stt-rt-preview' })
  t.equal(await alias.exited, 0)
  t.equal(modelLine(alias.stdoutLines), 'ok    model    stt-rt-preview is an alias of stt-rt-v6: calls are transcribed by stt-rt-v6 (Soniox may move the alias to a newer model; SONIOX_MODEL=stt-rt-v6 pins it)')

  const deprecated = spawnCli(['check'], { ...env, SONIOX_MODEL: 'stt-rt-v5' })
  t.equal(await deprecated.exited, 0, 'a deprecated model still works: a warning, not a failure')
  t.equal(modelLine(deprecated.stdoutLines), 'warn  model    stt-rt-v5 is deprecated (retires 2026-12-15): set SONIOX_MODEL=stt-rt-v6 before it retires')
  t.equal(deprecated.stdoutLines.at(-1), 'verdict: ready to take calls')

  const unknown = spawnCli(['check'], { ...env, SONIOX_MODEL: 'stt-rt-v9' })
  t.equal(await unknown.exited, 1, 'a model Soniox does not list fails the check')
  const text = unknown.stdoutLines.join('\n')
  t.match(text, /^FAIL {2}soniox {3}Soniox error 400 invalid_request: Invalid model specified\./m, 'the session says so too')
  t.match(text, /^FAIL {2}model {4}SONIOX_MODEL stt-rt-v9 is not a Soniox model: Soniox refuses every session with it \(400 "Invalid model specified\."\)\. 127\.0\.0\.1:\d+ lists these real-time models: stt-rt-v6, stt-rt-v5$/m)
  t.match(text, /^verdict: 2 problem\(s\)/m)
})

t.test('the models API cannot answer: a warning, the session decides', async (t) => {
  const soniox = await startFakeSoniox({ modelsApiError: { status: 503, body: '{"status_code":503,"error_type":"service_unavailable","message":"Try again later."}' } })
  t.teardown(() => soniox.close())
  const p = spawnCli(['check'], { SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url })
  t.equal(await p.exited, 0)
  t.match(p.stdoutLines.join('\n'), /^warn {2}model {4}could not ask Soniox's models API about stt-rt-v6 \(GET http:\/\/127\.0\.0\.1:\d+\/v1\/models\): HTTP 503: service_unavailable Try again later\. \(the soniox item proves the model by a session\)$/m)
})
