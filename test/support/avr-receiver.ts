/**
 * A strict receiver of AVR Core's webhook (WEBHOOK_FORMAT=avr), standing in for a receiver written
 * for AVR: a real HTTP server on 127.0.0.1 (port 0) that checks every request against AVR's shapes
 * as its documentation and its sample receiver (agentvoiceresponse/avr-webhook) give them, and
 * answers as that sample does: 401 for a missing or wrong X-AVR-WEBHOOK-SECRET, 400 for a body it
 * cannot take, 429 past 100 requests per 15 minutes per address, 200 otherwise.
 *
 * Every problem is also recorded in `violations` (a test asserts it stays empty):
 *   - the request: POST, content-type application/json, the secret header exactly as configured (or
 *     absent without one), no Standard Webhooks headers (AVR sends none);
 *   - the envelope: exactly the keys uuid, type, timestamp, payload, in that order; uuid a UUID;
 *     timestamp ISO-8601 as JavaScript writes it; type one of AVR's;
 *   - the payload, exactly: call_started {}, call_ended {}, transcription { role: user|agent, text },
 *     dtmf_digit { digit }, error { message };
 *   - the order per uuid among accepted events: call_started first and once, nothing after
 *     call_ended, an error only right before call_ended.
 *
 * Nothing here is imported from src/: a shared mistake would otherwise pass on both sides.
 */
import http, { type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface AvrEvent {
  uuid: string
  type: string
  timestamp: string
  payload: any
}

export interface AvrRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  rawBody: string
  body: any
  status: number
}

export interface AvrReceiverOptions {
  /** The WEBHOOK_SECRET the receiver was given: X-AVR-WEBHOOK-SECRET must be exactly it. */
  secret?: string
  /** Answer a request otherwise (e.g. 503 while "down"); undefined lets the checks decide. */
  respond?: (request: AvrRequest) => { status: number; body?: string; headers?: Record<string, string> } | undefined
  /** The sample receiver's express-rate-limit: requests per window per address. Default 100 per 15 min. */
  rateLimit?: { max: number; windowMs: number }
}

export interface AvrReceiver {
  readonly url: string
  readonly requests: AvrRequest[]
  /** Bodies answered 2xx, in arrival order. */
  readonly events: AvrEvent[]
  /** Every check that failed, one line each; empty when everything was exactly AVR's. */
  readonly violations: string[]
  /** Requests refused for the rate limit. */
  readonly rateLimited: number
  eventsFor(uuid: string): AvrEvent[]
  /** Resolves once the predicate holds over `events`; rejects after timeoutMs saying what arrived. */
  waitFor(predicate: (events: AvrEvent[]) => boolean, timeoutMs?: number): Promise<AvrEvent[]>
  close(): Promise<void>
}

export const AVR_EVENT_TYPES = ['call_initiated', 'call_started', 'call_ended', 'interruption', 'transcription', 'dtmf_digit', 'error'] as const
const ENVELOPE_KEYS = ['uuid', 'type', 'timestamp', 'payload']
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const DIGIT = /^[0-9A-D*#]$/

/** What is wrong with one body (empty when nothing). */
export function avrShapeProblems(body: any): string[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return ['the body is not a JSON object']
  const problems: string[] = []
  const keys = Object.keys(body)
  if (keys.join() !== ENVELOPE_KEYS.join()) problems.push(`envelope keys are [${keys.join(', ')}], not [${ENVELOPE_KEYS.join(', ')}]`)
  if (typeof body.uuid !== 'string' || !UUID.test(body.uuid)) problems.push(`uuid ${JSON.stringify(body.uuid)} is not a UUID`)
  if (typeof body.timestamp !== 'string' || Number.isNaN(Date.parse(body.timestamp)) || new Date(body.timestamp).toISOString() !== body.timestamp) {
    problems.push(`timestamp ${JSON.stringify(body.timestamp)} is not ISO-8601 as toISOString() writes it`)
  }
  if (!(AVR_EVENT_TYPES as readonly string[]).includes(body.type)) problems.push(`type ${JSON.stringify(body.type)} is not one of AVR's`)
  const payload = body.payload
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return [...problems, 'payload is not an object']
  const exactly = (expected: string[]): void => {
    const got = Object.keys(payload)
    if (got.join() !== expected.join()) problems.push(`${body.type} payload keys are [${got.join(', ')}], not [${expected.join(', ')}]`)
  }
  switch (body.type) {
    case 'call_started':
    case 'call_ended':
    case 'interruption':
      exactly([])
      break
    case 'transcription':
      exactly(['role', 'text'])
      if (payload.role !== 'user' && payload.role !== 'agent') problems.push(`transcription role ${JSON.stringify(payload.role)} is not user or agent`)
      if (typeof payload.text !== 'string' || payload.text.trim() === '') problems.push('transcription text is not a non-empty string')
      break
    case 'dtmf_digit':
      exactly(['digit'])
      if (typeof payload.digit !== 'string' || !DIGIT.test(payload.digit)) problems.push(`dtmf_digit ${JSON.stringify(payload.digit)} is not one DTMF digit`)
      break
    case 'error':
      exactly(['message'])
      if (typeof payload.message !== 'string' || payload.message === '') problems.push('error message is not a non-empty string')
      break
  }
  return problems
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value.join(', ') : value
}

export async function startAvrReceiver(options: AvrReceiverOptions = {}): Promise<AvrReceiver> {
  const limit = options.rateLimit ?? { max: 100, windowMs: 15 * 60_000 }
  const requests: AvrRequest[] = []
  const events: AvrEvent[] = []
  const violations: string[] = []
  const hits = new Map<string, number[]>()
  const waiters = new Set<() => void>()
  let rateLimited = 0

  /** The order per uuid, over accepted events: what an AVR receiver's call state assumes. */
  const checkOrder = (event: AvrEvent): void => {
    const earlier = events.filter((e) => e.uuid === event.uuid)
    const previous = earlier.at(-1)
    if (earlier.length === 0 && event.type !== 'call_started') violations.push(`${event.uuid}: ${event.type} before call_started`)
    if (earlier.length > 0 && event.type === 'call_started') violations.push(`${event.uuid}: a second call_started`)
    if (previous?.type === 'call_ended') violations.push(`${event.uuid}: ${event.type} after call_ended`)
    if (previous?.type === 'error' && event.type !== 'call_ended') violations.push(`${event.uuid}: ${event.type} after error (only call_ended may follow it)`)
  }

  const answer = (res: http.ServerResponse, request: AvrRequest, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    request.status = status
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json', ...headers })
    res.end(text)
    for (const check of [...waiters]) check()
  }

  const server = http.createServer((req, res) => {
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
      const request: AvrRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawBody, body, status: 0 }
      requests.push(request)

      // express-rate-limit in front of everything, as in the sample receiver.
      const address = req.socket.remoteAddress ?? ''
      const now = Date.now()
      const recent = (hits.get(address) ?? []).filter((at) => at > now - limit.windowMs)
      recent.push(now)
      hits.set(address, recent)
      if (recent.length > limit.max) {
        rateLimited++
        answer(res, request, 429, { error: 'Too many requests from this IP, please try again later.', retryAfter: '15 minutes' }, { 'retry-after': String(Math.ceil(limit.windowMs / 1000)) })
        return
      }
      const scripted = options.respond?.(request)
      if (scripted !== undefined) {
        answer(res, request, scripted.status, scripted.body ?? '', scripted.headers)
        return
      }

      const problems: string[] = []
      if (request.method !== 'POST') problems.push(`method ${request.method}`)
      if (!/^application\/json\b/.test(header(req.headers, 'content-type') ?? '')) problems.push(`content-type ${header(req.headers, 'content-type')}`)
      for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
        if (req.headers[name] !== undefined) problems.push(`a ${name} header: AVR sends no Standard Webhooks headers`)
      }
      const given = header(req.headers, 'x-avr-webhook-secret')
      if (options.secret === undefined && given !== undefined) problems.push('an X-AVR-WEBHOOK-SECRET header though no secret is configured')
      const where = `request ${requests.length}${typeof body?.uuid === 'string' ? ` (${body.uuid} ${body.type})` : ''}`
      if (options.secret !== undefined && given !== options.secret) {
        violations.push(`${where}: X-AVR-WEBHOOK-SECRET is ${given === undefined ? 'missing' : 'wrong'}`)
        answer(res, request, 401, { error: 'Unauthorized', message: given === undefined ? 'Missing X-AVR-WEBHOOK-SECRET header' : 'Invalid webhook secret' })
        return
      }
      problems.push(...avrShapeProblems(body))
      if (problems.length > 0) {
        for (const problem of problems) violations.push(`${where}: ${problem}`)
        answer(res, request, 400, { error: 'Missing required fields', problems })
        return
      }
      checkOrder(body as AvrEvent)
      events.push(body as AvrEvent)
      answer(res, request, 200, { success: true, message: 'Event processed successfully', eventId: body.uuid, processedAt: new Date().toISOString() })
    })
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}/events`,
    requests,
    events,
    violations,
    get rateLimited() {
      return rateLimited
    },
    eventsFor: (uuid) => events.filter((e) => e.uuid === uuid),
    waitFor(predicate, timeoutMs = 5000) {
      return new Promise<AvrEvent[]>((resolve, reject) => {
        const check = (): void => {
          if (!predicate(events)) return
          waiters.delete(check)
          clearTimeout(timer)
          resolve(events)
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          const seen = events.map((e) => `${e.uuid.slice(0, 8)} ${e.type}`).join(', ') || 'none'
          reject(new Error(`waitFor timed out after ${timeoutMs} ms; accepted: [${seen}]; statuses: [${requests.map((r) => r.status).join(', ')}]; violations: [${violations.join('; ')}]`))
        }, timeoutMs)
        waiters.add(check)
        check()
      })
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await closed
    },
  }
}
