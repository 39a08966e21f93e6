/**
 * The REST half of the ARI client: one method per Asterisk request this server makes (read a
 * channel or a variable, list channels and bridges, snoop, externalMedia, a mixing bridge, hang up),
 * over node:http or node:https by the URL's scheme.
 *
 * Invariants:
 * - Every request is bounded: a deadline on the whole exchange (`requestTimeoutMs`, default 5 s;
 *   past it ERR_ARI_UNREACHABLE), a body read to at most MAX_BODY_BYTES (past it
 *   ERR_ARI_BAD_RESPONSE), at most MAX_SOCKETS connections to Asterisk (requests beyond wait in the
 *   agent's queue, inside their deadline).
 * - Every failure is an AriError (an AppError): an answered error status is ERR_ARI_REQUEST with the
 *   status and Asterisk's `message`; no answer is ERR_ARI_UNREACHABLE; an answer that is not the
 *   JSON expected is ERR_ARI_BAD_RESPONSE. A 404 is not a failure where the method says what it
 *   means (undefined, false): a channel that is gone is an everyday fact, not an error.
 * - Nothing is logged here: failures are returned to the caller, which owns them.
 * - Path segments (channel and bridge ids) and query values are percent-encoded with
 *   encodeURIComponent: Asterisk decodes each path segment after splitting on `/`, and decodes `+`
 *   in a query value as a space, so `/`, `;`, `@` and `+` must travel escaped.
 *
 * Keep-alive: Asterisk closes an idle HTTP connection after http.conf's session_keep_alive (15 s by
 * default); free sockets are closed here after FREE_SOCKET_TIMEOUT_MS, before that. A request that
 * still meets a connection Asterisk closed (ECONNRESET on a reused socket, before any answer: the
 * request was never read) is sent once more on a new connection, as Node's documentation advises.
 */
import http from 'node:http'
import https from 'node:https'
import { AppError, isErrnoException } from '../shared/errors.js'
import { systemClock, type Clock } from '../shared/clock.js'
import { ARI_AUTH_HINT, AriError } from './ari-error.js'
import { ariEndpoint, type AriConnection, type AriEndpoint } from './ari-connection.js'
import type { AriMetrics } from './ari-metrics.js'
import type { AriBridge, AriChannel } from './ari-types.js'

export type { AriConnection } from './ari-connection.js'
export type { AriMetrics, AriTapMetrics } from './ari-metrics.js'

/** Default bound on one request, answer included. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000
/** Connections to Asterisk at most; ARI requests are small and quick, so a few carry a busy PBX. */
export const MAX_SOCKETS = 16
/** Largest answer read (a channel list of a few thousand channels is well below). */
export const MAX_BODY_BYTES = 4 * 1024 * 1024
/** Idle keep-alive connections are closed after this; Asterisk's own default is 15 s. */
const FREE_SOCKET_TIMEOUT_MS = 10_000
/** How much of a non-JSON error body goes into an error message. */
const BODY_EXCERPT_CHARS = 200

export interface AriRestOptions {
  /** Bound on one request from its start to the end of its answer, in ms. Default 5000. */
  requestTimeoutMs?: number
  metrics?: AriMetrics
  /** For the request deadline. Default systemClock. */
  clock?: Clock
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'
type Query = Record<string, string | undefined>

interface Answer {
  status: number
  body: Buffer
}

export class AriRest {
  private readonly endpoint: AriEndpoint
  private readonly agent: http.Agent
  private readonly transport: typeof http | typeof https
  private readonly requestTimeoutMs: number
  private readonly metrics: AriMetrics | undefined
  private readonly clock: Clock
  private closed = false

  constructor(connection: AriConnection, options: AriRestOptions = {}) {
    this.endpoint = ariEndpoint(connection)
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
    this.metrics = options.metrics
    this.clock = options.clock ?? systemClock
    this.transport = this.endpoint.protocol === 'https:' ? https : http
    const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: MAX_SOCKETS, timeout: FREE_SOCKET_TIMEOUT_MS, scheduling: 'lifo' as const }
    this.agent = this.endpoint.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions)
  }

  /** The ARI base URL as it may be shown (no credentials). */
  get shownUrl(): string {
    return this.endpoint.shown
  }

  /** GET /channels/{id}; undefined when there is no such channel (404). */
  async getChannel(channelId: string): Promise<AriChannel | undefined> {
    return this.call(async () => {
      const answer = await this.send('GET', ['channels', channelId])
      if (answer.status === 404) return undefined
      return this.json(answer, 'GET', ['channels', channelId], isChannel, 'a channel')
    })
  }

  /** GET /channels: every channel on the PBX (Stasis or not). */
  async listChannels(): Promise<AriChannel[]> {
    return this.call(async () => this.json(await this.send('GET', ['channels']), 'GET', ['channels'], arrayOf(isChannel), 'a list of channels'))
  }

  /** GET /bridges */
  async listBridges(): Promise<AriBridge[]> {
    return this.call(async () => this.json(await this.send('GET', ['bridges']), 'GET', ['bridges'], arrayOf(isBridge), 'a list of bridges'))
  }

  /** GET /channels/{id}/variable?variable=NAME; undefined when the channel or the variable does not exist (404). */
  async getChannelVariable(channelId: string, name: string): Promise<string | undefined> {
    return this.call(async () => {
      const path = ['channels', channelId, 'variable']
      const answer = await this.send('GET', path, { variable: name })
      if (answer.status === 404) return undefined
      return this.json(answer, 'GET', path, isVariable, 'a variable ({"value": ...})').value
    })
  }

  /**
   * POST /channels/{id}/snoop: a channel in Stasis application `app` that hears `spy` of `channelId`
   * (`in`: what that channel's party says; `out`: what it hears). A 200 does not prove it lives:
   * with no events socket connected for `app` it dies at once; wait for its StasisStart.
   */
  async snoop(channelId: string, options: { spy: 'in' | 'out' | 'both'; app: string; snoopId: string; appArgs?: string }): Promise<AriChannel> {
    return this.call(async () => {
      const path = ['channels', channelId, 'snoop']
      const query = { spy: options.spy, app: options.app, snoopId: options.snoopId, appArgs: options.appArgs }
      return this.json(await this.send('POST', path, query), 'POST', path, isChannel, 'a channel')
    })
  }

  /**
   * POST /channels/externalMedia with encapsulation=audiosocket, transport=tcp: Asterisk connects to
   * `externalHost` (host:port) and streams the channel's audio there, `data` (a UUID) as the UUID frame.
   */
  async externalMedia(options: { channelId: string; app: string; externalHost: string; format: string; data: string }): Promise<AriChannel> {
    return this.call(async () => {
      const path = ['channels', 'externalMedia']
      const query = {
        app: options.app,
        channelId: options.channelId,
        external_host: options.externalHost,
        encapsulation: 'audiosocket',
        transport: 'tcp',
        format: options.format,
        data: options.data,
      }
      return this.json(await this.send('POST', path, query), 'POST', path, isChannel, 'a channel')
    })
  }

  /** POST /bridges?type=mixing&bridgeId=...: a bridge with the id chosen here. */
  async createBridge(options: { bridgeId: string; type: 'mixing'; name?: string }): Promise<AriBridge> {
    return this.call(async () => {
      const query = { type: options.type, bridgeId: options.bridgeId, name: options.name }
      return this.json(await this.send('POST', ['bridges'], query), 'POST', ['bridges'], isBridge, 'a bridge')
    })
  }

  /** POST /bridges/{id}/addChannel?channel=a,b */
  async addChannels(bridgeId: string, channelIds: string[]): Promise<void> {
    return this.call(async () => {
      const path = ['bridges', bridgeId, 'addChannel']
      this.expectSuccess(await this.send('POST', path, { channel: channelIds.join(',') }), 'POST', path)
    })
  }

  /** DELETE /channels/{id}; false when it was already gone (404). */
  async hangup(channelId: string): Promise<boolean> {
    return this.call(async () => this.deleted(await this.send('DELETE', ['channels', channelId]), ['channels', channelId]))
  }

  /** DELETE /bridges/{id}; false when it was already gone (404). */
  async destroyBridge(bridgeId: string): Promise<boolean> {
    return this.call(async () => this.deleted(await this.send('DELETE', ['bridges', bridgeId]), ['bridges', bridgeId]))
  }

  /**
   * PUT /applications/{app}/eventFilter: the app's events socket carries only these event types.
   * With subscribeAll the socket otherwise carries every dialplan step of every channel on the
   * PBX, each one parsed here for nothing.
   */
  async setEventFilter(app: string, allowedTypes: readonly string[]): Promise<void> {
    return this.call(async () => {
      const path = ['applications', app, 'eventFilter']
      this.expectSuccess(await this.send('PUT', path, undefined, { allowed: allowedTypes.map((type) => ({ type })) }), 'PUT', path)
    })
  }

  /** GET /asterisk/info: build, system (version), config, status. */
  async asteriskInfo(): Promise<Record<string, unknown>> {
    return this.call(async () => this.json(await this.send('GET', ['asterisk', 'info']), 'GET', ['asterisk', 'info'], isRecord, 'a JSON object'))
  }

  /** Destroys the keep-alive agent's sockets; requests made afterwards fail (ERR_ARI_UNREACHABLE). Idempotent. */
  close(): void {
    this.closed = true
    this.agent.destroy()
  }

  // -------------------------------------------------------------------------------------------

  /** Runs one method's exchange and counts its outcome. */
  private async call<T>(exchange: () => Promise<T>): Promise<T> {
    try {
      const result = await exchange()
      this.metrics?.requestFinished('ok')
      return result
    } catch (err) {
      this.metrics?.requestFinished('error')
      throw err instanceof AppError ? err : new AriError('ERR_ARI_BAD_RESPONSE', `ARI request failed: ${(err as Error).message}`, {}, { cause: err })
    }
  }

  private deleted(answer: Answer, path: string[]): boolean {
    if (answer.status === 404) return false
    this.expectSuccess(answer, 'DELETE', path)
    return true
  }

  private expectSuccess(answer: Answer, method: Method, path: string[]): void {
    if (answer.status < 200 || answer.status > 299) throw this.statusError(answer, method, path)
  }

  /** A 2xx answer's body as `what`, checked by `is`; any other status is ERR_ARI_REQUEST. */
  private json<T>(answer: Answer, method: Method, path: string[], is: (value: unknown) => value is T, what: string): T {
    this.expectSuccess(answer, method, path)
    let value: unknown
    try {
      value = JSON.parse(answer.body.toString('utf8'))
    } catch (err) {
      throw new AriError('ERR_ARI_BAD_RESPONSE', `ARI ${method} ${this.shownPath(path)} answered ${answer.status} with a body that is not JSON`, { status: answer.status }, { cause: err })
    }
    if (!is(value)) throw new AriError('ERR_ARI_BAD_RESPONSE', `ARI ${method} ${this.shownPath(path)} answered ${answer.status} with JSON that is not ${what}`, { status: answer.status })
    return value
  }

  private statusError(answer: Answer, method: Method, path: string[]): AriError {
    const text = answer.body.toString('utf8')
    let ariMessage: string | undefined
    try {
      const parsed: unknown = JSON.parse(text)
      if (isRecord(parsed) && typeof parsed.message === 'string') ariMessage = parsed.message
    } catch {
      // Not JSON (a proxy's page, an empty body): an excerpt is shown instead.
    }
    const said = ariMessage ?? (text.trim() === '' ? '(no body)' : text.trim().slice(0, BODY_EXCERPT_CHARS))
    const hint = answer.status === 401 ? ` (${ARI_AUTH_HINT})` : ''
    return new AriError('ERR_ARI_REQUEST', `ARI ${method} ${this.shownPath(path)} answered ${answer.status}: ${said}${hint}`, {
      status: answer.status,
      ...(ariMessage === undefined ? {} : { ariMessage }),
    })
  }

  private shownPath(path: string[]): string {
    return `${this.endpoint.basePath}/${path.join('/')}`
  }

  private send(method: Method, path: string[], query?: Query, body?: unknown): Promise<Answer> {
    if (this.closed) return Promise.reject(new AriError('ERR_ARI_UNREACHABLE', 'the ARI client is closed'))
    const target = `${this.endpoint.basePath}/${path.map(encodeURIComponent).join('/')}${queryString(query)}`
    return this.exchange(method, path, target, true, body === undefined ? undefined : Buffer.from(JSON.stringify(body)))
  }

  private exchange(method: Method, path: string[], target: string, mayRetry: boolean, body?: Buffer): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      const shown = `ARI ${method} ${this.shownPath(path)}`
      let settled = false
      let answered = false
      const finish = (outcome: { answer: Answer } | { error: AppError }): void => {
        if (settled) return
        settled = true
        this.clock.clearTimeout(deadline)
        if ('answer' in outcome) resolve(outcome.answer)
        else reject(outcome.error)
      }
      const req = this.transport.request({
        protocol: this.endpoint.protocol,
        hostname: this.endpoint.hostname,
        port: this.endpoint.port,
        method,
        path: target,
        agent: this.agent,
        headers:
          body === undefined
            ? { Authorization: this.endpoint.authorization, Accept: 'application/json' }
            : { Authorization: this.endpoint.authorization, Accept: 'application/json', 'Content-Type': 'application/json', 'Content-Length': body.length },
      })
      const deadline = this.clock.setTimeout(() => {
        req.destroy()
        finish({ error: new AriError('ERR_ARI_UNREACHABLE', `${shown}: no answer from ${this.endpoint.shown} within ${this.requestTimeoutMs} ms`) })
      }, this.requestTimeoutMs)
      req.on('error', (err) => {
        if (settled) return
        if (mayRetry && !answered && req.reusedSocket && isErrnoException(err) && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
          // A keep-alive connection Asterisk had closed: the request was never read.
          settled = true
          this.clock.clearTimeout(deadline)
          this.exchange(method, path, target, false, body).then(resolve, reject)
          return
        }
        finish({ error: new AriError('ERR_ARI_UNREACHABLE', `${shown}: ${this.endpoint.shown} is unreachable: ${err.message}`, {}, { cause: err }) })
      })
      req.on('response', (res) => {
        answered = true
        const chunks: Buffer[] = []
        let bytes = 0
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length
          if (bytes > MAX_BODY_BYTES) {
            req.destroy()
            finish({ error: new AriError('ERR_ARI_BAD_RESPONSE', `${shown}: the answer is larger than ${MAX_BODY_BYTES} bytes`, { status: res.statusCode ?? 0 }) })
            return
          }
          chunks.push(chunk)
        })
        res.on('end', () => finish({ answer: { status: res.statusCode ?? 0, body: Buffer.concat(chunks, bytes) } }))
        res.on('error', (err) => finish({ error: new AriError('ERR_ARI_UNREACHABLE', `${shown}: the answer was cut off: ${err.message}`, {}, { cause: err }) }))
      })
      req.end(body)
    })
  }
}

/** `?a=1&b=x%2Fy` from the defined values, each key and value percent-encoded; '' when none. */
function queryString(query: Query | undefined): string {
  if (query === undefined) return ''
  const items = Object.entries(query)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`)
  return items.length === 0 ? '' : `?${items.join('&')}`
}

// Shape checks: as much as the callers rely on (an id to name it by), not the whole model.

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isChannel(value: unknown): value is AriChannel {
  return isRecord(value) && typeof value.id === 'string' && typeof value.name === 'string'
}

function isBridge(value: unknown): value is AriBridge {
  return isRecord(value) && typeof value.id === 'string' && Array.isArray(value.channels)
}

function isVariable(value: unknown): value is { value: string } {
  return isRecord(value) && typeof value.value === 'string'
}

function arrayOf<T>(is: (value: unknown) => value is T): (value: unknown) => value is T[] {
  return (value: unknown): value is T[] => Array.isArray(value) && value.every(is)
}
