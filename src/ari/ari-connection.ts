/**
 * Where ARI is and how to log in, shared by the REST client and the events socket: the base URL
 * (ARI_URL, with or without its `/ari` suffix, under any http.conf `prefix`) and the basic-auth
 * header. The password goes only into that header: never into a URL (ARI also takes `api_key=` in
 * the query, which would put it in Asterisk's and any proxy's access logs) and never into a log line.
 */
import { Buffer } from 'node:buffer'
import { AppError } from '../shared/errors.js'
import { redactUrl } from '../shared/redact-url.js'

export interface AriConnection {
  /** e.g. http://127.0.0.1:8088 (no /ari suffix; one is accepted and stripped). */
  url: string
  username: string
  password: string
}

export interface AriEndpoint {
  /** `http:` or `https:` */
  protocol: 'http:' | 'https:'
  hostname: string
  /** host[:port] as a URL spells it (an IPv6 literal in brackets). */
  host: string
  /** The port as a number (the scheme's default when the URL names none). */
  port: number
  /** Path of the ARI root, always ending in `/ari` (`/ari`, `/asterisk/ari`). */
  basePath: string
  /** `Basic <base64(username:password)>` */
  authorization: string
  /** The base URL as it may be shown (logs, errors, `check`): credentials and query masked. */
  shown: string
}

/**
 * The endpoint of `connection`. Throws AppError(ERR_CONFIG_INVALID) for a URL that does not parse or
 * is not http(s): config/ validates ARI_URL before anything is built, so only a caller that bypassed
 * it gets here.
 */
export function ariEndpoint(connection: AriConnection): AriEndpoint {
  const url = URL.canParse(connection.url) ? new URL(connection.url) : undefined
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.host === '') {
    throw new AppError('ERR_CONFIG_INVALID', `the ARI URL must be an absolute http:// or https:// URL, got ${redactUrl(connection.url)}`)
  }
  const root = url.pathname.replace(/\/+$/, '').replace(/\/ari$/, '')
  const basePath = `${root}/ari`
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port)
  // A bracketed IPv6 literal ([::1]) is a URL's spelling, not a host name net.connect takes.
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1')
  const authorization = `Basic ${Buffer.from(`${connection.username}:${connection.password}`, 'utf8').toString('base64')}`
  return { protocol: url.protocol, hostname, host: url.host, port, basePath, authorization, shown: redactUrl(`${url.protocol}//${url.host}${basePath}`) }
}
