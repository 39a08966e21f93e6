/**
 * src/config/ (load.ts, formats.ts, rules.ts, the schema): environment variables and an optional JSON file -> one frozen, typed Config, or
 * one AppError(ERR_CONFIG_INVALID) that lists every problem, naming the variable and the expected
 * form, without ever echoing a secret.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { describeSettings, loadConfig, retiredSettings, type Config } from '../../src/config/index.js'
import { AppError } from '../../src/shared/errors.js'

const KEY = 'sk-test-0123456789abcdef'
const README = fileURLToPath(new URL('../../README.md', import.meta.url))

/** Loads with SONIOX_API_KEY set plus `extra`, so each test varies only what it is about. */
function load(extra: Record<string, string> = {}, configFile?: string): Config {
  return loadConfig({ env: { SONIOX_API_KEY: KEY, ...extra }, configFile })
}

/** Runs `fn`, which must throw AppError(ERR_CONFIG_INVALID); returns its message. */
function problemsOf(t: Test, fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    t.ok(err instanceof AppError, 'throws an AppError')
    t.equal((err as AppError).code, 'ERR_CONFIG_INVALID')
    return (err as Error).message
  }
  t.fail('expected loadConfig to throw ERR_CONFIG_INVALID')
  return ''
}

/** Whether `message` contains any 8-character piece of `secret` (a partial leak is still a leak). */
function leaks(message: string, secret: string): boolean {
  for (let i = 0; i + 8 <= secret.length; i++) if (message.includes(secret.slice(i, i + 8))) return true
  return false
}

/** The problem lines of an ERR_CONFIG_INVALID message (one per problem after the heading). */
function lines(message: string): string[] {
  return message
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => l !== '')
}

t.test('defaults with only SONIOX_API_KEY set', async (t) => {
  const c = load()
  t.match(c.audiosocket, {
    host: '127.0.0.1',
    port: 9092,
    firstFrameTimeoutMs: 2000,
    slinSampleRate: 8000,
    maxPayloadBytes: 65535,
    hangupGraceMs: 2000,
  })
  t.equal(c.soniox.apiKey, KEY)
  t.equal(c.soniox.websocketUrl, 'wss://stt-rt.soniox.com/transcribe-websocket')
  t.equal(c.soniox.model, 'stt-rt-v6')
  t.same(c.soniox.languageHints, [])
  t.equal(c.soniox.languageHintsStrict, false)
  t.equal(c.soniox.context, null)
  t.equal(c.soniox.endpointDetection, true, 'endpoint detection is on by default')
  t.equal(c.soniox.maxEndpointDelayMs, null)
  t.equal(c.soniox.endpointSensitivity, null)
  t.equal(c.soniox.endpointLatencyAdjustmentLevel, null)
  t.equal(c.soniox.speakerDiarization, false)
  t.equal(c.soniox.languageIdentification, false)
  t.equal(c.soniox.translation, null)
  t.equal(c.soniox.audioBatchMs, 60)
  t.ok(c.soniox.connectTimeoutMs > 0 && c.soniox.finishTimeoutMs > 0 && c.soniox.maxBufferedAudioMs > 0)
  t.notOk('contextFile' in c.soniox, 'the context file path is replaced by its content')
  t.equal(c.webhook.url, null, 'no webhook URL: events go to stdout')
  t.equal(c.webhook.secret, null)
  t.equal(c.webhook.maxAgeMs, 24 * 3600 * 1000, 'WEBHOOK_MAX_AGE defaults to 24 h')
  t.equal(c.webhook.concurrency, 64)
  t.same(c.webhook.headers, {})
  t.equal(c.webhook.caFile, null)
  t.equal(c.spool.dir, 'var/spool', 'relative: resolved against the working directory when the spool opens')
  t.equal(c.spool.maxBytes, 256 * 1024 * 1024)
  t.equal(c.events.file, null)
  t.equal(c.transcript.partialEvents, false)
  t.equal(c.logLevel, 'info')
  t.same(c.http, { host: '127.0.0.1', port: 9093, token: null }, 'the HTTP endpoint is on, on loopback')
  t.same(c.admission, { maxCalls: 0, allowedSources: [], requireRegistration: false, registrationTtlMs: 300000, registrationMaxCount: 10000, registrationMaxBytes: 16 * 2 ** 20 })
  t.same(c.shutdown, { drainTimeoutMs: 30000, flushTimeoutMs: 10000 })
})

t.test('admission, HTTP and shutdown settings', async (t) => {
  const c = load({
    ALLOWED_SOURCES: '127.0.0.1, 10.1.2.3/16 ::ffff:192.0.2.0/120,fd00::/8',
    MAX_CALLS: '40',
    HTTP_TOKEN: 'a-token-of-32-characters-0123456',
    REQUIRE_REGISTRATION: 'true',
    DRAIN_TIMEOUT_MS: '0',
  })
  t.same(c.admission.allowedSources, ['127.0.0.1/32', '10.1.0.0/16', '192.0.2.0/24', 'fd00::/8'], 'canonical blocks; an IPv4-mapped block is its IPv4 block')
  t.equal(c.admission.maxCalls, 40)
  t.equal(c.admission.requireRegistration, true)
  t.equal(c.shutdown.drainTimeoutMs, 0, 'DRAIN_TIMEOUT_MS=0 ends live calls at once')
  t.equal(load({ SHUTDOWN_TIMEOUT_MS: '4000' }).shutdown.flushTimeoutMs, 4000, 'SHUTDOWN_TIMEOUT_MS, the older name, still works')
  t.equal(load({ SHUTDOWN_TIMEOUT_MS: '4000', FLUSH_TIMEOUT_MS: '7000' }).shutdown.flushTimeoutMs, 7000, 'the current name wins')

  const message = problemsOf(t, () => load({ ALLOWED_SOURCES: '10.0.0.0/33, example.com', MAX_CALLS: '-1', HTTP_TOKEN: 'short-token-1234567' }))
  t.match(message, /ALLOWED_SOURCES \(admission\.allowedSources\): .*"10\.0\.0\.0\/33" has an invalid prefix length.*"example\.com" is not an IPv4 or IPv6 address/)
  t.match(message, /MAX_CALLS \(admission\.maxCalls\): must be a whole number from 0/)
  t.notOk(leaks(message, 'short-token-1234567'), 'the token is not echoed')
  t.match(problemsOf(t, () => load({ HTTP_TOKEN: 'too-short' })), /HTTP_TOKEN \(http\.token\): must be at least 16 characters/)
  t.equal(load({ HTTP_TOKEN: '0123456789abcdef' }).http.token, '0123456789abcdef', 'a 16-character token is enough')
  t.match(problemsOf(t, () => load({ REQUIRE_REGISTRATION: 'true' })), /REQUIRE_REGISTRATION .*needs the HTTP endpoint \(HTTP_PORT not 0\) and HTTP_TOKEN/)
  t.match(
    problemsOf(t, () => load({ REQUIRE_REGISTRATION: 'true', HTTP_TOKEN: 'a-token-of-32-characters-0123456', HTTP_PORT: '0' })),
    /REQUIRE_REGISTRATION/,
    'registration needs the endpoint itself, not only a token',
  )
})

t.test('REGISTRATION_MAX_COUNT and REGISTRATION_MAX_BYTES: defaults, sizes with units, bounds', async (t) => {
  const defaults = load({})
  t.equal(defaults.admission.registrationMaxCount, 10000)
  t.equal(defaults.admission.registrationMaxBytes, 16 * 2 ** 20, '16M')
  const c = load({ REGISTRATION_MAX_COUNT: '500', REGISTRATION_MAX_BYTES: '2M' })
  t.equal(c.admission.registrationMaxCount, 500)
  t.equal(c.admission.registrationMaxBytes, 2 * 2 ** 20)
  const message = problemsOf(t, () => load({ REGISTRATION_MAX_COUNT: '0', REGISTRATION_MAX_BYTES: '64K' }))
  t.match(message, /REGISTRATION_MAX_COUNT \(admission\.registrationMaxCount\): must be a whole number from 1 to 1000000/)
  t.match(message, /REGISTRATION_MAX_BYTES \(admission\.registrationMaxBytes\): must be a size from 128K to 1G/, 'a single 64 KiB registration must always fit')
})

t.test('every problem is reported at once, each naming its variable and the expected form', async (t) => {
  const message = problemsOf(t, () =>
    loadConfig({
      env: {
        AUDIOSOCKET_PORT: 'abc',
        SONIOX_LANGUAGE_HINTS: 'en,,english!',
        LOG_LEVEL: 'loud',
        WEBHOOK_URL: 'ftp://x',
      },
    }),
  )
  const problems = lines(message)
  t.equal(problems.length, 5, `five problems, one line each:\n${message}`)
  const line = (env: string): string => problems.find((p) => p.startsWith(env)) ?? ''
  t.match(line('AUDIOSOCKET_PORT'), /whole number from 0 to 65535/)
  t.match(line('AUDIOSOCKET_PORT'), /abc/, 'shows what the operator wrote')
  t.match(line('SONIOX_LANGUAGE_HINTS'), /english!/)
  t.match(line('SONIOX_LANGUAGE_HINTS'), /language code/)
  t.match(line('LOG_LEVEL'), /fatal, error, warn, info, debug, trace, silent/)
  t.match(line('LOG_LEVEL'), /loud/)
  t.match(line('SONIOX_API_KEY'), /must be set/)
  t.match(line('WEBHOOK_URL'), /http: or https:/)
})

t.test('booleans are strict: true/false, 1/0, yes/no, on/off only', async (t) => {
  const c = load({
    SONIOX_SPEAKER_DIARIZATION: 'yes',
    SONIOX_LANGUAGE_IDENTIFICATION: '1',
    SONIOX_ENDPOINT_DETECTION: 'false',
    SONIOX_LANGUAGE_HINTS_STRICT: 'ON',
    TRANSCRIPT_PARTIAL_EVENTS: 'no',
  })
  t.equal(c.soniox.speakerDiarization, true)
  t.equal(c.soniox.languageIdentification, true)
  t.equal(c.soniox.endpointDetection, false)
  t.equal(c.soniox.languageHintsStrict, true)
  t.equal(c.transcript.partialEvents, false)

  const message = problemsOf(t, () => load({ SONIOX_ENDPOINT_DETECTION: 'maybe' }))
  t.match(message, /SONIOX_ENDPOINT_DETECTION/)
  t.match(message, /true or false/)
  t.match(message, /maybe/)
})

t.test('language hints: comma list, spaces trimmed, duplicates and bad codes rejected', async (t) => {
  t.same(load({ SONIOX_LANGUAGE_HINTS: ' en , es ,de' }).soniox.languageHints, ['en', 'es', 'de'])
  t.same(load({ SONIOX_LANGUAGE_HINTS: '' }).soniox.languageHints, [])
  t.match(problemsOf(t, () => load({ SONIOX_LANGUAGE_HINTS: 'en,en' })), /SONIOX_LANGUAGE_HINTS.*more than once/)
  t.match(problemsOf(t, () => load({ SONIOX_LANGUAGE_HINTS: 'english' })), /SONIOX_LANGUAGE_HINTS.*"english" is not a language code/)
})

t.test('AVR variable names are aliases; the canonical variable wins', async (t) => {
  const alias = load({ SONIOX_SPEECH_RECOGNITION_MODEL: 'stt-rt-v4', SONIOX_SPEECH_RECOGNITION_LANGUAGE: 'en,es' })
  t.equal(alias.soniox.model, 'stt-rt-v4')
  t.same(alias.soniox.languageHints, ['en', 'es'])

  const both = load({
    SONIOX_SPEECH_RECOGNITION_MODEL: 'stt-rt-v4',
    SONIOX_MODEL: 'stt-rt-v5',
    SONIOX_SPEECH_RECOGNITION_LANGUAGE: 'fr',
    SONIOX_LANGUAGE_HINTS: 'en',
  })
  t.equal(both.soniox.model, 'stt-rt-v5')
  t.same(both.soniox.languageHints, ['en'])

  // The alias sits above the config file.
  const dir = t.testdir({ 'c.json': JSON.stringify({ soniox: { model: 'stt-rt-v5', languageHints: ['de'] } }) })
  const overFile = load({ SONIOX_SPEECH_RECOGNITION_MODEL: 'stt-rt-v4' }, join(dir, 'c.json'))
  t.equal(overFile.soniox.model, 'stt-rt-v4')
  t.same(overFile.soniox.languageHints, ['de'])
})

t.test('an invalid alias value is named by the variable the operator set', async (t) => {
  const message = problemsOf(t, () => load({ SONIOX_SPEECH_RECOGNITION_LANGUAGE: 'english!' }))
  t.match(message, /english!/, 'the bad value is reported')
  t.match(message, /SONIOX_SPEECH_RECOGNITION_LANGUAGE/)
})

t.test('JSON config file', async (t) => {
  const dir = t.testdir({
    'good.json': JSON.stringify({
      audiosocket: { port: 5000, host: '0.0.0.0' },
      soniox: { apiKey: 'from-file', model: 'stt-rt-v4', languageHints: ['de', 'fr'], endpointDetection: false },
      webhook: { url: 'https://hooks.example/in', maxAgeMs: '2h' },
      logLevel: 'debug',
    }),
    'unknown.json': JSON.stringify({ soniox: { modle: 'stt-rt-v4' }, colour: 'blue' }),
    'broken.json': '{"audiosocket": {"port": 5000,}}',
    'list.json': '[1, 2]',
  })

  t.test('nested keys are read', async (t) => {
    const c = loadConfig({ env: {}, configFile: join(dir, 'good.json') })
    t.equal(c.audiosocket.port, 5000)
    t.equal(c.audiosocket.host, '0.0.0.0')
    t.equal(c.soniox.apiKey, 'from-file')
    t.equal(c.soniox.model, 'stt-rt-v4')
    t.same(c.soniox.languageHints, ['de', 'fr'])
    t.equal(c.soniox.endpointDetection, false)
    t.equal(c.webhook.url, 'https://hooks.example/in')
    t.equal(c.webhook.maxAgeMs, 2 * 3600 * 1000, 'durations are read from the file too')
    t.equal(c.logLevel, 'debug')
  })

  t.test('CONFIG_FILE in the environment names the file too', async (t) => {
    const c = loadConfig({ env: { CONFIG_FILE: join(dir, 'good.json') } })
    t.equal(c.audiosocket.port, 5000)
  })

  t.test('environment variables override the file', async (t) => {
    const c = loadConfig({
      env: { AUDIOSOCKET_PORT: '6000', SONIOX_MODEL: 'stt-rt-v5', SONIOX_API_KEY: 'from-env', LOG_LEVEL: 'warn' },
      configFile: join(dir, 'good.json'),
    })
    t.equal(c.audiosocket.port, 6000)
    t.equal(c.soniox.model, 'stt-rt-v5')
    t.equal(c.soniox.apiKey, 'from-env')
    t.equal(c.logLevel, 'warn')
    t.equal(c.audiosocket.host, '0.0.0.0', 'keys the environment does not set still come from the file')
  })

  t.test('an unknown key is rejected, named', async (t) => {
    const message = problemsOf(t, () => load({}, join(dir, 'unknown.json')))
    t.match(message, /"soniox\.modle" is not a known setting/)
    t.match(message, /"colour" is not a known setting/)
  })

  t.test('a missing file is reported', async (t) => {
    const missing = join(dir, 'nope.json')
    const message = problemsOf(t, () => load({}, missing))
    t.match(message, 'CONFIG_FILE')
    t.match(message, missing)
    t.match(message, /ENOENT/)
  })

  t.test('invalid JSON is reported, with the other problems', async (t) => {
    const message = problemsOf(t, () => loadConfig({ env: { LOG_LEVEL: 'loud' }, configFile: join(dir, 'broken.json') }))
    t.match(message, /CONFIG_FILE.*broken\.json.*JSON/)
    t.match(message, /LOG_LEVEL/)
    t.match(message, /SONIOX_API_KEY/)
  })

  t.test('a JSON value that is not an object is rejected', async (t) => {
    // convict treats an array as an object of keys "0", "1": they are not settings.
    const message = problemsOf(t, () => load({}, join(dir, 'list.json')))
    t.match(message, /not a known setting/)
  })
})

t.test('SONIOX_CONTEXT_FILE', async (t) => {
  const context = { general: [{ key: 'domain', value: 'telephony' }], terms: ['AudioSocket', 'Soniox'], text: 'Support line' }
  const dir = t.testdir({
    'context.json': JSON.stringify(context),
    'legacy.json': JSON.stringify('a plain text context'),
    'notjson.txt': 'domain: telephony',
    'array.json': '["a", "b"]',
    'huge.json': JSON.stringify({ text: 'x'.repeat(10_001) }),
    'deep.json': `{"general":${'['.repeat(4000)}${']'.repeat(4000)}}`,
    'shape.json': JSON.stringify({ general: [{ key: 'domain' }], terms: 'Northwind' }),
    'limit.json': JSON.stringify({ text: 'y'.repeat(10_000 - JSON.stringify({ text: '' }).length) }),
  })

  t.test('a JSON object is read and passed through', async (t) => {
    const c = load({ SONIOX_CONTEXT_FILE: join(dir, 'context.json') })
    t.same(c.soniox.context, context)
  })

  t.test('the legacy plain-string form is accepted', async (t) => {
    t.equal(load({ SONIOX_CONTEXT_FILE: join(dir, 'legacy.json') }).soniox.context, 'a plain text context')
  })

  t.test('exactly 10000 characters is accepted', async (t) => {
    const path = join(dir, 'limit.json')
    t.equal(readFileSync(path, 'utf8').length, 10_000)
    t.ok(load({ SONIOX_CONTEXT_FILE: path }).soniox.context)
  })

  t.test('not JSON', async (t) => {
    const message = problemsOf(t, () => load({ SONIOX_CONTEXT_FILE: join(dir, 'notjson.txt') }))
    t.match(message, /SONIOX_CONTEXT_FILE.*not valid JSON/)
  })

  t.test('a JSON array', async (t) => {
    t.match(problemsOf(t, () => load({ SONIOX_CONTEXT_FILE: join(dir, 'array.json') })), /SONIOX_CONTEXT_FILE.*must be a Soniox context object/)
  })

  t.test('too long', async (t) => {
    t.match(problemsOf(t, () => load({ SONIOX_CONTEXT_FILE: join(dir, 'huge.json') })), /SONIOX_CONTEXT_FILE.*longer than Soniox's limit of 10000/)
  })

  t.test('unreadable', async (t) => {
    t.match(problemsOf(t, () => load({ SONIOX_CONTEXT_FILE: join(dir, 'missing.json') })), /SONIOX_CONTEXT_FILE.*cannot be read/)
  })

  t.test('nested 4,000 levels deep (8 KB): a named problem, not a RangeError', async (t) => {
    t.match(problemsOf(t, () => load({ SONIOX_CONTEXT_FILE: join(dir, 'deep.json') })), /SONIOX_CONTEXT_FILE.*: context\.general\[0\]: context\.general must be an array/)
  })

  t.test('off the documented shape: every field named', async (t) => {
    const problems = lines(problemsOf(t, () => load({ SONIOX_CONTEXT_FILE: join(dir, 'shape.json') })))
    t.match(problems, [/SONIOX_CONTEXT_FILE.*context\.general\[0\]\.value must be a string/, /SONIOX_CONTEXT_FILE.*context\.terms must be an array of strings/])
  })
})

t.test('AUDIOSOCKET_SLIN_ENCODING', async (t) => {
  t.equal(load().audiosocket.slinEncoding, 'slin')
  t.equal(load({ AUDIOSOCKET_SLIN_ENCODING: 'mulaw' }).audiosocket.slinEncoding, 'mulaw')
  t.equal(load({ AUDIOSOCKET_SLIN_ENCODING: 'alaw' }).audiosocket.slinEncoding, 'alaw')
  t.match(problemsOf(t, () => load({ AUDIOSOCKET_SLIN_ENCODING: 'ulaw' })), /AUDIOSOCKET_SLIN_ENCODING \(audiosocket\.slinEncoding\): must be slin, mulaw or alaw/)
  t.match(
    problemsOf(t, () => load({ AUDIOSOCKET_SLIN_ENCODING: 'alaw', AUDIOSOCKET_SLIN_SAMPLE_RATE: '16000' })),
    /AUDIOSOCKET_SLIN_ENCODING.*G\.711 \(mulaw, alaw\) is 8 kHz/,
  )
})

t.test('SONIOX_TRANSLATION', async (t) => {
  t.same(load({ SONIOX_TRANSLATION: 'one_way:de' }).soniox.translation, { type: 'one_way', target_language: 'de' })
  t.same(load({ SONIOX_TRANSLATION: 'two_way:en:es' }).soniox.translation, { type: 'two_way', language_a: 'en', language_b: 'es' })
  t.equal(load({ SONIOX_TRANSLATION: '' }).soniox.translation, null)
  for (const bad of ['sideways', 'one_way', 'one_way:de:fr', 'two_way:en', 'one_way:German']) {
    const message = problemsOf(t, () => load({ SONIOX_TRANSLATION: bad }))
    t.match(message, /SONIOX_TRANSLATION.*one_way:<language>.*two_way:<language>:<language>/, bad)
  }
})

t.test('endpoint settings: ranges checked, no list of which model takes them', async (t) => {
  const c = load({ SONIOX_ENDPOINT_SENSITIVITY: '-0.5', SONIOX_ENDPOINT_LATENCY_ADJUSTMENT_LEVEL: '2' })
  t.equal(c.soniox.endpointSensitivity, -0.5)
  t.equal(c.soniox.endpointLatencyAdjustmentLevel, 2)

  // Whether a model takes them is Soniox's to answer (a 400 at the session), not a rule here.
  for (const model of ['stt-rt-v6', 'stt-rt-v5', 'stt-rt-v4', 'stt-rt-preview']) {
    const withModel = load({ SONIOX_MODEL: model, SONIOX_ENDPOINT_SENSITIVITY: '0.3', SONIOX_ENDPOINT_LATENCY_ADJUSTMENT_LEVEL: '1' })
    t.equal(withModel.soniox.model, model)
    t.equal(withModel.soniox.endpointSensitivity, 0.3, `accepted with ${model}`)
    t.equal(withModel.soniox.endpointLatencyAdjustmentLevel, 1, `accepted with ${model}`)
  }

  const ranges = problemsOf(t, () => load({ SONIOX_ENDPOINT_SENSITIVITY: '1.5', SONIOX_ENDPOINT_LATENCY_ADJUSTMENT_LEVEL: '4' }))
  t.match(ranges, /SONIOX_ENDPOINT_SENSITIVITY.*-1 to 1/)
  t.match(ranges, /SONIOX_ENDPOINT_LATENCY_ADJUSTMENT_LEVEL.*0 to 3/)
  t.match(problemsOf(t, () => load({ SONIOX_ENDPOINT_SENSITIVITY: 'high' })), /SONIOX_ENDPOINT_SENSITIVITY.*high/)
  t.match(problemsOf(t, () => load({ SONIOX_ENDPOINT_LATENCY_ADJUSTMENT_LEVEL: '1.5' })), /SONIOX_ENDPOINT_LATENCY_ADJUSTMENT_LEVEL/)
})

t.test('SONIOX_MAX_ENDPOINT_DELAY_MS must be 500..3000', async (t) => {
  t.equal(load({ SONIOX_MAX_ENDPOINT_DELAY_MS: '500' }).soniox.maxEndpointDelayMs, 500)
  t.equal(load({ SONIOX_MAX_ENDPOINT_DELAY_MS: '3000' }).soniox.maxEndpointDelayMs, 3000)
  t.equal(load({ SONIOX_MAX_ENDPOINT_DELAY_MS: '' }).soniox.maxEndpointDelayMs, null)
  for (const bad of ['499', '3001', '0', '-1000', '1500.5', 'soon']) {
    t.match(problemsOf(t, () => load({ SONIOX_MAX_ENDPOINT_DELAY_MS: bad })), /SONIOX_MAX_ENDPOINT_DELAY_MS.*500 to 3000/, bad)
  }
})

t.test('secret values never appear in an error message', async (t) => {
  const apiKey = 'sk-live-SECRETKEY-4f9a1c'
  const secret = 'whsec_U0VDUkVUV0VCSE9PSw=='
  const assertClean = (message: string, what: string): void => {
    t.notOk(leaks(message, apiKey), `${what}: no part of the API key`)
    t.notOk(leaks(message, secret), `${what}: no part of the webhook secret`)
  }

  const env = { SONIOX_API_KEY: apiKey, WEBHOOK_SECRET: secret }
  assertClean(problemsOf(t, () => loadConfig({ env: { ...env, AUDIOSOCKET_PORT: '99999', LOG_LEVEL: 'loud' } })), 'env + other bad settings')
  assertClean(problemsOf(t, () => loadConfig({ env: { ...env, SONIOX_WEBSOCKET_URL: 'https://x' } })), 'bad URL')

  const dir = t.testdir({
    'typed.json': JSON.stringify({ soniox: { apiKey: 123456789 }, webhook: { secret: 987654321 } }),
    'secrets.json': JSON.stringify({ soniox: { apiKey, unknownKey: 1 }, webhook: { secret }, logLevel: 'loud' }),
  })
  const typed = problemsOf(t, () => loadConfig({ env: {}, configFile: join(dir, 'typed.json') }))
  t.notOk(typed.includes('123456789'), 'a non-string API key in the file is not echoed')
  t.notOk(typed.includes('987654321'), 'a non-string webhook secret in the file is not echoed')
  assertClean(problemsOf(t, () => loadConfig({ env: {}, configFile: join(dir, 'secrets.json') })), 'secrets in a file with bad settings')
})

t.test('a config file with a syntax error next to a secret does not echo the secret', async (t) => {
  // A likely operator mistake: the key pasted without quotes. Node's JSON.parse message quotes
  // the source text around the error, and loadConfig copies that message into its own.
  const dir = t.testdir({ 'unquoted.json': '{"soniox": {"apiKey": sk-live-SECRETKEY-4f9a1c}}' })
  const message = problemsOf(t, () => loadConfig({ env: {}, configFile: join(dir, 'unquoted.json') }))
  t.match(message, /CONFIG_FILE.*JSON/, 'the file is reported as invalid JSON')
  t.notOk(leaks(message, 'sk-live-SECRETKEY-4f9a1c'), 'no part of the API key in the message')
})

t.test('the returned config is deeply frozen', async (t) => {
  const c = load({ SONIOX_LANGUAGE_HINTS: 'en', SONIOX_TRANSLATION: 'one_way:de' })
  t.ok(Object.isFrozen(c))
  t.ok(Object.isFrozen(c.audiosocket))
  t.ok(Object.isFrozen(c.soniox))
  t.ok(Object.isFrozen(c.soniox.languageHints))
  t.ok(Object.isFrozen(c.soniox.translation))
  t.ok(Object.isFrozen(c.webhook))
  t.throws(() => {
    ;(c.audiosocket as { port: number }).port = 1
  }, TypeError)
  t.throws(() => {
    ;(c.soniox.languageHints as string[]).push('fr')
  }, TypeError)
  t.equal(c.audiosocket.port, 9092)
})

t.test('describeSettings lists every environment variable exactly once', async (t) => {
  const settings = describeSettings()
  const envs = settings.map((s) => s.env)
  t.equal(new Set(envs).size, envs.length, 'no variable twice')
  t.equal(new Set(settings.map((s) => s.key)).size, settings.length, 'no key twice')
  for (const env of [
    'AUDIOSOCKET_HOST',
    'AUDIOSOCKET_PORT',
    'SONIOX_API_KEY',
    'SONIOX_WEBSOCKET_URL',
    'SONIOX_MODEL',
    'SONIOX_LANGUAGE_HINTS',
    'WEBHOOK_URL',
    'WEBHOOK_SECRET',
    'LOG_LEVEL',
  ]) {
    t.equal(envs.filter((e) => e === env).length, 1, env)
  }
  for (const s of settings) {
    t.match(s.env, /^[A-Z][A-Z0-9_]*$/, `${s.key}: variable name`)
    t.ok(s.doc.length > 0, `${s.env} has a doc line`)
  }
  t.same(
    settings.filter((s) => s.sensitive).map((s) => s.env).sort(),
    ['ARI_PASSWORD', 'HTTP_TOKEN', 'SONIOX_API_KEY', 'WEBHOOK_HEADERS', 'WEBHOOK_SECRET'],
    'the secrets are marked sensitive',
  )
  t.equal(settings.find((s) => s.env === 'AUDIOSOCKET_PORT')?.default, 9092)

  // Each listed variable really is read: set alone to a nonsense value, it is either reported
  // under its own name or lands in its own key (a listed variable the loader ignored would make
  // the docs lie).
  for (const s of settings) {
    const value = '!!nonsense!!'
    try {
      const c = load({ [s.env]: value })
      const got = s.key.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], c)
      t.equal(got, value, `${s.env} is read into ${s.key}`)
    } catch (err) {
      t.match((err as Error).message, new RegExp(`\\b${s.env}\\b`), `${s.env} is read and its problem named`)
    }
  }
})

t.test('README documents every environment variable', { skip: existsSync(README) ? false : 'no README.md yet' }, async (t) => {
  const readme = readFileSync(README, 'utf8')
  for (const { env } of describeSettings()) {
    t.ok(new RegExp(`\\b${env}\\b`).test(readme), `README.md mentions ${env}`)
  }
})

t.test('retired variables: still accepted, each reported with what replaced it', async (t) => {
  const env = { SONIOX_API_KEY: 'k', WEBHOOK_MAX_ATTEMPTS: '5' }
  t.doesNotThrow(() => loadConfig({ env }), 'a leftover variable does not stop the server')
  const retired = retiredSettings(env)
  t.equal(retired.length, 1)
  t.equal(retired[0]?.env, 'WEBHOOK_MAX_ATTEMPTS')
  t.match(retired[0]?.advice, /WEBHOOK_MAX_AGE/, 'names the setting that replaced it')
  t.same(retiredSettings({ SONIOX_API_KEY: 'k' }), [], 'nothing when none is set')
})

t.test('files named by settings are read with the other checks; rules between settings follow once each is valid', async (t) => {
  const dir = t.testdir({})
  const both = lines(problemsOf(t, () => load({ WEBHOOK_CA_FILE: join(dir, 'nope.pem'), SONIOX_CONTEXT_FILE: join(dir, 'nope.json'), LOG_LEVEL: 'loud' })))
  t.match(both, [/^SONIOX_CONTEXT_FILE .*nope\.json cannot be read/, /^WEBHOOK_CA_FILE .*nope\.pem cannot be read/, /^LOG_LEVEL /], 'all three at once, in schema order')
  t.equal(both.length, 3)
  t.notOk(both.slice(0, 2).some((line) => line.includes('value was')), 'a file problem names its path once')
  const first = lines(problemsOf(t, () => load({ REQUIRE_REGISTRATION: 'true', LOG_LEVEL: 'loud' })))
  t.same(first.map((line) => line.split(' ')[0]), ['LOG_LEVEL'], 'a rule between settings waits for the settings it joins')
  t.match(problemsOf(t, () => load({ REQUIRE_REGISTRATION: 'true' })), /REQUIRE_REGISTRATION/)
})

t.test('a config file giving a group a plain value is a named problem, not a crash', async (t) => {
  const dir = t.testdir({ 'flat.json': JSON.stringify({ soniox: 5, webhook: ['x'], logLevel: 'debug' }) })
  const problems = lines(problemsOf(t, () => load({ SONIOX_MODEL: 'stt-rt-v5' }, join(dir, 'flat.json'))))
  t.same(problems, [
    'config file key "soniox" must be an object of settings (see README, "Settings")',
    'config file key "webhook" must be an object of settings (see README, "Settings")',
  ])
})
