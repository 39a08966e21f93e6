/**
 * src/config/ari-settings.ts through loadConfig: ARI off by default, each ARI_* setting read and
 * checked (a bad value names the variable and the fix, never the password), the rule that ARI_URL
 * needs the login, and ARI_EXTERNAL_HOST resolved from the AudioSocket listener when unset.
 */
import t, { type Test } from 'tap'
import { describeSettings, loadConfig, type Config } from '../../src/config/index.js'
import { resolveAriConfig } from '../../src/config/ari-settings.js'
import { AppError } from '../../src/shared/errors.js'

const BASE = { SONIOX_API_KEY: 'sk-test-0123456789abcdef' }
const ARI = { ARI_URL: 'http://127.0.0.1:8088', ARI_USERNAME: 'soniox', ARI_PASSWORD: 'pa ss:w/rd@1' }

function load(env: Record<string, string>): Config {
  return loadConfig({ env: { ...BASE, ...env } })
}

/** The problem lines of the ERR_CONFIG_INVALID that `env` must cause. */
function problems(t: Test, env: Record<string, string>): string[] {
  try {
    load(env)
  } catch (err) {
    t.ok(err instanceof AppError && err.code === 'ERR_CONFIG_INVALID', 'ERR_CONFIG_INVALID')
    return (err as Error).message
      .split('\n')
      .slice(1)
      .map((l) => l.trim())
  }
  t.fail(`expected ${JSON.stringify(env)} to be refused`)
  return []
}

t.test('defaults: ARI off, app audiosocket-soniox, external host from the listener, 5 s requests', async (t) => {
  const c = load({})
  t.same(c.ari, { url: null, username: '', password: '', app: 'audiosocket-soniox', externalHost: '127.0.0.1:9092', requestTimeoutMs: 5000 })
  t.ok(Object.isFrozen(c.ari))
})

t.test('every ARI_* setting is read', async (t) => {
  const c = load({ ...ARI, ARI_APP: 'calls.tap_2-b', ARI_EXTERNAL_HOST: 'pbx-media.example.com:19092', ARI_REQUEST_TIMEOUT_MS: '2500' })
  t.same(c.ari, {
    url: 'http://127.0.0.1:8088',
    username: 'soniox',
    password: 'pa ss:w/rd@1',
    app: 'calls.tap_2-b',
    externalHost: 'pbx-media.example.com:19092',
    requestTimeoutMs: 2500,
  })
  t.equal(load({ ...ARI, ARI_URL: 'https://pbx.example.com/asterisk/ari' }).ari.url, 'https://pbx.example.com/asterisk/ari')
  t.equal(load({ ...ARI, ARI_EXTERNAL_HOST: '[fd00::5]:9092' }).ari.externalHost, '[fd00::5]:9092')
  t.equal(load({ ...ARI, ARI_EXTERNAL_HOST: '10.1.2.3:9092' }).ari.externalHost, '10.1.2.3:9092')
})

t.test('the file keys are ari.*', async (t) => {
  const keys = describeSettings().filter((s) => s.env.startsWith('ARI_'))
  t.same(
    keys.map((s) => `${s.env}=${s.key}`),
    ['ARI_URL=ari.url', 'ARI_USERNAME=ari.username', 'ARI_PASSWORD=ari.password', 'ARI_APP=ari.app', 'ARI_EXTERNAL_HOST=ari.externalHost', 'ARI_REQUEST_TIMEOUT_MS=ari.requestTimeoutMs'],
  )
  t.same(keys.filter((s) => s.sensitive).map((s) => s.env), ['ARI_PASSWORD'])
})

t.test('ARI_EXTERNAL_HOST unset: the listener, a wildcard as 127.0.0.1, IPv6 bracketed', async (t) => {
  t.equal(load({ AUDIOSOCKET_HOST: '0.0.0.0', AUDIOSOCKET_PORT: '9100' }).ari.externalHost, '127.0.0.1:9100')
  t.equal(load({ AUDIOSOCKET_HOST: '::' }).ari.externalHost, '127.0.0.1:9092')
  t.equal(load({ AUDIOSOCKET_HOST: '10.0.0.7' }).ari.externalHost, '10.0.0.7:9092')
  t.equal(load({ AUDIOSOCKET_HOST: 'fd00::7' }).ari.externalHost, '[fd00::7]:9092')
  t.equal(load({ AUDIOSOCKET_HOST: '0.0.0.0', ARI_EXTERNAL_HOST: '192.0.2.1:9092' }).ari.externalHost, '192.0.2.1:9092', 'set: as given')
  const settings = { url: null, username: '', password: '', app: 'a', externalHost: null, requestTimeoutMs: 1 }
  t.equal(resolveAriConfig(settings, { host: '[::1]', port: 1 }).externalHost, '[::1]:1')
})

t.test('bad values name the setting and the fix', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ ARI_URL: 'localhost:8088' }, /^ARI_URL \(ari\.url\): must use http:\/\/ or https:\/\//],
    [{ ARI_URL: 'not a url' }, /^ARI_URL \(ari\.url\): must be an absolute http:\/\/ or https:\/\/ URL .*e\.g\. http:\/\/127\.0\.0\.1:8088/],
    [{ ARI_URL: 'ws://127.0.0.1:8088' }, /^ARI_URL \(ari\.url\): must use http:\/\/ or https:\/\//],
    [{ ARI_URL: 'http://127.0.0.1:8088/ari?api_key=u:p' }, /^ARI_URL \(ari\.url\): must not carry a query or fragment/],
    [{ ARI_USERNAME: 'a:b' }, /^ARI_USERNAME \(ari\.username\): must be an ari\.conf user name: no colon/],
    [{ ARI_APP: 'my app!' }, /^ARI_APP \(ari\.app\): must be 1 to 80 letters, digits, "-", "_" or "\." \(e\.g\. audiosocket-soniox\): value was "my app!"/],
    [{ ARI_EXTERNAL_HOST: '10.0.0.5' }, /^ARI_EXTERNAL_HOST \(ari\.externalHost\): must be host:port that Asterisk connects to, e\.g\. 10\.0\.0\.5:9092/],
    [{ ARI_EXTERNAL_HOST: '10.0.0.5:0' }, /the port must be 1 to 65535/],
    [{ ARI_EXTERNAL_HOST: '0.0.0.0:9092' }, /not a wildcard address/],
    [{ ARI_EXTERNAL_HOST: 'fd00::5:9092' }, /must be host:port/],
    [{ ARI_REQUEST_TIMEOUT_MS: '0' }, /^ARI_REQUEST_TIMEOUT_MS \(ari\.requestTimeoutMs\): must be a whole number from 1 to/],
  ]
  for (const [env, expected] of cases) {
    const lines = problems(t, { ...ARI, ...env })
    t.equal(lines.length, 1, JSON.stringify(env))
    t.match(lines[0], expected)
  }
})

t.test('a URL carrying credentials is refused without showing them', async (t) => {
  const lines = problems(t, { ...ARI, ARI_URL: 'http://soniox:hunter2secret@127.0.0.1:8088' })
  t.match(lines[0], /^ARI_URL \(ari\.url\): must not carry a username or password: set ARI_USERNAME and ARI_PASSWORD instead/)
  t.notMatch(lines.join('\n'), 'hunter2secret')
})

t.test('ARI_PASSWORD is never shown in a problem', async (t) => {
  const lines = problems(t, { ...ARI, ARI_PASSWORD: 'secret-with\nnewline' })
  t.match(lines[0], /^ARI_PASSWORD \(ari\.password\): must not hold a line break or NUL$/)
  t.notMatch(lines.join('\n'), 'secret-with')
})

t.test('ARI_URL set needs ARI_USERNAME and ARI_PASSWORD', async (t) => {
  const both = problems(t, { ARI_URL: 'http://127.0.0.1:8088' })
  t.same(both, [
    'ARI_URL (ari.url): needs ARI_USERNAME and ARI_PASSWORD (a user of ari.conf with read_only = no); ARI_USERNAME and ARI_PASSWORD are not set: set them, or unset ARI_URL to run without ARI',
  ])
  const one = problems(t, { ARI_URL: 'http://127.0.0.1:8088', ARI_USERNAME: 'soniox' })
  t.match(one[0], /ARI_PASSWORD is not set: set it, or unset ARI_URL/)
  t.doesNotThrow(() => load({ ARI_USERNAME: 'soniox' }), 'a login without ARI_URL is harmless')
})
