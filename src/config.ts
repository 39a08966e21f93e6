/**
 * Configuration: one convict schema, read from environment variables and an optional JSON file,
 * validated once at start with every problem reported together, then frozen into a typed object.
 *
 * Only this module and `cli/` read `process.env`; everything else receives the `Config` (or a
 * slice of it) as an argument.
 */
import { readFileSync } from 'node:fs'
import convict from 'convict'
import { AppError } from './shared/errors.js'
import { redactUrl } from './shared/redact-url.js'
import { parseSonioxContext } from './shared/soniox-context.js'
import { LANGUAGE_CODE } from './shared/validate.js'
import type { RecognitionOptions } from './soniox/start-message.js'
import { RESERVED_HEADERS } from './webhook/http-transport.js'
import { parseCidr, parseCidrList } from './shared/cidr.js'

type TranslationConfig = NonNullable<RecognitionOptions['translation']>

export interface Config {
  audiosocket: {
    host: string
    port: number
    firstFrameTimeoutMs: number
    /** Sample rate of 0x10 frames: 8000, or 16000 for Asterisk < 20.17 with `c(slin16)`. */
    slinSampleRate: number
    /** What 0x10 frames carry: slin, or G.711 from a channel driver dialled without c(slin). */
    slinEncoding: 'slin' | 'mulaw' | 'alaw'
    maxPayloadBytes: number
    hangupGraceMs: number
    silenceMode: 'off' | 'gaps' | 'continuous'
    silenceAfterMs: number
  }
  /** The recognition options go into the Soniox start message as they are. */
  soniox: RecognitionOptions & {
    apiKey: string
    websocketUrl: string
    connectTimeoutMs: number
    finishTimeoutMs: number
    audioBatchMs: number
    maxBufferedAudioMs: number
    keepaliveMs: number
    pingIntervalMs: number
    pongTimeoutMs: number
    maxSessionMs: number
    reconnectMaxAttempts: number
    reconnectMaxMs: number
    reconnectInitialDelayMs: number
    reconnectMaxDelayMs: number
  }
  webhook: {
    url: string | null
    secret: string | null
    timeoutMs: number
    /** WEBHOOK_MAX_AGE in milliseconds: past it a failing event is dead-lettered. */
    maxAgeMs: number
    retryInitialMs: number
    retryMaxMs: number
    concurrency: number
    headers: Record<string, string>
    caFile: string | null
  }
  spool: {
    /** As configured; relative paths are resolved against the working directory when the spool opens. */
    dir: string
    maxBytes: number
  }
  events: {
    file: string | null
  }
  transcript: {
    partialEvents: boolean
    partialIntervalMs: number
  }
  capture: {
    /** Record every call to a capture file in this directory; null = off. */
    dir: string | null
  }
  logLevel: string
  /** The operations endpoint: /healthz, /readyz, /metrics, POST /calls/{uuid}. */
  http: {
    host: string
    /** 0 = no HTTP endpoint. */
    port: number
    /** Bearer token of /calls; null = registration off. */
    token: string | null
  }
  admission: {
    /** 0 = no limit. */
    maxCalls: number
    /** CIDR blocks (canonical text); empty = any source. */
    allowedSources: string[]
    requireRegistration: boolean
    registrationTtlMs: number
    /** Registrations waiting for their call at most (POST /calls answers 429 past it). */
    registrationMaxCount: number
    /** Bytes of those registrations' JSON at most (429 past it). */
    registrationMaxBytes: number
  }
  shutdown: {
    /** How long live calls may go on after SIGTERM/SIGINT before they are ended. */
    drainTimeoutMs: number
    /** Bound on delivering pending events once every call has ended. */
    flushTimeoutMs: number
  }
}

/** An HTTP token (RFC 9110) and a field value without control characters. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

// ---------------------------------------------------------------------------------------------
// Formats. Convict's built-ins coerce loosely ("yes" -> true, "abc" -> NaN); these keep the raw
// string when it does not parse, so the error shows what the operator actually wrote.

function integerFormat(name: string, min: number, max: number) {
  return {
    name,
    coerce: (v: unknown) => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v),
    validate(v: unknown) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        throw new Error(`must be a whole number from ${min} to ${max}`)
      }
    },
  }
}

const DURATION = /^(\d+)\s*(ms|s|m|h|d)?$/
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** "24h", "90m", "3600s", "500ms", "2d" or plain milliseconds, to whole milliseconds. */
function durationFormat(minMs: number, maxMs: number, range: string) {
  return {
    coerce(v: unknown) {
      if (typeof v !== 'string') return v
      const m = DURATION.exec(v.trim().toLowerCase())
      return m ? Number(m[1]) * (DURATION_UNIT_MS[m[2] ?? 'ms'] ?? 1) : v
    },
    validate(v: unknown) {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < minMs || v > maxMs) {
        throw new Error(`must be a duration from ${range}: a whole number with ms, s, m, h or d (e.g. 24h, 90m, 3600s), or plain milliseconds`)
      }
    },
  }
}

const BYTE_SIZE = /^(\d+)\s*([kmgt])?(?:i?b)?$/
const BYTE_UNITS: Record<string, number> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }

/** "256M", "1G", "512MiB", "65536" (powers of 1024), to bytes. */
function byteSizeFormat(min: number, max: number, range: string) {
  return {
    coerce(v: unknown) {
      if (typeof v !== 'string') return v
      const m = BYTE_SIZE.exec(v.trim().toLowerCase())
      return m ? Number(m[1]) * (m[2] === undefined ? 1 : (BYTE_UNITS[m[2]] ?? 1)) : v
    },
    validate(v: unknown) {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
        throw new Error(`must be a size from ${range}: bytes, or a whole number with K, M, G or T (powers of 1024), e.g. 256M`)
      }
    },
  }
}

convict.addFormats({
  'strict-boolean': {
    coerce(v: unknown) {
      if (typeof v !== 'string') return v
      const s = v.trim().toLowerCase()
      if (['true', '1', 'yes', 'on'].includes(s)) return true
      if (['false', '0', 'no', 'off', ''].includes(s)) return false
      return v
    },
    validate(v: unknown) {
      if (typeof v !== 'boolean') throw new Error('must be true or false')
    },
  },
  'tcp-port': integerFormat('tcp-port', 0, 65535),
  'positive-ms': integerFormat('positive-ms', 1, 24 * 3600 * 1000),
  'non-negative-ms': integerFormat('non-negative-ms', 0, 24 * 3600 * 1000),
  'attempts': integerFormat('attempts', 1, 100),
  'payload-bytes': integerFormat('payload-bytes', 16, 65535),
  'slin-rate': {
    coerce: (v: unknown) => (typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v),
    validate(v: unknown) {
      if (v !== 8000 && v !== 16000) throw new Error('must be 8000 or 16000')
    },
  },
  'nullable-int': {
    coerce: (v: unknown) => (typeof v === 'string' ? (v.trim() === '' ? null : /^-?\d+$/.test(v.trim()) ? Number(v) : v) : v),
    validate() {
      /* range checked per setting in checkRanges(), where the limits are known */
    },
  },
  'nullable-number': {
    coerce: (v: unknown) => (typeof v === 'string' ? (v.trim() === '' ? null : Number.isFinite(Number(v)) ? Number(v) : v) : v),
    validate() {
      /* range checked per setting in checkRanges() */
    },
  },
  'language-list': {
    coerce: (v: unknown) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s !== '')
        : v,
    validate(v: unknown) {
      if (!Array.isArray(v)) throw new Error('must be a comma-separated list of language codes, e.g. "en,es"')
      for (const code of v) {
        if (typeof code !== 'string' || !LANGUAGE_CODE.test(code)) {
          throw new Error(`"${String(code)}" is not a language code; use ISO codes such as en, es, de, separated by commas`)
        }
      }
      if (new Set(v).size !== v.length) throw new Error('lists a language more than once')
    },
  },
  'optional-url': {
    coerce: (v: unknown) => (typeof v === 'string' && v.trim() === '' ? null : v),
    validate(v: unknown) {
      if (v === null) return
      const protocols = ['http:', 'https:']
      let url: URL
      try {
        url = new URL(String(v))
      } catch {
        throw new Error(`must be an absolute URL (${protocols.join(' or ')})`)
      }
      if (!protocols.includes(url.protocol)) throw new Error(`must use ${protocols.join(' or ')}`)
    },
  },
  'ws-url': {
    validate(v: unknown) {
      let url: URL
      try {
        url = new URL(String(v))
      } catch {
        throw new Error('must be an absolute wss:// or ws:// URL')
      }
      if (url.protocol !== 'wss:' && url.protocol !== 'ws:') throw new Error('must be a wss:// (or ws://) URL')
    },
  },
  'required-secret': {
    coerce: (v: unknown) => (typeof v === 'string' ? v.trim() : v),
    validate(v: unknown) {
      if (typeof v !== 'string' || v === '') throw new Error('must be set')
    },
  },
  'optional-secret': {
    coerce: (v: unknown) => (typeof v === 'string' && v.trim() === '' ? null : v),
    validate(v: unknown) {
      if (v !== null && typeof v !== 'string') throw new Error('must be a string')
    },
  },
  'optional-path': {
    coerce: (v: unknown) => (typeof v === 'string' && v.trim() === '' ? null : v),
    validate(v: unknown) {
      if (v !== null && typeof v !== 'string') throw new Error('must be a file path')
    },
  },
  'dir-path': {
    coerce: (v: unknown) => (typeof v === 'string' ? v.trim() : v),
    validate(v: unknown) {
      if (typeof v !== 'string' || v === '') throw new Error('must be a directory path')
    },
  },
  'max-age': durationFormat(1000, 30 * 24 * 3600 * 1000, '1s to 30d'),
  'spool-bytes': byteSizeFormat(64 * 1024, 2 ** 40, '64K to 1T'),
  // From 128K: a single registration (a 64 KiB body) must always fit.
  'registration-bytes': byteSizeFormat(128 * 1024, 2 ** 30, '128K to 1G'),
  'registration-count': integerFormat('registration-count', 1, 1_000_000),
  'concurrency': integerFormat('concurrency', 1, 1000),
  'max-calls': integerFormat('max-calls', 0, 100000),
  'cidr-list': {
    coerce: (v: unknown) => (typeof v === 'string' ? v.split(/[\s,]+/).filter((s) => s !== '') : v),
    validate(v: unknown) {
      if (!Array.isArray(v) || v.some((item) => typeof item !== 'string')) {
        throw new Error('must be a comma-separated list of addresses or CIDR blocks, e.g. "127.0.0.1, 10.0.0.0/8, fd00::/8"')
      }
      parseCidrList(v.join(','))
    },
  },
  'header-map': {
    coerce(v: unknown) {
      if (typeof v !== 'string') return v
      if (v.trim() === '') return {}
      try {
        return JSON.parse(v) as unknown
      } catch {
        return v
      }
    },
    // Messages name headers, never values: this setting typically carries a token.
    validate(v: unknown) {
      const form = 'must be a JSON object of header names to string values, e.g. {"Authorization": "Bearer ..."}'
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(form)
      for (const [name, value] of Object.entries(v)) {
        if (!HEADER_NAME.test(name)) throw new Error(`${JSON.stringify(name)} is not a valid header name; ${form}`)
        if (typeof value !== 'string' || !HEADER_VALUE.test(value)) throw new Error(`the value of ${name} must be a string without control characters`)
        if (RESERVED_HEADERS.includes(name.toLowerCase())) throw new Error(`${name} is set by the server and cannot be overridden`)
      }
    },
  },
  'translation': {
    coerce(v: unknown) {
      if (typeof v !== 'string') return v
      const s = v.trim()
      if (s === '') return null
      const parts = s.split(':')
      if (parts[0] === 'one_way' && parts.length === 2) return { type: 'one_way', target_language: parts[1] }
      if (parts[0] === 'two_way' && parts.length === 3) return { type: 'two_way', language_a: parts[1], language_b: parts[2] }
      return v
    },
    validate(v: unknown) {
      if (v === null) return
      const t = v as Partial<TranslationConfig>
      const ok =
        typeof v === 'object' &&
        ((t.type === 'one_way' && LANGUAGE_CODE.test(String(t.target_language))) ||
          (t.type === 'two_way' && LANGUAGE_CODE.test(String(t.language_a)) && LANGUAGE_CODE.test(String(t.language_b))))
      if (!ok) throw new Error('must be "one_way:<language>" (e.g. one_way:de) or "two_way:<language>:<language>" (e.g. two_way:en:es)')
    },
  },
  'slin-encoding': {
    validate(v: unknown) {
      if (v !== 'slin' && v !== 'mulaw' && v !== 'alaw') throw new Error('must be slin, mulaw or alaw')
    },
  },
  'silence-mode': {
    validate(v: unknown) {
      if (v !== 'off' && v !== 'gaps' && v !== 'continuous') throw new Error('must be off, gaps or continuous')
    },
  },
  'log-level': {
    validate(v: unknown) {
      if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(String(v))) {
        throw new Error('must be one of fatal, error, warn, info, debug, trace, silent')
      }
    },
  },
})

// ---------------------------------------------------------------------------------------------

const schema = {
  audiosocket: {
    host: { doc: 'Address the AudioSocket TCP server listens on.', format: String, default: '127.0.0.1', env: 'AUDIOSOCKET_HOST' },
    port: { doc: 'TCP port for AudioSocket connections from Asterisk.', format: 'tcp-port', default: 9092, env: 'AUDIOSOCKET_PORT' },
    firstFrameTimeoutMs: {
      doc: 'Close a connection whose UUID frame has not arrived after this many milliseconds.',
      format: 'positive-ms',
      default: 2000,
      env: 'AUDIOSOCKET_FIRST_FRAME_TIMEOUT_MS',
    },
    slinSampleRate: {
      doc: 'Sample rate of kind 0x10 audio. 8000, or 16000 for Asterisk before 20.17/21.12/22.7/23.1 dialled with c(slin16), which labels 16 kHz audio 0x10.',
      format: 'slin-rate',
      default: 8000,
      env: 'AUDIOSOCKET_SLIN_SAMPLE_RATE',
    },
    slinEncoding: {
      doc: 'What kind 0x10 frames carry: slin (16-bit PCM), or mulaw / alaw when Dial(AudioSocket/...) runs without c(slin) from a G.711 caller and the dialplan cannot change (Asterisk labels the G.711 bytes 0x10); G.711 goes to Soniox as it is.',
      format: 'slin-encoding',
      default: 'slin' as 'slin' | 'mulaw' | 'alaw',
      env: 'AUDIOSOCKET_SLIN_ENCODING',
    },
    maxPayloadBytes: {
      doc: 'Largest frame payload accepted; a frame announcing more ends that call. 65535 is the protocol maximum.',
      format: 'payload-bytes',
      default: 65535,
      env: 'AUDIOSOCKET_MAX_PAYLOAD_BYTES',
    },
    hangupGraceMs: {
      doc: 'After sending hangup, how long to wait for Asterisk to close before the socket is destroyed.',
      format: 'positive-ms',
      default: 2000,
      env: 'AUDIOSOCKET_HANGUP_GRACE_MS',
    },
    silenceMode: {
      doc: 'Silence sent to Asterisk so its 2 s inactivity timeout (20.14+) never ends a quiet call: off, gaps (when the caller sends no audio for AUDIOSOCKET_SILENCE_AFTER_MS) or continuous (from the first frame; the workaround for the channel-driver stall, asterisk#2089).',
      format: 'silence-mode',
      default: 'gaps',
      env: 'AUDIOSOCKET_SILENCE_MODE',
    },
    silenceAfterMs: {
      doc: 'In gaps mode, how long the caller may send no audio before 20 ms silence frames are sent.',
      format: 'positive-ms',
      default: 1000,
      env: 'AUDIOSOCKET_SILENCE_AFTER_MS',
    },
  },
  soniox: {
    apiKey: { doc: 'Soniox API key (sent in the Authorization header).', format: 'required-secret', default: '', env: 'SONIOX_API_KEY', sensitive: true },
    websocketUrl: {
      doc: 'Soniox real-time WebSocket URL (EU: wss://stt-rt.eu.soniox.com/transcribe-websocket, JP: wss://stt-rt.jp.soniox.com/transcribe-websocket).',
      format: 'ws-url',
      default: 'wss://stt-rt.soniox.com/transcribe-websocket',
      env: 'SONIOX_WEBSOCKET_URL',
    },
    model: { doc: 'Soniox real-time model.', format: String, default: 'stt-rt-v5', env: 'SONIOX_MODEL' },
    languageHints: { doc: 'Comma-separated language hints, e.g. "en,es".', format: 'language-list', default: [] as string[], env: 'SONIOX_LANGUAGE_HINTS' },
    languageHintsStrict: { doc: 'Strongly bias recognition to the hinted languages.', format: 'strict-boolean', default: false, env: 'SONIOX_LANGUAGE_HINTS_STRICT' },
    contextFile: { doc: 'JSON file with a Soniox context object (general, text, terms, translation_terms).', format: 'optional-path', default: null as string | null, env: 'SONIOX_CONTEXT_FILE' },
    endpointDetection: { doc: 'Let Soniox detect the end of each utterance (<end> tokens).', format: 'strict-boolean', default: true, env: 'SONIOX_ENDPOINT_DETECTION' },
    maxEndpointDelayMs: { doc: 'Upper bound between end of speech and endpoint, 500-3000 ms (Soniox default 2000).', format: 'nullable-int', default: null as number | null, env: 'SONIOX_MAX_ENDPOINT_DELAY_MS' },
    endpointSensitivity: { doc: 'stt-rt-v5 only: -1.0 to 1.0, higher ends utterances sooner.', format: 'nullable-number', default: null as number | null, env: 'SONIOX_ENDPOINT_SENSITIVITY' },
    endpointLatencyAdjustmentLevel: { doc: 'stt-rt-v5 only: 0-3, higher lowers endpoint latency.', format: 'nullable-int', default: null as number | null, env: 'SONIOX_ENDPOINT_LATENCY_ADJUSTMENT_LEVEL' },
    speakerDiarization: { doc: 'Label tokens with speakers.', format: 'strict-boolean', default: false, env: 'SONIOX_SPEAKER_DIARIZATION' },
    languageIdentification: { doc: 'Label tokens with their language.', format: 'strict-boolean', default: false, env: 'SONIOX_LANGUAGE_IDENTIFICATION' },
    translation: { doc: 'Translation: "one_way:<lang>" or "two_way:<lang>:<lang>".', format: 'translation', default: null as TranslationConfig | null, env: 'SONIOX_TRANSLATION' },
    connectTimeoutMs: { doc: 'Bound on opening the Soniox WebSocket.', format: 'positive-ms', default: 10000, env: 'SONIOX_CONNECT_TIMEOUT_MS' },
    finishTimeoutMs: { doc: 'Bound on waiting for Soniox to send its last words after the call ends.', format: 'positive-ms', default: 10000, env: 'SONIOX_FINISH_TIMEOUT_MS' },
    audioBatchMs: { doc: 'Batch audio into messages of at least this many ms (0 = forward each frame as it arrives).', format: 'non-negative-ms', default: 0, env: 'SONIOX_AUDIO_BATCH_MS' },
    maxBufferedAudioMs: {
      doc: 'Per call, audio kept until Soniox has finalized it (to resend after a failure) or while no session is up (reconnecting, 429); past it the oldest is dropped and counted in call.ended.',
      format: 'positive-ms',
      default: 30000,
      env: 'SONIOX_MAX_BUFFERED_AUDIO_MS',
    },
    keepaliveMs: { doc: 'Send a Soniox keepalive when no audio was sent for this long (Soniox closes idle sessions after 20 s).', format: 'positive-ms', default: 5000, env: 'SONIOX_KEEPALIVE_MS' },
    pingIntervalMs: { doc: 'WebSocket ping interval, to detect a half-open connection.', format: 'positive-ms', default: 5000, env: 'SONIOX_PING_INTERVAL_MS' },
    pongTimeoutMs: { doc: 'A ping unanswered this long fails the session, which is then replaced.', format: 'positive-ms', default: 5000, env: 'SONIOX_PONG_TIMEOUT_MS' },
    maxSessionMs: {
      doc: 'Continue in a new Soniox session after this much audio (Soniox ends sessions at 300 minutes).',
      format: 'positive-ms',
      default: 290 * 60 * 1000,
      env: 'SONIOX_MAX_SESSION_MS',
    },
    reconnectMaxAttempts: { doc: 'Replacement sessions tried in one failure streak; the next failure ends the call\'s transcription.', format: 'attempts', default: 20, env: 'SONIOX_RECONNECT_MAX_ATTEMPTS' },
    reconnectMaxMs: { doc: 'Give up when no Soniox session has worked for this long since the first failure.', format: 'positive-ms', default: 300000, env: 'SONIOX_RECONNECT_MAX_MS' },
    reconnectInitialDelayMs: { doc: 'Delay before the second reconnection attempt (the first is immediate); doubles with jitter.', format: 'positive-ms', default: 500, env: 'SONIOX_RECONNECT_INITIAL_DELAY_MS' },
    reconnectMaxDelayMs: { doc: 'Cap on the delay between reconnection attempts.', format: 'positive-ms', default: 10000, env: 'SONIOX_RECONNECT_MAX_DELAY_MS' },
  },
  webhook: {
    url: { doc: 'Where events are POSTed; unset = JSON lines on stdout.', format: 'optional-url', default: null as string | null, env: 'WEBHOOK_URL' },
    secret: { doc: 'Standard Webhooks signing secret (whsec_<base64> or any string).', format: 'optional-secret', default: null as string | null, env: 'WEBHOOK_SECRET', sensitive: true },
    timeoutMs: { doc: 'Per-request timeout.', format: 'positive-ms', default: 5000, env: 'WEBHOOK_TIMEOUT_MS' },
    maxAgeMs: {
      doc: 'Retry a failing event until it is this old (counted from its creation, across restarts), then move it to the dead-letter file: e.g. 24h, 90m, 3600s, or milliseconds.',
      format: 'max-age',
      default: '24h' as unknown as number,
      env: 'WEBHOOK_MAX_AGE',
    },
    retryInitialMs: { doc: 'First retry delay; doubles per attempt with jitter.', format: 'positive-ms', default: 500, env: 'WEBHOOK_RETRY_INITIAL_MS' },
    retryMaxMs: { doc: 'Cap on the retry delay.', format: 'positive-ms', default: 30000, env: 'WEBHOOK_RETRY_MAX_MS' },
    concurrency: { doc: 'Calls delivered in parallel (requests in flight at most; one per call, so each call stays in order). At 1,000 calls about 600 events/s leave; 8 was measured to fall behind by 26 s there.', format: 'concurrency', default: 64, env: 'WEBHOOK_CONCURRENCY' },
    headers: {
      doc: 'Extra request headers as a JSON object, e.g. {"Authorization": "Bearer ..."}; cannot override content-type, user-agent or the webhook-* headers.',
      format: 'header-map',
      default: {} as Record<string, string>,
      env: 'WEBHOOK_HEADERS',
      sensitive: true,
    },
    caFile: { doc: 'PEM file of CA certificate(s) trusted for an https: WEBHOOK_URL, in addition to the system ones (for a private CA).', format: 'optional-path', default: null as string | null, env: 'WEBHOOK_CA_FILE' },
  },
  spool: {
    dir: {
      doc: 'Directory of the webhook delivery spool and the dead-letter file (relative to the working directory). Use a persistent directory, e.g. systemd StateDirectory.',
      format: 'dir-path',
      default: 'var/spool',
      env: 'SPOOL_DIR',
    },
    maxBytes: {
      doc: 'Bound on the spool size on disk, e.g. 256M or 1G; past it new events are delivered from memory only and an error is logged.',
      format: 'spool-bytes',
      default: '256M' as unknown as number,
      env: 'SPOOL_MAX_BYTES',
    },
  },
  events: {
    file: { doc: 'Also append every event as a JSON line to this file (with or without WEBHOOK_URL).', format: 'optional-path', default: null as string | null, env: 'EVENTS_FILE' },
  },
  transcript: {
    partialEvents: { doc: 'Publish throttled transcript.partial events.', format: 'strict-boolean', default: false, env: 'TRANSCRIPT_PARTIAL_EVENTS' },
    partialIntervalMs: { doc: 'Minimum interval between transcript.partial events of one call.', format: 'positive-ms', default: 500, env: 'TRANSCRIPT_PARTIAL_INTERVAL_MS' },
  },
  capture: {
    dir: {
      doc: 'Record every call to a capture file (raw bytes both ways, replayable) in this directory; unset = off. Captures hold call audio.',
      format: 'optional-path',
      default: null as string | null,
      env: 'CAPTURE_DIR',
    },
  },
  logLevel: { doc: 'pino log level.', format: 'log-level', default: 'info', env: 'LOG_LEVEL' },
  http: {
    host: { doc: 'Address of the HTTP endpoint (/healthz, /readyz, /metrics, POST /calls/{uuid}).', format: String, default: '127.0.0.1', env: 'HTTP_HOST' },
    port: { doc: 'Port of the HTTP endpoint; 0 turns it off.', format: 'tcp-port', default: 9093, env: 'HTTP_PORT' },
    token: {
      doc: 'Bearer token that POST and DELETE /calls/{uuid} require (at least 16 characters, e.g. openssl rand -hex 32); unset = call registration off.',
      format: 'optional-secret',
      default: null as string | null,
      env: 'HTTP_TOKEN',
      sensitive: true,
    },
  },
  admission: {
    maxCalls: {
      doc: 'Live calls at most; a connection beyond it gets a hangup frame and is closed, logged and counted. 0 = no limit.',
      format: 'max-calls',
      default: 0,
      env: 'MAX_CALLS',
    },
    allowedSources: {
      doc: 'Comma-separated addresses or CIDR blocks, IPv4 or IPv6, allowed to connect to the AudioSocket port (e.g. "127.0.0.1, 10.1.0.0/16"); others are reset before a byte is read. Unset = any.',
      format: 'cidr-list',
      default: [] as string[],
      env: 'ALLOWED_SOURCES',
    },
    requireRegistration: {
      doc: 'Refuse calls whose UUID was not registered with POST /calls/{uuid} (needs HTTP_PORT and HTTP_TOKEN).',
      format: 'strict-boolean',
      default: false,
      env: 'REQUIRE_REGISTRATION',
    },
    registrationTtlMs: { doc: 'How long a registration waits for its call.', format: 'positive-ms', default: 300000, env: 'REGISTRATION_TTL_MS' },
    // Heap per waiting registration (bench/registration-heap.ts, Node 20): ~390 B for a typical body,
    // its JSON size + ~210 B otherwise, twice the JSON if it holds a character beyond Latin-1 (a
    // 60 KB body: 60 KB, or 120 KB). So the defaults hold the store to at most ~36 MB of heap
    // (2 x 16 MiB + 10,000 x 210 B); without them 10,000 large bodies took 1.85 GB.
    registrationMaxCount: {
      doc: 'Registrations waiting for their call at most; past it POST /calls/{uuid} answers 429 with Retry-After (seconds until the oldest expires).',
      format: 'registration-count',
      default: 10000,
      env: 'REGISTRATION_MAX_COUNT',
    },
    registrationMaxBytes: {
      doc: 'Bound on the registrations waiting for their call, in bytes of their JSON, e.g. 16M; past it POST /calls/{uuid} answers 429 with Retry-After. The heap they take is up to twice this.',
      format: 'registration-bytes',
      default: '16M' as unknown as number,
      env: 'REGISTRATION_MAX_BYTES',
    },
  },
  shutdown: {
    drainTimeoutMs: {
      doc: 'On SIGTERM/SIGINT, how long live calls may go on (not ready, new connections refused) before each is ended with reason shutdown. 0 = end them at once.',
      format: 'non-negative-ms',
      default: 30000,
      env: 'DRAIN_TIMEOUT_MS',
    },
    flushTimeoutMs: {
      doc: 'Once every call has ended, bound on delivering pending events before exit; the spool keeps what is left. SHUTDOWN_TIMEOUT_MS is accepted as an older name.',
      format: 'positive-ms',
      default: 10000,
      env: 'FLUSH_TIMEOUT_MS',
    },
  },
}

/**
 * Other names accepted: AVR's variable names, so an AVR user can switch by changing one dialplan
 * line, and earlier names of renamed settings.
 */
const ENV_ALIASES: Record<string, string> = {
  SONIOX_SPEECH_RECOGNITION_MODEL: 'soniox.model',
  SONIOX_SPEECH_RECOGNITION_LANGUAGE: 'soniox.languageHints',
  SHUTDOWN_TIMEOUT_MS: 'shutdown.flushTimeoutMs',
}

/**
 * Variables earlier versions read and this one does not. Nothing fails on them (convict ignores
 * unknown variables), so without a warning an operator would believe they still act.
 */
const RETIRED_ENV: Record<string, string> = {
  WEBHOOK_MAX_ATTEMPTS:
    'a failed delivery is now retried until it is WEBHOOK_MAX_AGE old (default 24h), then written to the dead-letter file; remove WEBHOOK_MAX_ATTEMPTS',
}

/** Retired variables set in `env`, each with what replaced it: for a warning at start and in `check`. */
export function retiredSettings(env: NodeJS.ProcessEnv): Array<{ env: string; advice: string }> {
  return Object.entries(RETIRED_ENV)
    .filter(([name]) => env[name] !== undefined)
    .map(([name, advice]) => ({ env: name, advice }))
}

/** Every setting: its dotted key, environment variable, default and doc (for the README and `--help`). */
export function describeSettings(): { key: string; env: string; default: unknown; doc: string; sensitive: boolean }[] {
  const out: { key: string; env: string; default: unknown; doc: string; sensitive: boolean }[] = []
  const walk = (node: Record<string, unknown>, prefix: string): void => {
    for (const [name, value] of Object.entries(node)) {
      const item = value as { env?: string; default?: unknown; doc?: string; sensitive?: boolean }
      if (typeof item.env === 'string') {
        out.push({ key: prefix + name, env: item.env, default: item.default, doc: item.doc ?? '', sensitive: item.sensitive === true })
      } else {
        walk(value as Record<string, unknown>, `${prefix}${name}.`)
      }
    }
  }
  walk(schema, '')
  return out
}

export interface LoadOptions {
  env: NodeJS.ProcessEnv
  /** Path of a JSON config file (CONFIG_FILE or --config); its keys follow the dotted keys in the README. */
  configFile?: string | undefined
}

/**
 * Builds the configuration or throws an AppError(ERR_CONFIG_INVALID) whose message lists every
 * problem, each naming the environment variable (and file key) and the expected form.
 */
export function loadConfig(options: LoadOptions): Config {
  const c = convict(schema, { env: options.env, args: [] })
  const problems: string[] = []

  const configFile = options.configFile ?? options.env.CONFIG_FILE
  if (configFile) {
    try {
      c.load(parseJsonFile(configFile))
    } catch (err) {
      problems.push(`CONFIG_FILE (${configFile}): ${(err as Error).message}`)
    }
  }
  // Aliases sit above the file and below the canonical variable, which convict re-applies on load.
  const aliasValues: Record<string, unknown> = {}
  /** Setting key -> the variable the operator actually used, so errors name what they wrote. */
  const envNames = new Map(describeSettings().map((s) => [s.key, s.env]))
  for (const [alias, key] of Object.entries(ENV_ALIASES)) {
    const raw = options.env[alias]
    const canonical = envNames.get(key)
    if (raw !== undefined && (canonical === undefined || options.env[canonical] === undefined)) {
      setPath(aliasValues, key, raw)
      envNames.set(key, alias)
    }
  }
  if (Object.keys(aliasValues).length > 0) c.load(aliasValues)

  try {
    c.validate({ allowed: 'strict' })
  } catch (err) {
    problems.push(...explainValidation((err as Error).message, envNames))
  }
  const raw = c.getProperties() as unknown as RawConfig
  problems.push(...checkRanges(raw))
  const context = readContext(raw.soniox.contextFile, problems)
  checkCaFile(raw.webhook.caFile, problems)

  if (problems.length > 0) {
    throw new AppError('ERR_CONFIG_INVALID', `invalid configuration:\n  ${problems.join('\n  ')}`)
  }
  return deepFreeze(toConfig(raw, context))
}

type RawConfig = Omit<Config, 'soniox'> & { soniox: Omit<Config['soniox'], 'context'> & { contextFile: string | null } }

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.')
  let node = target
  for (const part of parts.slice(0, -1)) {
    node = (node[part] ??= {}) as Record<string, unknown>
  }
  node[parts[parts.length - 1] as string] = value
}

/**
 * Reads a JSON file. A syntax error is reported by line and column only: JSON.parse's own message
 * quotes the text around the error, which may be a secret pasted without quotes.
 */
function parseJsonFile(path: string): unknown {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new Error(`cannot be read: ${(err as Error).message}`)
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    const position = /position (\d+)/.exec((err as Error).message)?.[1]
    if (position === undefined) throw new Error('is not valid JSON')
    const before = text.slice(0, Number(position))
    const line = before.split('\n').length
    const column = Number(position) - before.lastIndexOf('\n')
    throw new Error(`is not valid JSON (syntax error at line ${line}, column ${column}; are strings quoted?)`)
  }
}

/** Rewrites convict's `key: message: value was X` lines so each names the environment variable. */
function explainValidation(message: string, envByKey: Map<string, string>): string[] {
  return message
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const m = /^([\w.]+): (.*)$/.exec(line)
      const undeclared = /configuration param '([\w.]+)' not declared/.exec(line)
      if (undeclared) return `config file key "${undeclared[1]}" is not a known setting (see README, "Settings")`
      if (!m) return line
      const [, key = '', value = ''] = m
      const rest = URL_SETTINGS.has(key) ? redactValueWas(value) : value
      const env = envByKey.get(key)
      return env ? `${env} (${key}): ${rest}` : `${key}: ${rest}`
    })
}

/** Settings holding a URL, which may carry a password or a token: their value is shown redacted. */
const URL_SETTINGS = new Set(['webhook.url', 'soniox.websocketUrl'])

/** `must use http: or https:: value was "ftp://user:pw@host"` -> `...: value was "ftp://user:***@host"`. */
function redactValueWas(text: string): string {
  const m = /^(.*?: value was )(".*")$/.exec(text)
  if (!m) return text
  const value: unknown = JSON.parse(m[2] ?? '""')
  return typeof value === 'string' ? `${m[1]}${JSON.stringify(redactUrl(value))}` : text
}

function checkRanges(raw: RawConfig): string[] {
  const problems: string[] = []
  const s = raw.soniox
  const range = (env: string, key: string, v: number | null, min: number, max: number, integer: boolean): void => {
    if (v === null) return
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
      problems.push(`${env} (${key}): must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max} or unset: value was ${JSON.stringify(v)}`)
    }
  }
  range('SONIOX_MAX_ENDPOINT_DELAY_MS', 'soniox.maxEndpointDelayMs', s.maxEndpointDelayMs, 500, 3000, true)
  range('SONIOX_ENDPOINT_SENSITIVITY', 'soniox.endpointSensitivity', s.endpointSensitivity, -1, 1, false)
  range('SONIOX_ENDPOINT_LATENCY_ADJUSTMENT_LEVEL', 'soniox.endpointLatencyAdjustmentLevel', s.endpointLatencyAdjustmentLevel, 0, 3, true)
  const v5Only = s.endpointSensitivity !== null || s.endpointLatencyAdjustmentLevel !== null
  if (v5Only && typeof s.model === 'string' && s.model !== 'stt-rt-v5') {
    problems.push(
      `SONIOX_ENDPOINT_SENSITIVITY / SONIOX_ENDPOINT_LATENCY_ADJUSTMENT_LEVEL: only stt-rt-v5 accepts them (SONIOX_MODEL is ${s.model}); unset them or use stt-rt-v5`,
    )
  }
  if (typeof s.model === 'string' && !/^stt-rt-[\w.-]+$/.test(s.model)) {
    problems.push(`SONIOX_MODEL (soniox.model): must be a real-time model name such as stt-rt-v5: value was ${JSON.stringify(s.model)}`)
  }
  if (raw.audiosocket.slinEncoding !== 'slin' && raw.audiosocket.slinSampleRate !== 8000) {
    problems.push('AUDIOSOCKET_SLIN_ENCODING (audiosocket.slinEncoding): G.711 (mulaw, alaw) is 8 kHz; unset AUDIOSOCKET_SLIN_SAMPLE_RATE or set it to 8000')
  }
  const token = raw.http.token
  if (typeof token === 'string' && token.length < 16) {
    problems.push('HTTP_TOKEN (http.token): must be at least 16 characters (e.g. the output of openssl rand -hex 32)')
  }
  if (raw.admission.requireRegistration === true && (token === null || raw.http.port === 0)) {
    problems.push('REQUIRE_REGISTRATION (admission.requireRegistration): needs the HTTP endpoint (HTTP_PORT not 0) and HTTP_TOKEN, or no call could ever be registered')
  }
  return problems
}

/** WEBHOOK_CA_FILE must be readable PEM now, not at the first https request. */
function checkCaFile(path: string | null, problems: string[]): void {
  if (path === null) return
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    problems.push(`WEBHOOK_CA_FILE (webhook.caFile): ${path} cannot be read: ${(err as Error).message}`)
    return
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    problems.push(`WEBHOOK_CA_FILE (webhook.caFile): ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
  }
}

function readContext(path: string | null, problems: string[]): Config['soniox']['context'] {
  if (path === null) return null
  const setting = `SONIOX_CONTEXT_FILE (soniox.contextFile): ${path}`
  let value: unknown
  try {
    value = parseJsonFile(path)
  } catch (err) {
    problems.push(`${setting} ${(err as Error).message}`)
    return null
  }
  // Checked at start rather than refused by Soniox on every call.
  const parsed = parseSonioxContext(value, 'context')
  if ('problems' in parsed) {
    problems.push(...parsed.problems.map((problem) => `${setting}: ${problem}`))
    return null
  }
  return parsed.context
}

function toConfig(raw: RawConfig, context: Config['soniox']['context']): Config {
  const { contextFile: _unused, ...soniox } = raw.soniox
  // Canonical CIDR text (host bits cleared, IPv4-mapped blocks as IPv4): what the logs show.
  const allowedSources = raw.admission.allowedSources.map((block) => parseCidr(block).text)
  return { ...raw, soniox: { ...soniox, context }, admission: { ...raw.admission, allowedSources } }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}
