/**
 * Rules a value must keep wherever it enters: the configuration at start, a call registration, the
 * webhook transport. One definition each, so a setting and a request cannot disagree on what a
 * language code or a header is.
 */
import http from 'node:http'

/** ISO 639 code with optional subtags: what Soniox's language_hints and translation take. */
const LANGUAGE_CODE = /^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/

export function isLanguageCode(value: unknown): value is string {
  return typeof value === 'string' && LANGUAGE_CODE.test(value)
}

/**
 * Headers the webhook transport owns: the body's framing and the signature. An extra header of
 * one of these names would break the contract or the signature, so it is refused at start.
 */
export const RESERVED_WEBHOOK_HEADERS: readonly string[] = [
  'content-type',
  'content-length',
  'transfer-encoding',
  'connection',
  'host',
  'user-agent',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
]

/**
 * Why an extra webhook request header cannot be sent, or undefined when it can. Name and value are
 * checked by node:http's own validators (an RFC 9110 token; no control characters). The message
 * never quotes the value: this setting typically carries a token.
 */
export function webhookHeaderProblem(name: string, value: unknown): string | undefined {
  try {
    http.validateHeaderName(name)
  } catch {
    return `${JSON.stringify(name)} is not a valid header name`
  }
  if (typeof value !== 'string') return `the value of ${name} must be a string without control characters`
  try {
    http.validateHeaderValue(name, value)
  } catch {
    return `the value of ${name} must be a string without control characters`
  }
  if (RESERVED_WEBHOOK_HEADERS.includes(name.toLowerCase())) return `${name} is set by the server and cannot be overridden`
  return undefined
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

/** The PEM certificate blocks in `text` (a CA file), in order; none when it holds none. */
export function pemCertificates(text: string): string[] {
  return text.match(PEM_CERTIFICATE) ?? []
}
