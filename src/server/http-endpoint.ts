/**
 * The operations endpoint (HTTP_HOST:HTTP_PORT), plain node:http:
 *
 *   GET  /healthz         200 while the process runs (liveness)
 *   GET  /readyz          200 while new calls are accepted; 503 while starting, draining, until
 *                         Soniox has answered the first probe session, while it cannot be reached
 *                         (until it has once) or refuses the account (401/402): a load balancer
 *                         sends calls elsewhere (calls that come anyway are served)
 *   GET  /metrics         Prometheus text format
 *   POST /calls/{uuid}    pre-register a call (bearer HTTP_TOKEN; body: see registrations.ts);
 *                         429 with Retry-After while REGISTRATION_MAX_COUNT / _BYTES are reached
 *   DELETE /calls/{uuid}  withdraw a registration
 *   POST /call            AVR Core's pre-registration, { uuid, payload }: POST /calls/{uuid} with
 *                         the payload as metadata (same bearer token)
 *   POST /conversations   tap a live bridged call through ARI (bearer HTTP_TOKEN; body: see
 *                         conversation-request.ts): 201 { conversation_id, legs }
 *   DELETE /conversations/{id}  stop a tap (its legs end, conversation.ended follows)
 *
 * It stays up while the server drains, so the load balancer sees the 503 and the metrics stay
 * readable until the process exits.
 *
 * Anyone who reaches the port can send requests at will: every refusal is counted
 * (`metrics.requestRefused`), but the log lines a peer can cause are throttled per cause, each
 * carrying how many were held back, and client errors (4xx) are never logged above debug except a
 * wrong token (warn). Input is bounded before anything recursive sees it (body size, nesting).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from '../shared/logger.js'
import { jsonTextTooDeep } from '../shared/json-depth.js'
import { LogThrottle } from '../shared/log-throttle.js'
import { PROMETHEUS_CONTENT_TYPE } from './metrics.js'
import { canonicalUuid, parseAvrCall, parseRegistration, type RegistrationStore } from './registrations.js'
import type { CallOptions } from '../call/call-session.js'
import { conversationBodyFromForm, parseConversationRequest } from './conversation-request.js'
import type { BeginResult, ConversationRequest } from './conversation-taps.js'

/** Registration bodies are small JSON objects; anything larger is refused unread. */
export const MAX_BODY_BYTES = 64 * 1024
/**
 * Nesting refused before JSON.parse: a valid body nests a few levels (metadata at most
 * MAX_METADATA_DEPTH + 1), and a 30,000-level one would overflow the stack of whatever walks it.
 */
export const MAX_BODY_DEPTH = 32
/** A log line a peer can cause is written at most once per cause per this interval. */
const LOG_INTERVAL_MS = 10_000
/** Paths are logged up to this length: a request line may be kilobytes long. */
const LOGGED_PATH_CHARS = 100

/** Why a request was refused: the label of audiosocket_http_requests_refused_total. */
export type HttpRefusalReason =
  | 'unauthorized'
  | 'registration_disabled'
  | 'bad_request'
  | 'not_found'
  | 'method_not_allowed'
  | 'too_large'
  | 'registrations_full'
  | 'draining'
  | 'conversations_disabled'
  | 'conversation_refused'

export const HTTP_REFUSAL_REASONS: readonly HttpRefusalReason[] = [
  'unauthorized',
  'registration_disabled',
  'bad_request',
  'not_found',
  'method_not_allowed',
  'too_large',
  'registrations_full',
  'draining',
  'conversations_disabled',
  'conversation_refused',
]

export interface HttpMetrics {
  requestRefused(reason: HttpRefusalReason): void
}

export interface NotReady {
  /**
   * Stable token: `starting`, `draining`, `soniox_unverified`, `soniox_account`,
   * `soniox_unreachable`, `soniox_refused` (soniox/soniox-prober.ts).
   */
  reason: string
  detail?: Record<string, unknown>
}

export interface HttpEndpointOptions {
  host: string
  port: number
  logger: Logger
  /** Undefined while ready. */
  notReady: () => NotReady | undefined
  renderMetrics: () => string
  activeCalls: () => number
  /** More fields for the 200 answer of /readyz (e.g. the ARI events socket's state). */
  readyDetail?: () => Record<string, unknown>
  registrations: RegistrationStore
  /** Bearer token for /calls; null disables registration (403). */
  token: string | null
  metrics?: HttpMetrics
  /** Taps through ARI (POST/DELETE /conversations); undefined without ARI_URL (404 naming the setting). */
  conversations?: {
    begin(request: ConversationRequest): Promise<BeginResult>
    end(conversationId: string): Promise<boolean>
  }
  /** Clock of the log throttle (tests). */
  now?: () => number
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, uuid: string) => void | Promise<void>

export class HttpEndpoint {
  private readonly server: http.Server
  private readonly tokenDigest: Buffer | undefined
  private readonly logThrottle: LogThrottle

  constructor(private readonly options: HttpEndpointOptions) {
    this.tokenDigest = options.token === null ? undefined : sha256(options.token)
    this.logThrottle = new LogThrottle(LOG_INTERVAL_MS, options.now)
    this.server = http.createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        const suppressed = this.logThrottle.take('bug')
        if (suppressed !== undefined) options.logger.error({ err, method: req.method, path: loggedPath(req), suppressed }, 'HTTP endpoint bug')
        if (!res.headersSent) json(res, 500, { error: 'internal error' })
        else res.destroy()
      })
    })
    // Bounded so a stuck client cannot hold sockets: the requests here are tiny.
    this.server.headersTimeout = 5000
    this.server.requestTimeout = 10000
    this.server.keepAliveTimeout = 5000
    this.server.on('clientError', (_err, socket) => socket.destroy())
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err)
      this.server.once('error', onError)
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError)
        this.server.on('error', (err) => this.options.logger.error({ err }, 'HTTP endpoint error'))
        resolve(this.server.address() as AddressInfo)
      })
    })
  }

  /** Stops listening and drops idle keep-alive connections. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const method = req.method ?? 'GET'
    const read = method === 'GET' || method === 'HEAD'
    switch (path) {
      case '/healthz':
        if (!read) return this.methodNotAllowed(res, 'GET, HEAD')
        return json(res, 200, { status: 'ok' })
      case '/readyz': {
        if (!read) return this.methodNotAllowed(res, 'GET, HEAD')
        const notReady = this.options.notReady()
        if (notReady !== undefined) return json(res, 503, { status: 'not_ready', reason: notReady.reason, ...notReady.detail })
        return json(res, 200, { status: 'ready', active_calls: this.options.activeCalls(), ...this.options.readyDetail?.() })
      }
      case '/metrics':
        if (!read) return this.methodNotAllowed(res, 'GET, HEAD')
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'cache-control': 'no-store' })
        res.end(method === 'HEAD' ? undefined : this.options.renderMetrics())
        return
    }
    if (path === '/conversations' || path.startsWith('/conversations/')) return this.routeConversations(req, res, path, method)
    if (path === '/call') return this.registerAvrCall(req, res, method)
    const m = /^\/calls\/([^/]+)$/.exec(path)
    if (m === null) return this.refuse(res, 'not_found', 404, { error: 'not found' })
    const handler: Handler | undefined = method === 'POST' ? this.register : method === 'DELETE' ? this.unregister : undefined
    if (handler === undefined) return this.methodNotAllowed(res, 'POST, DELETE')
    if (!this.authorize(req, res)) return
    const uuid = canonicalUuid(percentDecode(m[1] ?? '') ?? '')
    if (uuid === undefined) return this.badRequest(res, 'the path must be /calls/<uuid>, a UUID in its 36-character form')
    await handler.call(this, req, res, uuid)
  }

  private authorize(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (this.tokenDigest === undefined) {
      this.refuse(res, 'registration_disabled', 403, { error: 'call registration is disabled: set HTTP_TOKEN' })
      return false
    }
    const match = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '')
    // Compare digests: equal lengths for timingSafeEqual, and no timing hint about the token's length.
    if (match === null || !timingSafeEqual(sha256(match[1] ?? ''), this.tokenDigest)) {
      const suppressed = this.logThrottle.take('unauthorized')
      if (suppressed !== undefined) {
        this.options.logger.warn({ remote: req.socket.remoteAddress, method: req.method, path: loggedPath(req), suppressed }, 'HTTP request refused: missing or wrong bearer token')
      }
      res.setHeader('www-authenticate', 'Bearer')
      this.refuse(res, 'unauthorized', 401, { error: 'a valid "Authorization: Bearer <HTTP_TOKEN>" header is required' })
      return false
    }
    return true
  }

  private async routeConversations(req: http.IncomingMessage, res: http.ServerResponse, path: string, method: string): Promise<void> {
    const m = /^\/conversations\/([^/]+)$/.exec(path)
    if (m === null && path !== '/conversations') return this.refuse(res, 'not_found', 404, { error: 'not found' })
    const allow = m === null ? 'POST' : 'DELETE'
    if (method !== allow) return this.methodNotAllowed(res, allow)
    if (!this.authorize(req, res)) return
    const conversations = this.options.conversations
    if (conversations === undefined) {
      return this.refuse(res, 'conversations_disabled', 404, { error: 'conversations need ARI: set ARI_URL, ARI_USERNAME and ARI_PASSWORD' })
    }
    if (m !== null) {
      const id = canonicalUuid(percentDecode(m[1] ?? '') ?? '')
      if (id === undefined) return this.badRequest(res, 'the path must be /conversations/<conversation_id>')
      if (await conversations.end(id)) {
        res.writeHead(204).end()
        return
      }
      return json(res, 404, { error: 'no live conversation with this id' })
    }
    // The dialplan's CURL() posts form fields (it strips the quotes JSON needs); clients post JSON.
    const form = /^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')
    const body = form ? await this.readForm(req, res) : await this.readJson(req, res)
    if (body === undefined) return
    const parsed = parseConversationRequest(body)
    if ('problems' in parsed) return this.badRequest(res, parsed.problems.join('; '))
    const result = await conversations.begin(parsed.request)
    if (result.ok) {
      json(res, 201, { conversation_id: result.conversationId, legs: result.legs.map((leg) => ({ call_id: leg.callId, role: leg.role })) })
      return
    }
    this.options.logger.debug({ status: result.status, error: result.error.slice(0, 200) }, 'conversation refused')
    this.refuse(res, 'conversation_refused', result.status, { error: result.error, ...(result.conversationId === undefined ? {} : { conversation_id: result.conversationId }) })
  }

  /** The request's body as text, or undefined once a refusal has been answered (or the client left). */
  private async readText(req: http.IncomingMessage, res: http.ServerResponse): Promise<string | undefined> {
    const text = await readBody(req)
    if (text === ABORTED) {
      this.options.logger.debug({ path: loggedPath(req) }, 'HTTP request abandoned by the client before its body ended')
      res.destroy()
      return undefined
    }
    if (text === TOO_LARGE) {
      res.setHeader('connection', 'close')
      this.refuse(res, 'too_large', 413, { error: `the body is larger than ${MAX_BODY_BYTES} bytes` })
      return undefined
    }
    return text
  }

  /** A form-encoded body as the object its JSON twin would be (conversation-request.ts), or undefined once refused. */
  private async readForm(req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown> {
    const text = await this.readText(req, res)
    if (text === undefined) return undefined
    const body = conversationBodyFromForm(text)
    if ('problems' in body) {
      this.badRequest(res, body.problems.join('; '))
      return undefined
    }
    return body.body
  }

  /** The request's JSON body ({} when empty), or undefined once a refusal has been answered. */
  private async readJson(req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown> {
    const text = await this.readText(req, res)
    if (text === undefined) return undefined
    if (text.trim() === '') return {}
    if (jsonTextTooDeep(text, MAX_BODY_DEPTH)) {
      this.badRequest(res, `the body nests arrays and objects more than ${MAX_BODY_DEPTH} levels deep`)
      return undefined
    }
    try {
      return JSON.parse(text) as unknown
    } catch {
      this.badRequest(res, 'the body must be JSON')
      return undefined
    }
  }

  private async register(req: http.IncomingMessage, res: http.ServerResponse, uuid: string): Promise<void> {
    const body = await this.readJson(req, res)
    if (body === undefined) return
    const parsed = parseRegistration(body)
    if ('problems' in parsed) return this.badRequest(res, parsed.problems.join('; '))
    this.store(res, uuid, parsed.options)
  }

  /**
   * AVR Core's pre-registration: `POST /call` with `{ "uuid", "payload" }`, as AVR's dialplan sends
   * it, is `POST /calls/{uuid}` with `{ "metadata": payload }`: the same token, answers and bounds.
   * (AVR answers with its STS URL, which its dialplan only logs; this answers as /calls does.)
   */
  private async registerAvrCall(req: http.IncomingMessage, res: http.ServerResponse, method: string): Promise<void> {
    if (method !== 'POST') return this.methodNotAllowed(res, 'POST')
    if (!this.authorize(req, res)) return
    const body = await this.readJson(req, res)
    if (body === undefined) return
    const parsed = parseAvrCall(body)
    if ('problems' in parsed) return this.badRequest(res, parsed.problems.join('; '))
    this.store(res, parsed.uuid, parsed.options)
  }

  /** Stores a parsed registration and answers: 201 (200 replaced), 503 draining, 429 full. */
  private store(res: http.ServerResponse, uuid: string, options: CallOptions): void {
    const notReady = this.options.notReady()
    if (notReady?.reason === 'draining') return this.refuse(res, 'draining', 503, { error: 'the server is draining and takes no new calls' })
    const stored = this.options.registrations.register(uuid, options)
    if (!stored.stored) {
      const setting = stored.limit === 'count' ? 'REGISTRATION_MAX_COUNT' : 'REGISTRATION_MAX_BYTES'
      const retryAfterSeconds = Math.max(1, Math.ceil(stored.retryAfterMs / 1000))
      const suppressed = this.logThrottle.take('registrations_full')
      if (suppressed !== undefined) this.options.logger.warn({ setting, retryAfterSeconds, suppressed }, `call registration refused: ${setting} reached`)
      res.setHeader('retry-after', String(retryAfterSeconds))
      return this.refuse(res, 'registrations_full', 429, {
        error: `too many registrations waiting for their call (${setting}); retry in ${retryAfterSeconds} s`,
        setting,
      })
    }
    this.options.logger.debug({ callId: uuid, replaced: stored.replaced }, 'call registered')
    json(res, stored.replaced ? 200 : 201, { call_id: uuid, expires_at: new Date(stored.expiresAt).toISOString() })
  }

  /** Answers a refusal and counts it; logging, where there is any, is the caller's. */
  private refuse(res: http.ServerResponse, reason: HttpRefusalReason, status: number, body: Record<string, unknown>): void {
    this.options.metrics?.requestRefused(reason)
    json(res, status, body)
  }

  /** A client's mistake: counted, and logged at debug only (the client reads the reason in the answer). */
  private badRequest(res: http.ServerResponse, error: string): void {
    this.options.logger.debug({ error: error.slice(0, 200) }, 'HTTP request refused: bad request')
    this.refuse(res, 'bad_request', 400, { error })
  }

  private methodNotAllowed(res: http.ServerResponse, allow: string): void {
    res.setHeader('allow', allow)
    this.refuse(res, 'method_not_allowed', 405, { error: `method not allowed; use ${allow}` })
  }

  private unregister(_req: http.IncomingMessage, res: http.ServerResponse, uuid: string): void {
    if (this.options.registrations.remove(uuid)) {
      res.writeHead(204).end()
      return
    }
    json(res, 404, { error: 'no registration for this UUID (never made, expired, or already used by its call)' })
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(res.req.method === 'HEAD' ? undefined : text)
}

/** The path of a request, cut to a length fit for a log line. */
function loggedPath(req: http.IncomingMessage): string {
  const path = (req.url ?? '').split('?')[0] ?? ''
  return path.length > LOGGED_PATH_CHARS ? `${path.slice(0, LOGGED_PATH_CHARS)}...` : path
}

/** decodeURIComponent, or undefined for a malformed escape (`%E0%A4%A`), which it throws on. */
function percentDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text)
  } catch {
    return undefined
  }
}

const TOO_LARGE = Symbol('too large')
const ABORTED = Symbol('aborted')

/**
 * The request body as text; TOO_LARGE for one above MAX_BODY_BYTES (the rest is read and dropped);
 * ABORTED when the client went away before sending it all, which is its business, not an error here.
 */
function readBody(req: http.IncomingMessage): Promise<string | typeof TOO_LARGE | typeof ABORTED> {
  return new Promise((resolve) => {
    const tooLarge = (): void => {
      req.resume()
      resolve(TOO_LARGE)
    }
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) return tooLarge()
    const chunks: Buffer[] = []
    let size = 0
    let over = false
    req.on('data', (chunk: Buffer) => {
      if (over) return
      size += chunk.length
      if (size > MAX_BODY_BYTES) {
        over = true
        tooLarge()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks).toString('utf8'))
    })
    req.on('error', () => resolve(ABORTED))
    req.on('close', () => {
      if (!req.complete) resolve(ABORTED)
    })
  })
}
