/**
 * Settings of the ARI client (ARI_*): where Asterisk's REST Interface is, the login, the Stasis
 * application name, and the address Asterisk connects tap streams (externalMedia) to. ARI_URL
 * unset turns ARI off; set, it needs ARI_USERNAME and ARI_PASSWORD (the rule below).
 *
 * ARI_EXTERNAL_HOST unset means "this server's AudioSocket listener": its host:port, with a
 * wildcard address (0.0.0.0, ::) replaced by 127.0.0.1, since Asterisk must connect to an address,
 * not listen on one. The loaded Config holds the resolved value (`resolveAriConfig`).
 */
import { redactUrl } from '../shared/redact-url.js'
import { positiveMs } from './formats.js'
import type { Settings } from './schema.js'
import { setting, type Format } from './setting.js'

/** http(s)://host[:port][/prefix][/ari], or null when unset (ARI off). */
export const ariUrl: Format<string | null> = {
  name: 'ari-url',
  coerce: (text) => (text.trim() === '' ? null : text.trim()),
  check(value) {
    if (value === null) return null
    const url = typeof value === 'string' && URL.canParse(value) ? new URL(value) : undefined
    if (url !== undefined && url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('must use http:// or https:// (the events socket follows as ws:// or wss://), e.g. http://127.0.0.1:8088')
    if (url === undefined || url.host === '') throw new Error("must be an absolute http:// or https:// URL of Asterisk's HTTP server, e.g. http://127.0.0.1:8088")
    if (url.username !== '' || url.password !== '') throw new Error('must not carry a username or password: set ARI_USERNAME and ARI_PASSWORD instead')
    if (url.search !== '' || url.hash !== '') throw new Error('must not carry a query or fragment: give the base URL, e.g. http://127.0.0.1:8088')
    return String(value)
  },
  show: (value) => JSON.stringify(typeof value === 'string' ? redactUrl(value) : value),
}

/** A user of ari.conf ('' when unset); basic auth cannot carry a `:` in the username. */
export const ariUsername: Format<string> = {
  name: 'ari-username',
  coerce: (text) => text.trim(),
  check(value) {
    if (typeof value !== 'string') throw new Error('must be a string')
    if (/[:\s\p{Cc}]/u.test(value)) throw new Error('must be an ari.conf user name: no colon, space or control character')
    return value
  },
}

/** The password as written ('' when unset): not trimmed, a space may belong to it. */
export const ariPassword: Format<string> = {
  name: 'ari-password',
  check(value) {
    if (typeof value !== 'string') throw new Error('must be a string')
    if (/[\r\n\0]/.test(value)) throw new Error('must not hold a line break or NUL')
    return value
  },
}

/** A Stasis application name: what ARI accepts in `app=` and Stasis() in the dialplan. */
export const ariAppName: Format<string> = {
  name: 'ari-app-name',
  coerce: (text) => text.trim(),
  check(value) {
    if (typeof value !== 'string' || !/^[A-Za-z0-9._-]{1,80}$/.test(value)) {
      throw new Error('must be 1 to 80 letters, digits, "-", "_" or "." (e.g. audiosocket-soniox)')
    }
    return value
  },
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

/** host:port ([v6]:port) Asterisk can connect to, or null when unset. */
export const optionalHostPort: Format<string | null> = {
  name: 'optional-host-port',
  coerce: (text) => (text.trim() === '' ? null : text.trim()),
  check(value) {
    if (value === null) return null
    const form = 'must be host:port that Asterisk connects to, e.g. 10.0.0.5:9092 or [fd00::5]:9092'
    if (typeof value !== 'string') throw new Error(form)
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value)
    if (m === null) throw new Error(form)
    const port = Number(m[3])
    if (port < 1 || port > 65535) throw new Error(`${form}; the port must be 1 to 65535`)
    const host = m[1] ?? m[2] ?? ''
    if (m[1] !== undefined ? !URL.canParse(`http://[${host}]/`) : !HOST_NAME.test(host)) throw new Error(form)
    if (host === '0.0.0.0' || host === '::') throw new Error(`${form}; not a wildcard address (Asterisk connects to it)`)
    return value
  },
}

export const ariSettings = {
  url: setting(ariUrl, {
    doc: "Asterisk's HTTP server for ARI (http.conf), e.g. http://127.0.0.1:8088 (with or without /ari); unset = ARI off (no tapping of bridged calls).",
    default: null,
    env: 'ARI_URL',
  }),
  username: setting(ariUsername, { doc: 'ARI user (a section of ari.conf with read_only = no); required with ARI_URL.', default: '', env: 'ARI_USERNAME' }),
  password: setting(ariPassword, { doc: "The ARI user's password (sent as basic auth, never in a URL); required with ARI_URL.", default: '', env: 'ARI_PASSWORD', sensitive: true }),
  app: setting(ariAppName, { doc: 'Stasis application name this server registers over ARI (letters, digits, -, _, .).', default: 'audiosocket-soniox', env: 'ARI_APP' }),
  externalHost: setting(optionalHostPort, {
    doc: "host:port Asterisk connects tap streams (externalMedia) to; unset = the AudioSocket listener's AUDIOSOCKET_HOST:AUDIOSOCKET_PORT, with 0.0.0.0 or :: as 127.0.0.1.",
    default: null,
    env: 'ARI_EXTERNAL_HOST',
  }),
  requestTimeoutMs: setting(positiveMs, { doc: 'Bound on one ARI REST request, answer included.', default: 5000, env: 'ARI_REQUEST_TIMEOUT_MS' }),
}

/** What the service gets: the settings with ARI_EXTERNAL_HOST resolved. */
export type AriConfig = Omit<Settings['ari'], 'externalHost'> & {
  /** host:port Asterisk connects tap streams to (ARI_EXTERNAL_HOST, or the AudioSocket listener's). */
  externalHost: string
}

/**
 * ARI_EXTERNAL_HOST, or the listener's host:port: a wildcard host becomes 127.0.0.1 (Asterisk on
 * this host), an IPv6 address is bracketed. With AUDIOSOCKET_PORT=0 the port is 0 here: whoever
 * binds the listener knows the real one.
 */
export function resolveAriConfig(ari: Settings['ari'], audiosocket: { host: string; port: number }): AriConfig {
  if (ari.externalHost !== null) return { ...ari, externalHost: ari.externalHost }
  const bare = audiosocket.host.trim().replace(/^\[(.*)\]$/, '$1')
  const host = bare === '' || bare === '0.0.0.0' || bare === '::' || bare === '::0' ? '127.0.0.1' : bare
  return { ...ari, externalHost: `${host.includes(':') ? `[${host}]` : host}:${audiosocket.port}` }
}

/** The rule between ARI settings: ARI_URL set needs the login. */
export function ariSettingProblems(settings: Settings): string[] {
  const ari = settings.ari
  if (ari.url === null) return []
  const missing = [ari.username === '' ? 'ARI_USERNAME' : undefined, ari.password === '' ? 'ARI_PASSWORD' : undefined].filter((name) => name !== undefined)
  if (missing.length === 0) return []
  return [
    `ARI_URL (ari.url): needs ARI_USERNAME and ARI_PASSWORD (a user of ari.conf with read_only = no); ${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} not set: set ${missing.length === 1 ? 'it' : 'them'}, or unset ARI_URL to run without ARI`,
  ]
}
