/**
 * Every format a setting can have. Convict's built-ins coerce loosely ("yes" -> true, "abc" ->
 * NaN); these keep the raw text when it does not parse, so a problem shows what the operator
 * actually wrote, and `check` returns the value in its final, typed form.
 */
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { parseCidrList } from '../shared/cidr.js'
import { redactUrl } from '../shared/redact-url.js'
import { parseSonioxContext, type SonioxContext } from '../shared/soniox-context.js'
import { isLanguageCode, pemCertificates, webhookHeaderProblem } from '../shared/validate.js'
import { readJsonFile } from './json-file.js'
import type { Format } from './setting.js'

const DAY_MS = 24 * 3600 * 1000
const WHOLE_NUMBER = /^-?\d+$/

function integer(name: string, min: number, max: number): Format<number> {
  return {
    name,
    coerce: (text) => (WHOLE_NUMBER.test(text.trim()) ? Number(text) : text),
    check(value) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
        throw new Error(`must be a whole number from ${min} to ${max}`)
      }
      return value
    },
  }
}

/** A number in [min, max], or null when unset (the empty string unsets it too). */
function optionalNumber(name: string, { min, max, integer }: { min: number; max: number; integer: boolean }): Format<number | null> {
  return {
    name,
    coerce(text) {
      const s = text.trim()
      if (s === '') return null
      const parses = integer ? WHOLE_NUMBER.test(s) : Number.isFinite(Number(s))
      return parses ? Number(s) : text
    },
    check(value) {
      if (value === null) return null
      if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
        throw new Error(`must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max} or unset`)
      }
      return value
    },
  }
}

function oneOf<const T extends string>(name: string, values: readonly T[], expected: string): Format<T> {
  return {
    name,
    check(value) {
      const found = values.find((v) => v === value)
      if (found === undefined) throw new Error(`must be ${expected}`)
      return found
    },
  }
}

const DURATION = /^(\d+)\s*(ms|s|m|h|d)?$/
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** "24h", "90m", "3600s", "500ms", "2d" or plain milliseconds, to whole milliseconds. */
function duration(name: string, minMs: number, maxMs: number, range: string): Format<number> {
  return {
    name,
    coerce(text) {
      const m = DURATION.exec(text.trim().toLowerCase())
      return m ? Number(m[1]) * (DURATION_UNIT_MS[m[2] ?? 'ms'] ?? 1) : text
    },
    check(value) {
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < minMs || value > maxMs) {
        throw new Error(`must be a duration from ${range}: a whole number with ms, s, m, h or d (e.g. 24h, 90m, 3600s), or plain milliseconds`)
      }
      return value
    },
  }
}

const BYTE_SIZE = /^(\d+)\s*([kmgt])?(?:i?b)?$/
const BYTE_UNITS: Record<string, number> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }

/** "256M", "1G", "512MiB", "65536" (powers of 1024), to bytes. */
function byteSize(name: string, min: number, max: number, range: string): Format<number> {
  return {
    name,
    coerce(text) {
      const m = BYTE_SIZE.exec(text.trim().toLowerCase())
      return m ? Number(m[1]) * (m[2] === undefined ? 1 : (BYTE_UNITS[m[2]] ?? 1)) : text
    },
    check(value) {
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
        throw new Error(`must be a size from ${range}: bytes, or a whole number with K, M, G or T (powers of 1024), e.g. 256M`)
      }
      return value
    },
  }
}

/** The empty string (an unset-but-present variable) means null. */
const emptyIsNull = (text: string): unknown => (text.trim() === '' ? null : text)

/** A non-empty string, surrounding spaces trimmed. */
function requiredString(name: string, expected: string): Format<string> {
  return {
    name,
    coerce: (text) => text.trim(),
    check(value) {
      if (typeof value !== 'string' || value === '') throw new Error(expected)
      return value
    },
  }
}

/** A string, or null when unset (the empty string unsets it too). */
function optionalString(name: string, expected: string): Format<string | null> {
  return {
    name,
    coerce: emptyIsNull,
    check(value) {
      if (value !== null && typeof value !== 'string') throw new Error(expected)
      return value
    },
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Redacted: a URL setting may carry a password or a token. */
const showUrl = (value: unknown): string => JSON.stringify(typeof value === 'string' ? redactUrl(value) : value)

// ---------------------------------------------------------------------------------------------

export const text: Format<string> = {
  name: 'text',
  check(value) {
    if (typeof value !== 'string') throw new Error('must be a string')
    return value
  },
}

/** RFC 1123 labels of letters, digits and hyphens, dot-separated; at most 253 characters. */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/

/**
 * An address to listen on (AUDIOSOCKET_HOST, HTTP_HOST): an IPv4 or IPv6 address, or a host name
 * (resolved when the listener starts). A name whose last label is all digits is not a host name
 * (RFC 3696, 2): `999.1.1.1` or `10.0.0` is a mistyped IPv4 address, refused here with the fix
 * instead of failing at start.
 */
export const listenHost: Format<string> = {
  name: 'listen-host',
  coerce: (text) => text.trim(),
  check(value) {
    const form =
      'must be an IPv4 address (e.g. 127.0.0.1, or 0.0.0.0 for every IPv4 interface), an IPv6 address (e.g. ::1, or :: for every interface) or a host name'
    if (typeof value !== 'string' || value === '') throw new Error(form)
    if (isIP(value) !== 0) return value
    if (/^\[.*\]$/.test(value) && isIP(value.slice(1, -1)) !== 0) throw new Error(`${form}; write an IPv6 address without brackets`)
    if (/^[\d.]+$/.test(value)) throw new Error(`${form}; this is not an IPv4 address (four numbers from 0 to 255, e.g. 192.168.1.10)`)
    if (!HOST_NAME.test(value) || /(^|\.)\d+\.?$/.test(value)) throw new Error(form)
    return value
  },
}

export const strictBoolean: Format<boolean> = {
  name: 'strict-boolean',
  coerce(text) {
    const s = text.trim().toLowerCase()
    if (['true', '1', 'yes', 'on'].includes(s)) return true
    if (['false', '0', 'no', 'off', ''].includes(s)) return false
    return text
  },
  check(value) {
    if (typeof value !== 'boolean') throw new Error('must be true or false')
    return value
  },
}

export const tcpPort = integer('tcp-port', 0, 65535)
export const positiveMs = integer('positive-ms', 1, DAY_MS)
export const nonNegativeMs = integer('non-negative-ms', 0, DAY_MS)
export const attempts = integer('attempts', 1, 100)
export const payloadBytes = integer('payload-bytes', 16, 65535)
export const concurrency = integer('concurrency', 1, 1000)
export const maxCalls = integer('max-calls', 0, 100000)
export const registrationCount = integer('registration-count', 1, 1_000_000)

export const maxAge = duration('max-age', 1000, 30 * DAY_MS, '1s to 30d')
export const spoolBytes = byteSize('spool-bytes', 64 * 1024, 2 ** 40, '64K to 1T')
// From 128K: a single registration (a 64 KiB body) must always fit.
export const registrationBytes = byteSize('registration-bytes', 128 * 1024, 2 ** 30, '128K to 1G')

export const slinRate: Format<8000 | 16000> = {
  name: 'slin-rate',
  coerce: (text) => (/^\d+$/.test(text.trim()) ? Number(text) : text),
  check(value) {
    if (value !== 8000 && value !== 16000) throw new Error('must be 8000 or 16000')
    return value
  },
}

export const slinEncoding = oneOf('slin-encoding', ['slin', 'mulaw', 'alaw'], 'slin, mulaw or alaw')
export const silenceMode = oneOf('silence-mode', ['off', 'gaps', 'continuous'], 'off, gaps or continuous')
export const webhookFormat = oneOf('webhook-format', ['standard', 'avr'], 'standard or avr')
export const logLevel = oneOf('log-level', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'one of fatal, error, warn, info, debug, trace, silent')

export const maxEndpointDelayMs = optionalNumber('max-endpoint-delay-ms', { min: 500, max: 3000, integer: true })
export const endpointSensitivity = optionalNumber('endpoint-sensitivity', { min: -1, max: 1, integer: false })
export const endpointLatencyLevel = optionalNumber('endpoint-latency-level', { min: 0, max: 3, integer: true })

export const sonioxModel: Format<string> = {
  name: 'soniox-model',
  check(value) {
    if (typeof value !== 'string' || !/^stt-rt-[\w.-]+$/.test(value)) throw new Error('must be a real-time model name such as stt-rt-v6')
    return value
  },
}

export const languageList: Format<string[]> = {
  name: 'language-list',
  coerce: (text) =>
    text
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  check(value) {
    if (!Array.isArray(value)) throw new Error('must be a comma-separated list of language codes, e.g. "en,es"')
    const codes: string[] = []
    for (const code of value as unknown[]) {
      if (!isLanguageCode(code)) throw new Error(`"${String(code)}" is not a language code; use ISO codes such as en, es, de, separated by commas`)
      codes.push(code)
    }
    if (new Set(codes).size !== codes.length) throw new Error('lists a language more than once')
    return codes
  },
}

export type Translation = { type: 'one_way'; target_language: string } | { type: 'two_way'; language_a: string; language_b: string }

export const translation: Format<Translation | null> = {
  name: 'translation',
  coerce(text) {
    const s = text.trim()
    if (s === '') return null
    const parts = s.split(':')
    if (parts[0] === 'one_way' && parts.length === 2) return { type: 'one_way', target_language: parts[1] }
    if (parts[0] === 'two_way' && parts.length === 3) return { type: 'two_way', language_a: parts[1], language_b: parts[2] }
    return text
  },
  check(value) {
    if (value === null) return null
    const t = isRecord(value) ? value : {}
    if (t.type === 'one_way' && isLanguageCode(t.target_language)) return { type: 'one_way', target_language: t.target_language }
    if (t.type === 'two_way' && isLanguageCode(t.language_a) && isLanguageCode(t.language_b)) {
      return { type: 'two_way', language_a: t.language_a, language_b: t.language_b }
    }
    throw new Error('must be "one_way:<language>" (e.g. one_way:de) or "two_way:<language>:<language>" (e.g. two_way:en:es)')
  },
}

export const optionalHttpUrl: Format<string | null> = {
  name: 'optional-http-url',
  coerce: emptyIsNull,
  check(value) {
    if (value === null) return null
    const protocols = ['http:', 'https:']
    const url = URL.canParse(String(value)) ? new URL(String(value)) : undefined
    if (url === undefined) throw new Error(`must be an absolute URL (${protocols.join(' or ')})`)
    if (!protocols.includes(url.protocol)) throw new Error(`must use ${protocols.join(' or ')}`)
    return String(value)
  },
  show: showUrl,
}

export const websocketUrl: Format<string> = {
  name: 'ws-url',
  check(value) {
    const url = URL.canParse(String(value)) ? new URL(String(value)) : undefined
    if (url === undefined) throw new Error('must be an absolute wss:// or ws:// URL')
    if (url.protocol !== 'wss:' && url.protocol !== 'ws:') throw new Error('must be a wss:// (or ws://) URL')
    return String(value)
  },
  show: showUrl,
}

export const requiredSecret = requiredString('required-secret', 'must be set')
export const optionalSecret = optionalString('optional-secret', 'must be a string')

/** A bearer token: long enough that guessing it is hopeless. */
export const optionalToken: Format<string | null> = {
  name: 'optional-token',
  coerce: emptyIsNull,
  check(value) {
    if (value === null) return null
    if (typeof value !== 'string' || value.length < 16) throw new Error('must be at least 16 characters (e.g. the output of openssl rand -hex 32)')
    return value
  },
}

export const optionalPath = optionalString('optional-path', 'must be a file path')

// The file formats read their file when the setting is checked: a wrong file is reported at start,
// with the other problems, not at the first https request or refused by Soniox on every call.

/** A readable file holding at least one PEM certificate block (WEBHOOK_CA_FILE); the path, or null. */
export const pemFile: Format<string | null> = {
  name: 'pem-file',
  coerce: emptyIsNull,
  check(value) {
    const path = optionalPath.check(value)
    if (path === null) return null
    let content: string
    try {
      content = readFileSync(path, 'utf8')
    } catch (err) {
      throw new Error(`${path} cannot be read: ${(err as Error).message}`)
    }
    if (pemCertificates(content).length === 0) throw new Error(`${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
    return path
  },
  show: () => undefined,
}

/** A JSON file holding a Soniox context (SONIOX_CONTEXT_FILE): the context it holds, validated, or null. */
export const sonioxContextFile: Format<{ path: string; context: SonioxContext } | null> = {
  name: 'soniox-context-file',
  coerce: emptyIsNull,
  check(value) {
    const path = optionalPath.check(value)
    if (path === null) return null
    const file = readJsonFile(path)
    if ('problem' in file) throw new Error(`${path} ${file.problem}`)
    const parsed = parseSonioxContext(file.value, 'context')
    if ('problems' in parsed) throw new AggregateError(parsed.problems.map((problem) => new Error(`${path}: ${problem}`)), `${path}: not a Soniox context`)
    return { path, context: parsed.context }
  },
  show: () => undefined,
}
export const directoryPath = requiredString('dir-path', 'must be a directory path')

/** Addresses and CIDR blocks, to their canonical text (host bits cleared, IPv4-mapped blocks as IPv4): what the logs show. */
export const cidrList: Format<string[]> = {
  name: 'cidr-list',
  coerce: (text) => text.split(/[\s,]+/).filter((s) => s !== ''),
  check(value) {
    if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) {
      throw new Error('must be a comma-separated list of addresses or CIDR blocks, e.g. "127.0.0.1, 10.0.0.0/8, fd00::/8"')
    }
    return parseCidrList(value.join(',')).map((block) => block.text)
  },
}

/** Messages name headers, never values: this setting typically carries a token. */
export const headerMap: Format<Record<string, string>> = {
  name: 'header-map',
  coerce(text) {
    if (text.trim() === '') return {}
    try {
      return JSON.parse(text) as unknown
    } catch {
      return text
    }
  },
  check(value) {
    const form = 'must be a JSON object of header names to string values, e.g. {"Authorization": "Bearer ..."}'
    if (!isRecord(value)) throw new Error(form)
    const headers: Record<string, string> = {}
    for (const [name, headerValue] of Object.entries(value)) {
      const problem = webhookHeaderProblem(name, headerValue)
      if (problem !== undefined) throw new Error(problem)
      headers[name] = String(headerValue)
    }
    return headers
  },
}
