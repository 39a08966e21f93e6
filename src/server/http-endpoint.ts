/**
 * The operations endpoint (HTTP_HOST:HTTP_PORT), plain node:http:
 *
 *   GET  /healthz         200 while the process runs (liveness)
 *   GET  /readyz          200 while new calls are accepted; 503 while draining or while Soniox
 *                         refuses the account (401/402): a load balancer sends calls elsewhere
 *   GET  /metrics         Prometheus text format
 *   POST /calls/{uuid}    pre-register a call (bearer HTTP_TOKEN; body: see registrations.ts)
 *   DELETE /calls/{uuid}  withdraw a registration
 *
 * It stays up while the server drains, so the load balancer sees the 503 and the metrics stay
 * readable until the process exits.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from '../logger.js'
import { PROMETHEUS_CONTENT_TYPE } from './metrics.js'
import { canonicalUuid, parseRegistration, type RegistrationStore } from './registrations.js'

/** Registration bodies are small JSON objects; anything larger is refused unread. */
export const MAX_BODY_BYTES = 64 * 1024

export interface NotReady {
  /** Stable token: `starting`, `draining`, `soniox_account`. */
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
  registrations: RegistrationStore
  /** Bearer token for /calls; null disables registration (403). */
  token: string | null
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, uuid: string) => void | Promise<void>

export class HttpEndpoint {
  private readonly server: http.Server
  private readonly tokenDigest: Buffer | undefined

  constructor(private readonly options: HttpEndpointOptions) {
    this.tokenDigest = options.token === null ? undefined : sha256(options.token)
    this.server = http.createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        options.logger.error({ err, method: req.method, url: req.url }, 'HTTP endpoint bug')
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
        if (!read) return methodNotAllowed(res, 'GET, HEAD')
        return json(res, 200, { status: 'ok' })
      case '/readyz': {
        if (!read) return methodNotAllowed(res, 'GET, HEAD')
        const notReady = this.options.notReady()
        if (notReady !== undefined) return json(res, 503, { status: 'not_ready', reason: notReady.reason, ...notReady.detail })
        return json(res, 200, { status: 'ready', active_calls: this.options.activeCalls() })
      }
      case '/metrics':
        if (!read) return methodNotAllowed(res, 'GET, HEAD')
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'cache-control': 'no-store' })
        res.end(method === 'HEAD' ? undefined : this.options.renderMetrics())
        return
    }
    const m = /^\/calls\/([^/]+)$/.exec(path)
    if (m === null) return json(res, 404, { error: 'not found' })
    const handler: Handler | undefined = method === 'POST' ? this.register : method === 'DELETE' ? this.unregister : undefined
    if (handler === undefined) return methodNotAllowed(res, 'POST, DELETE')
    if (!this.authorize(req, res)) return
    const uuid = canonicalUuid(decodeURIComponent(m[1] ?? ''))
    if (uuid === undefined) return json(res, 400, { error: 'the path must be /calls/<uuid>, a UUID in its 36-character form' })
    await handler.call(this, req, res, uuid)
  }

  private authorize(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (this.tokenDigest === undefined) {
      json(res, 403, { error: 'call registration is disabled: set HTTP_TOKEN' })
      return false
    }
    const match = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '')
    // Compare digests: equal lengths for timingSafeEqual, and no timing hint about the token's length.
    if (match === null || !timingSafeEqual(sha256(match[1] ?? ''), this.tokenDigest)) {
      this.options.logger.warn({ remote: req.socket.remoteAddress, path: req.url }, 'HTTP request refused: missing or wrong bearer token')
      res.setHeader('www-authenticate', 'Bearer')
      json(res, 401, { error: 'a valid "Authorization: Bearer <HTTP_TOKEN>" header is required' })
      return false
    }
    return true
  }

  private async register(req: http.IncomingMessage, res: http.ServerResponse, uuid: string): Promise<void> {
    const text = await readBody(req, res)
    if (text === undefined) return
    let body: unknown = {}
    if (text.trim() !== '') {
      try {
        body = JSON.parse(text)
      } catch {
        return json(res, 400, { error: 'the body must be JSON' })
      }
    }
    const parsed = parseRegistration(body)
    if ('problems' in parsed) return json(res, 400, { error: parsed.problems.join('; ') })
    const notReady = this.options.notReady()
    if (notReady?.reason === 'draining') return json(res, 503, { error: 'the server is draining and takes no new calls' })
    const stored = this.options.registrations.register(uuid, parsed.options)
    if (stored === undefined) return json(res, 503, { error: 'too many registrations waiting for their call' })
    this.options.logger.debug({ callId: uuid, replaced: stored.replaced }, 'call registered')
    json(res, stored.replaced ? 200 : 201, { call_id: uuid, expires_at: new Date(stored.expiresAt).toISOString() })
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

function methodNotAllowed(res: http.ServerResponse, allow: string): void {
  res.setHeader('allow', allow)
  json(res, 405, { error: `method not allowed; use ${allow}` })
}

/** The request body as text, or undefined after answering 413 for one above MAX_BODY_BYTES. */
function readBody(req: http.IncomingMessage, res: http.ServerResponse): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const tooLarge = (): void => {
      res.setHeader('connection', 'close')
      json(res, 413, { error: `the body is larger than ${MAX_BODY_BYTES} bytes` })
      req.resume()
      resolve(undefined)
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
    req.on('error', reject)
  })
}
