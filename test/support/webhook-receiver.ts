/**
 * A real HTTP server on 127.0.0.1 (port 0) standing in for the downstream system that receives our
 * webhooks. Tests script its answers per request and await what it has accepted.
 *
 * Signature checking is deliberately a second, independent implementation of Standard Webhooks
 * verification (nothing is imported from src/webhook/signing.ts): if the sink and this file shared
 * code, a bug in that code would sign and verify consistently and no test would notice.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import http, { type IncomingHttpHeaders } from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'

export interface ReceivedRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  rawBody: string
  /** The parsed JSON body, or undefined if it was not JSON. */
  body: any
  /** undefined when the receiver has no secret. */
  signatureValid: boolean | undefined
  /** Date.now() when the whole request body had arrived. */
  receivedAt: number
  /** The status the receiver answered; undefined until answered, and forever if never answered. */
  status: number | undefined
  /** Date.now() when the answer was written. */
  respondedAt: number | undefined
}

export interface ScriptedResponse {
  status: number
  headers?: Record<string, string>
  body?: string
  /** Answer after this many ms; Infinity never answers (the connection is dropped at close()). */
  delayMs?: number
  /** Destroy the connection instead of answering: the client sees a network error. */
  destroy?: boolean
}

export interface WebhookReceiverOptions {
  /** Verify Standard Webhooks signatures with this secret (`whsec_<base64>` or plain bytes). */
  secret?: string
  /**
   * Decide the answer to each request. `attempt` counts requests carrying the same event id (the
   * body's `id`, else the webhook-id header), from 1, so "fail the first attempt" is `attempt === 1`.
   * Returning undefined answers 204.
   */
  respond?: (req: ReceivedRequest, attempt: number) => ScriptedResponse | undefined
  /** Listen on this port instead of a free one (e.g. to come back up where a closed receiver was). */
  port?: number
  /** Serve HTTPS with this key and certificate (PEM); the URL is then https://. */
  tls?: { key: string | Buffer; cert: string | Buffer }
}

export interface WebhookReceiver {
  readonly url: string
  /** Every request, failed attempts included, in arrival order. */
  readonly requests: ReceivedRequest[]
  /** Bodies of requests answered 2xx, in the order the requests arrived (not the order answered). */
  readonly events: any[]
  eventsFor(callId: string): any[]
  /** Resolves with `events` as soon as the predicate holds; rejects after timeoutMs listing what arrived. */
  waitFor(predicate: (events: any[]) => boolean, timeoutMs?: number): Promise<any[]>
  close(): Promise<void>
}

const SECRET_PREFIX = 'whsec_'
const TOLERANCE_SECONDS = 5 * 60

function secretBytes(secret: string): Buffer {
  return secret.startsWith(SECRET_PREFIX)
    ? Buffer.from(secret.substring(SECRET_PREFIX.length), 'base64')
    : Buffer.from(secret, 'utf8')
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}

/** Standard Webhooks verification as a receiver would write it, all checks explicit. */
function verifySignature(key: Buffer, headers: IncomingHttpHeaders, rawBody: string): boolean {
  const id = headerValue(headers, 'webhook-id')
  const timestamp = headerValue(headers, 'webhook-timestamp')
  const signatures = headerValue(headers, 'webhook-signature')
  if (!id || !timestamp || !signatures || !/^\d+$/.test(timestamp)) return false
  if (Math.abs(Math.floor(Date.now() / 1000) - Number(timestamp)) > TOLERANCE_SECONDS) return false

  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${rawBody}`).digest()
  return signatures.split(' ').some((entry) => {
    const comma = entry.indexOf(',')
    if (comma < 0 || entry.substring(0, comma) !== 'v1') return false
    const candidate = Buffer.from(entry.substring(comma + 1), 'base64')
    return candidate.length === expected.length && timingSafeEqual(candidate, expected)
  })
}

function describe(events: any[], requests: ReceivedRequest[]): string {
  const accepted = events.map((e) => `${e?.call_id}#${e?.seq} ${e?.type}`).join(', ') || 'none'
  const statuses = requests.map((r) => r.status ?? 'unanswered').join(', ') || 'none'
  return `accepted events: [${accepted}]; ${requests.length} request(s) answered: [${statuses}]`
}

export async function startWebhookReceiver(options: WebhookReceiverOptions = {}): Promise<WebhookReceiver> {
  const key = options.secret === undefined ? undefined : secretBytes(options.secret)
  const requests: ReceivedRequest[] = []
  const events: any[] = []
  /** For each entry of `events`, the index in `requests` of the request that carried it. */
  const eventArrivals: number[] = []
  const attemptsById = new Map<string, number>()
  const timers = new Set<NodeJS.Timeout>()
  const waiters = new Set<() => void>()

  const notify = (): void => {
    for (const check of [...waiters]) check()
  }

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8')
      let body: any
      try {
        body = JSON.parse(rawBody)
      } catch {
        body = undefined
      }
      const received: ReceivedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawBody,
        body,
        signatureValid: key === undefined ? undefined : verifySignature(key, req.headers, rawBody),
        receivedAt: Date.now(),
        status: undefined,
        respondedAt: undefined,
      }
      const arrival = requests.push(received) - 1

      const eventId = typeof body?.id === 'string' ? body.id : headerValue(req.headers, 'webhook-id') ?? ''
      const attempt = (attemptsById.get(eventId) ?? 0) + 1
      attemptsById.set(eventId, attempt)
      const answer = options.respond?.(received, attempt) ?? { status: 204 }

      const send = (): void => {
        // The client may have given up (timeout) while we waited: that attempt was not delivered.
        if (res.destroyed || req.socket.destroyed) return
        if (answer.destroy) {
          req.socket.destroy()
          return
        }
        received.status = answer.status
        received.respondedAt = Date.now()
        res.writeHead(answer.status, answer.headers)
        res.end(answer.body)
        if (answer.status >= 200 && answer.status < 300) {
          // Keep `events` in arrival order even when a later request was answered first.
          let at = events.length
          while (at > 0 && (eventArrivals[at - 1] ?? 0) > arrival) at--
          events.splice(at, 0, body)
          eventArrivals.splice(at, 0, arrival)
        }
        notify()
      }

      const delayMs = answer.delayMs ?? 0
      if (delayMs === Infinity) return
      if (delayMs <= 0) {
        send()
        return
      }
      const timer = setTimeout(() => {
        timers.delete(timer)
        send()
      }, delayMs)
      timers.add(timer)
    })
  }
  const server = options.tls ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler) : http.createServer(handler)

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo

  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}/hooks/events`,
    requests,
    events,
    eventsFor(callId: string): any[] {
      return events.filter((e) => e?.call_id === callId)
    },
    waitFor(predicate: (events: any[]) => boolean, timeoutMs = 5000): Promise<any[]> {
      return new Promise<any[]>((resolve, reject) => {
        const check = (): void => {
          if (!predicate(events)) return
          waiters.delete(check)
          clearTimeout(timer)
          resolve(events)
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`waitFor timed out after ${timeoutMs} ms; ${describe(events, requests)}`))
        }, timeoutMs)
        waiters.add(check)
        check()
      })
    },
    async close(): Promise<void> {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      // Unanswered and keep-alive connections would otherwise hold close() open.
      server.closeAllConnections()
      await closed
    },
  }
}
