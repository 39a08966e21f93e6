/**
 * src/config/delivery-settings.ts, the delivery settings: WEBHOOK_MAX_AGE, WEBHOOK_CONCURRENCY, WEBHOOK_HEADERS,
 * WEBHOOK_CA_FILE, SPOOL_DIR, SPOOL_MAX_BYTES, EVENTS_FILE.
 */
import { join } from 'node:path'
import t from 'tap'
import { loadConfig, type Config } from '../../src/config/index.js'

function load(extra: Record<string, string> = {}): Config {
  return loadConfig({ env: { SONIOX_API_KEY: 'sk-test', ...extra } })
}

function problems(extra: Record<string, string>): string {
  try {
    load(extra)
  } catch (err) {
    return (err as Error).message
  }
  return ''
}

const HOUR = 3_600_000

t.test('WEBHOOK_MAX_AGE takes durations with a unit, or milliseconds', async (t) => {
  t.equal(load().webhook.maxAgeMs, 24 * HOUR)
  for (const [value, ms] of [
    ['24h', 24 * HOUR],
    ['90m', 90 * 60_000],
    ['3600s', HOUR],
    ['2d', 48 * HOUR],
    ['1500ms', 1500],
    ['60000', 60_000],
    [' 12H ', 12 * HOUR],
  ] as const) {
    t.equal(load({ WEBHOOK_MAX_AGE: value }).webhook.maxAgeMs, ms, value)
  }
  for (const bad of ['soon', '1.5h', '-1h', '10', '31d', '24 hours']) {
    t.match(problems({ WEBHOOK_MAX_AGE: bad }), /WEBHOOK_MAX_AGE \(webhook\.maxAgeMs\): must be a duration from 1s to 30d/, bad)
  }
  t.notOk('maxAttempts' in load().webhook, 'WEBHOOK_MAX_ATTEMPTS is gone: events are retried until WEBHOOK_MAX_AGE')
})

t.test('SPOOL_MAX_BYTES takes sizes with K/M/G/T (powers of 1024)', async (t) => {
  t.equal(load().spool.maxBytes, 256 * 2 ** 20)
  t.equal(load({ SPOOL_MAX_BYTES: '1G' }).spool.maxBytes, 2 ** 30)
  t.equal(load({ SPOOL_MAX_BYTES: '512MiB' }).spool.maxBytes, 512 * 2 ** 20)
  t.equal(load({ SPOOL_MAX_BYTES: '65536' }).spool.maxBytes, 65536)
  for (const bad of ['lots', '1000', '2T', '1.5G']) {
    t.match(problems({ SPOOL_MAX_BYTES: bad }), /SPOOL_MAX_BYTES \(spool\.maxBytes\): must be a size from 64K to 1T/, bad)
  }
})

t.test('SPOOL_DIR, EVENTS_FILE and WEBHOOK_CONCURRENCY', async (t) => {
  t.equal(load({ SPOOL_DIR: '/var/lib/audiosocket-soniox' }).spool.dir, '/var/lib/audiosocket-soniox')
  t.match(problems({ SPOOL_DIR: '  ' }), /SPOOL_DIR \(spool\.dir\): must be a directory path/)
  t.equal(load({ EVENTS_FILE: '/var/log/events.jsonl' }).events.file, '/var/log/events.jsonl')
  t.equal(load({ EVENTS_FILE: '' }).events.file, null)
  t.equal(load({ WEBHOOK_CONCURRENCY: '32' }).webhook.concurrency, 32)
  t.match(problems({ WEBHOOK_CONCURRENCY: '0' }), /WEBHOOK_CONCURRENCY .*1 to 1000/)
})

t.test('WEBHOOK_HEADERS: a JSON object; reserved or malformed headers refused without echoing values', async (t) => {
  t.same(load({ WEBHOOK_HEADERS: '{"Authorization": "Bearer tok-123", "X-Tenant": "acme"}' }).webhook.headers, { Authorization: 'Bearer tok-123', 'X-Tenant': 'acme' })
  t.same(load({ WEBHOOK_HEADERS: '' }).webhook.headers, {})
  const cases: Array<[string, RegExp]> = [
    ['Bearer tok-123', /must be a JSON object of header names/],
    ['["a"]', /must be a JSON object/],
    ['{"Bad Name": "tok-123"}', /"Bad Name" is not a valid header name/],
    ['{"X-Token": 123}', /value of X-Token must be a string/],
    ['{"X-Token": "tok-123\\r\\nInjected: 1"}', /value of X-Token must be a string without control characters/],
    ['{"webhook-signature": "tok-123"}', /webhook-signature is set by the server/],
    ['{"Content-Type": "text/plain"}', /Content-Type is set by the server/],
  ]
  for (const [value, expected] of cases) {
    const message = problems({ WEBHOOK_HEADERS: value })
    t.match(message, /WEBHOOK_HEADERS \(webhook\.headers\)/, value)
    t.match(message, expected, value)
    t.notMatch(message, /tok-123/, 'the (possibly secret) value is never echoed')
  }
})

t.test('WEBHOOK_CA_FILE must be a readable PEM file', async (t) => {
  const dir = t.testdir({
    'ca.pem': '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    'key.pem': '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n',
  })
  t.equal(load({ WEBHOOK_CA_FILE: join(dir, 'ca.pem') }).webhook.caFile, join(dir, 'ca.pem'))
  t.match(problems({ WEBHOOK_CA_FILE: join(dir, 'nope.pem') }), /WEBHOOK_CA_FILE \(webhook\.caFile\): .*nope\.pem cannot be read/)
  t.match(problems({ WEBHOOK_CA_FILE: join(dir, 'key.pem') }), /WEBHOOK_CA_FILE .*holds no PEM certificate/)
})

t.test('the config file takes the same forms', async (t) => {
  const dir = t.testdir({
    'c.json': JSON.stringify({
      soniox: { apiKey: 'k' },
      webhook: { url: 'https://hooks.example/in', maxAgeMs: '36h', concurrency: 4, headers: { Authorization: 'Bearer x' } },
      spool: { dir: '/srv/spool', maxBytes: '1G' },
      events: { file: '/srv/events.jsonl' },
    }),
  })
  const c = loadConfig({ env: {}, configFile: join(dir, 'c.json') })
  t.equal(c.webhook.maxAgeMs, 36 * HOUR)
  t.equal(c.webhook.concurrency, 4)
  t.same(c.webhook.headers, { Authorization: 'Bearer x' })
  t.same(c.spool, { dir: '/srv/spool', maxBytes: 2 ** 30 })
  t.same(c.events, { file: '/srv/events.jsonl' })
})

t.test('WEBHOOK_FORMAT: standard by default, or avr', async (t) => {
  t.equal(load().webhook.format, 'standard')
  t.equal(load({ WEBHOOK_URL: 'http://127.0.0.1/events', WEBHOOK_FORMAT: 'avr' }).webhook.format, 'avr')
  t.match(problems({ WEBHOOK_FORMAT: 'AVR Core' }), /WEBHOOK_FORMAT \(webhook\.format\): must be standard or avr/)
})

t.test('WEBHOOK_FORMAT=avr: needs WEBHOOK_URL, refuses partials, and its secret must be a header value', async (t) => {
  const avr = { WEBHOOK_URL: 'http://127.0.0.1/events', WEBHOOK_FORMAT: 'avr' }
  t.match(problems({ WEBHOOK_FORMAT: 'avr' }), /WEBHOOK_FORMAT \(webhook\.format\): avr shapes the requests to WEBHOOK_URL, which is not set/)
  t.match(problems({ ...avr, TRANSCRIPT_PARTIAL_EVENTS: 'true' }), /TRANSCRIPT_PARTIAL_EVENTS \(transcript\.partialEvents\): WEBHOOK_FORMAT=avr sends no partial transcripts/)
  t.equal(load({ TRANSCRIPT_PARTIAL_EVENTS: 'true' }).transcript.partialEvents, true, 'the standard format keeps them')
  t.equal(load({ ...avr, WEBHOOK_SECRET: 'whsec_not base64 at all' }).webhook.secret, 'whsec_not base64 at all', 'any string: AVR sends it as it is')
  const bad = problems({ ...avr, WEBHOOK_SECRET: 'two\nlines' })
  t.match(bad, /WEBHOOK_SECRET \(webhook\.secret\): with WEBHOOK_FORMAT=avr it is sent as the X-AVR-WEBHOOK-SECRET header/)
  t.notMatch(bad, /two|lines/, 'the secret is never quoted')
  t.match(
    problems({ ...avr, WEBHOOK_SECRET: 'shared', WEBHOOK_HEADERS: '{"x-avr-webhook-secret": "other"}' }),
    /WEBHOOK_HEADERS \(webhook\.headers\): names X-AVR-WEBHOOK-SECRET, which WEBHOOK_FORMAT=avr sends from WEBHOOK_SECRET/,
  )
  t.equal(load({ ...avr, WEBHOOK_HEADERS: '{"X-AVR-WEBHOOK-SECRET": "by hand"}' }).webhook.headers['X-AVR-WEBHOOK-SECRET'], 'by hand', 'without WEBHOOK_SECRET the header may be set by hand')
})
