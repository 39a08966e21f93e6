import { createHmac } from 'node:crypto'
import { AppError } from '../shared/errors.js'

/**
 * Standard Webhooks signing (https://www.standardwebhooks.com/): the signed content is
 * `${webhook-id}.${webhook-timestamp}.${body}`, the MAC is HMAC-SHA256 keyed with the secret's
 * bytes, and the header carries `v1,<base64 MAC>`. Receivers check the timestamp is recent, so it is
 * computed per attempt, never per event.
 */

/** Secrets in this form carry their key base64-encoded after the prefix. */
export const WEBHOOK_SECRET_PREFIX = 'whsec_'
/** Version tag of the only signature scheme we emit (symmetric HMAC-SHA256). */
export const SIGNATURE_VERSION = 'v1'

// Standard (not url-safe) base64, optional padding. Node's decoder silently skips characters it does
// not know, so a mistyped secret would otherwise sign with a different key and every delivery would
// be rejected downstream with no hint why.
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/

/**
 * The HMAC key for a configured secret: `whsec_<base64>` is decoded, any other string is used as its
 * UTF-8 bytes. Throws ERR_CONFIG_INVALID for an empty key or a `whsec_` secret that is not base64,
 * since either would make every signature useless.
 */
export function decodeWebhookSecret(secret: string): Buffer {
  if (secret.startsWith(WEBHOOK_SECRET_PREFIX)) {
    const encoded = secret.slice(WEBHOOK_SECRET_PREFIX.length)
    if (!BASE64.test(encoded)) {
      throw new AppError('ERR_CONFIG_INVALID', 'the webhook secret starts with whsec_ but the rest is not base64')
    }
    const key = Buffer.from(encoded, 'base64')
    if (key.length === 0) throw new AppError('ERR_CONFIG_INVALID', 'the webhook secret decodes to an empty key')
    return key
  }
  if (secret.length === 0) {
    throw new AppError('ERR_CONFIG_INVALID', 'the webhook secret is empty')
  }
  return Buffer.from(secret, 'utf8')
}

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. `timestampSeconds` is unix time in whole seconds. */
export function signPayload(secretKey: Buffer, id: string, timestampSeconds: number, body: string): string {
  const mac = createHmac('sha256', secretKey)
    .update(`${id}.${timestampSeconds}.${body}`, 'utf8')
    .digest('base64')
  return `${SIGNATURE_VERSION},${mac}`
}

export interface WebhookSignatureHeaders {
  'webhook-id': string
  'webhook-timestamp': string
  'webhook-signature': string
}

/**
 * The three Standard Webhooks headers for one attempt. A fractional timestamp is floored so that the
 * value signed and the value sent are the same integer.
 */
export function webhookHeaders(
  secretKey: Buffer,
  id: string,
  timestampSeconds: number,
  body: string,
): WebhookSignatureHeaders {
  const timestamp = Math.floor(timestampSeconds)
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signPayload(secretKey, id, timestamp, body),
  }
}
