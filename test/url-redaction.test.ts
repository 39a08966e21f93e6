/**
 * A password or token in WEBHOOK_URL / SONIOX_WEBSOCKET_URL (`https://user:pass@host/...?token=...`,
 * which the webhook client sends as basic auth) never reaches a log line, `check`'s output or a
 * configuration error; the host and path still do, so the admin recognises the receiver.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import { createApp } from '../src/app.js'
import { checkCommand } from '../src/cli/check.js'
import { loadConfig } from '../src/config/index.js'
import { createLogger } from '../src/shared/logger.js'
import { startFakeSoniox } from './support/fake-soniox.js'

const PASSWORD = 's3cret'
const QUERY_TOKEN = 'abc123xyz'
/** Port 1: nothing listens, so `check` reports the webhook as failed, with the URL. */
const WEBHOOK_URL = `https://user:${PASSWORD}@127.0.0.1:1/hook?token=${QUERY_TOKEN}`
const LEAKS = new RegExp(`${PASSWORD}|${QUERY_TOKEN}`)

function collector(): { stream: Writable; text: () => string } {
  let text = ''
  const stream = new Writable({
    write(chunk: Buffer, _e, done) {
      text += chunk.toString()
      done()
    },
  })
  return { stream, text: () => text }
}

t.test('a configuration error shows the bad URL with its password and query values masked', async (t) => {
  const env = { SONIOX_API_KEY: 'test-key', WEBHOOK_URL: `ftp://user:${PASSWORD}@host.example/hook?token=${QUERY_TOKEN}`, SONIOX_WEBSOCKET_URL: `https://user:${PASSWORD}@stt.example/ws` }
  const err = t.throws(() => loadConfig({ env })) as Error
  t.match(err.message, /WEBHOOK_URL \(webhook\.url\): must use http: or https:: value was "ftp:\/\/user:\*\*\*@host\.example\/hook\?token=\*\*\*"/)
  t.match(err.message, /SONIOX_WEBSOCKET_URL \(soniox\.websocketUrl\): must be a wss:\/\/ \(or ws:\/\/\) URL: value was "https:\/\/user:\*\*\*@stt\.example\/ws"/)
  t.notMatch(err.message, LEAKS)
})

t.test('the listening line shows both URLs redacted', async (t) => {
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  const config = loadConfig({
    env: { AUDIOSOCKET_PORT: '0', HTTP_PORT: '0', SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: `${soniox.url}?key=${QUERY_TOKEN}`, WEBHOOK_URL },
  })
  const logs = collector()
  const app = createApp(config, createLogger({ level: 'debug', destination: logs.stream }), { sink: { publish() {}, close: async () => {} } })
  await app.start()
  await app.stop(1000)
  const listening = logs
    .text()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .find((record) => record.msg === 'AudioSocket server listening')
  t.match(listening, { webhook: 'https://user:***@127.0.0.1:1/hook?token=***', sonioxUrl: /^ws:\/\/127\.0\.0\.1:\d+\/.*\?key=\*\*\*$/ })
  t.notMatch(logs.text(), LEAKS)
})

t.test('check prints the webhook URL (config line, webhook line) redacted', async (t) => {
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  const dir = t.testdir({})
  const stdout = collector()
  const stderr = collector()
  const code = await checkCommand([], {
    env: { SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url, WEBHOOK_URL, WEBHOOK_TIMEOUT_MS: '2000', SPOOL_DIR: dir },
    stdout: stdout.stream,
    stderr: stderr.stream,
  })
  t.equal(code, 1, 'the webhook cannot be reached')
  t.match(stdout.text(), /^ok {4}config {3}valid: .*events to https:\/\/user:\*\*\*@127\.0\.0\.1:1\/hook\?token=\*\*\*$/m)
  t.match(stdout.text(), /^FAIL {2}webhook {2}https:\/\/user:\*\*\*@127\.0\.0\.1:1\/hook\?token=\*\*\* /m)
  t.notMatch(stdout.text() + stderr.text(), LEAKS)
})
