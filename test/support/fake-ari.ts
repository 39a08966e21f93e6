/**
 * A strict, small stand-in for Asterisk's ARI: a real HTTP server on 127.0.0.1 (port 0) answering
 * the REST routes the client uses, and a `ws` server on /ari/events. It checks what Asterisk checks
 * (basic auth on every request and upgrade) and more than Asterisk does: every request must be a
 * known route with its required query parameters and no unknown ones; a mistake is answered as
 * Asterisk would (400/404 with a JSON `message`) and also recorded in `violations`, so a test can
 * assert there were none.
 *
 * State is a small model: channels (add with `addChannel`), their variables, bridges; snoop and
 * externalMedia create channels, DELETE removes them. Path segments and query values are decoded
 * as Asterisk decodes them (each segment after splitting on `/`; `+` in a query value is a space).
 *
 *   const ari = await startFakeAri()
 *   ari.addChannel({ id: 'c1', name: 'PJSIP/alice-00000001' })
 *   const rest = new AriRest(ari.connection)
 *   ari.respond = (req) => (req.path === '/ari/channels' ? { status: 500, body: { message: 'boom' } } : undefined)
 *   ari.push({ type: 'ChannelDestroyed', channel: ... })   // to every connected events socket
 *   ari.push(ari.channelEvent('ChannelDtmfReceived', 'c1', { digit: '5' }))
 *
 * With `stasisEvents` on, the channels this app creates (snoop, externalMedia) behave as Asterisk's
 * do on the events socket: StasisStart once created (after the REST answer), StasisEnd then
 * ChannelDestroyed when DELETEd. A function picks the channels (one that never enters Stasis).
 *
 * What Asterisk does outside ARI is the user's to play: `onChannel` tells of each snoop or
 * externalMedia channel made (its query: an externalMedia's `data` and `external_host`, where
 * Asterisk would now connect its AudioSocket stream) and of each channel gone (where Asterisk would
 * close that stream); `hangup(id)` ends a channel as its party hanging up does, its snoops with it.
 *
 *   ari.onChannel = (change) => { if (change.type === 'created' && change.kind === 'externalMedia') connect(change.query) }
 *   ari.hangup('c1')   // StasisEnd + ChannelDestroyed of each snoop on c1, then c1's ChannelDestroyed
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'

export const FAKE_ARI_USERNAME = 'ari-user'
export const FAKE_ARI_PASSWORD = 'ari-s3cret/+:@pw'

export interface FakeAriRequest {
  method: string
  /** The request target as sent (percent-encoded), query included. */
  rawUrl: string
  /** The path, each segment decoded. */
  path: string
  /** Decoded path segments after /ari. */
  segments: string[]
  /** The query, decoded as Asterisk decodes it. */
  query: Record<string, string>
  headers: IncomingHttpHeaders
}

export interface FakeAriAnswer {
  status: number
  /** JSON-encoded unless a string (sent as it is). */
  body?: unknown
  headers?: Record<string, string>
}

/**
 * What `respond` can return: an answer, 'hang' (never answer), 'destroy' (reset the connection), or
 * undefined (the model answers); or a promise of one of these: the request is held until it settles
 * (a slow Asterisk: `new Promise((resolve) => (release = resolve))`, then `release(undefined)`).
 */
export type FakeAriOverride = FakeAriAnswer | 'hang' | 'destroy' | undefined

export interface FakeAriUpgrade {
  query: Record<string, string>
  headers: IncomingHttpHeaders
  /** The status it was answered with (101 when accepted). */
  status: number
}

/** A channel made by a request (after its answer and StasisStart went out), or one gone (DELETE or `hangup`). */
export type FakeAriChannelChange =
  | { type: 'created'; id: string; kind: 'snoop' | 'externalMedia'; query: Record<string, string> }
  | { type: 'destroyed'; id: string }

export interface FakeAriChannelInit {
  id: string
  name?: string
  state?: string
  caller?: { name: string; number: string }
  connected?: { name: string; number: string }
  /** As Asterisk writes it (`2026-12-05T10:00:00.000+0000`); default now. */
  creationtime?: string
  variables?: Record<string, string>
}

export interface FakeAri {
  /** http://127.0.0.1:<port> (no /ari). */
  readonly url: string
  readonly port: number
  /** `{ url, username, password }` as AriRest and AriEventStream take it. */
  readonly connection: { url: string; username: string; password: string }
  readonly requests: FakeAriRequest[]
  readonly upgrades: FakeAriUpgrade[]
  /** Requests that would be wrong against a real Asterisk (unknown route or parameter, missing one, api_key...). */
  readonly violations: string[]
  readonly channels: Map<string, Record<string, unknown>>
  readonly variables: Map<string, Map<string, string>>
  readonly bridges: Map<string, { id: string; technology: string; bridge_type: string; bridge_class: string; name: string; channels: string[] }>
  /** Consulted before the model for every authenticated REST request. */
  respond: ((req: FakeAriRequest) => FakeAriOverride | Promise<FakeAriOverride>) | undefined
  /** When set, every upgrade is answered this status (after the auth check would have passed). */
  refuseUpgradesWith: number | undefined
  /**
   * Channels created by snoop / externalMedia get StasisStart (after the answer), and StasisEnd +
   * ChannelDestroyed when DELETEd, as in Asterisk; a function decides per channel id. Default false.
   */
  stasisEvents: boolean | ((channelId: string) => boolean)
  /** Told of every channel a snoop or externalMedia request made, and of every channel gone, once its events are out. */
  onChannel: ((change: FakeAriChannelChange) => void) | undefined
  /** Events sockets open now. */
  readonly sockets: ReadonlySet<WebSocket>
  /** Pings received on the events sockets; events sent (each `push`, to however many sockets). */
  readonly stats: { pings: number; events: number }
  addChannel(init: FakeAriChannelInit): Record<string, unknown>
  /**
   * The channel's party hangs up, as Asterisk reports it: each snoop spying on it ends first
   * (StasisEnd if in Stasis, ChannelDestroyed), then the channel (the same); all leave the model
   * and their bridges. False if there is no such channel.
   */
  hangup(channelId: string, cause?: number): boolean
  /** Sends `event` (JSON-encoded unless a string or Buffer) to every open events socket. */
  push(event: unknown): void
  /** An event about a channel the model knows (or a bare `{ id }` one): `{ type, timestamp, channel, ...extra }`. */
  channelEvent(type: string, channelId: string, extra?: Record<string, unknown>): Record<string, unknown>
  /** Closes every events socket (with a close frame, or by destroying the TCP connection). */
  dropSockets(how?: 'close' | 'destroy'): void
  /** Resolves once `n` events sockets have been accepted in all (counting those closed since). */
  waitForUpgrades(n: number, timeoutMs?: number): Promise<void>
  /** Resolves with the requests once `n` have arrived. */
  waitForRequests(n: number, timeoutMs?: number): Promise<FakeAriRequest[]>
  close(): Promise<void>
}

/** The routes: method, path pattern (`*` = one id), required and optional query parameters. */
interface Route {
  method: string
  pattern: string[]
  required: string[]
  optional: string[]
}

const ROUTES: Route[] = [
  { method: 'GET', pattern: ['channels'], required: [], optional: [] },
  { method: 'GET', pattern: ['channels', '*'], required: [], optional: [] },
  { method: 'GET', pattern: ['channels', '*', 'variable'], required: ['variable'], optional: [] },
  { method: 'POST', pattern: ['channels', 'externalMedia'], required: ['app', 'external_host', 'format'], optional: ['channelId', 'encapsulation', 'transport', 'data', 'variables', 'connection_type', 'direction', 'transport_data'] },
  { method: 'POST', pattern: ['channels', '*', 'snoop'], required: ['app'], optional: ['spy', 'whisper', 'appArgs', 'snoopId'] },
  { method: 'DELETE', pattern: ['channels', '*'], required: [], optional: ['reason_code', 'reason'] },
  { method: 'GET', pattern: ['bridges'], required: [], optional: [] },
  { method: 'POST', pattern: ['bridges'], required: [], optional: ['type', 'bridgeId', 'name'] },
  { method: 'POST', pattern: ['bridges', '*', 'addChannel'], required: ['channel'], optional: ['role', 'absorbDTMF', 'mute', 'inhibitConnectedLineUpdates'] },
  { method: 'DELETE', pattern: ['bridges', '*'], required: [], optional: [] },
  { method: 'GET', pattern: ['asterisk', 'info'], required: [], optional: ['only'] },
  { method: 'PUT', pattern: ['applications', '*', 'eventFilter'], required: [], optional: [] },
]

function matchRoute(method: string, segments: string[]): { route: Route; ids: string[] } | undefined {
  for (const route of ROUTES) {
    if (route.method !== method || route.pattern.length !== segments.length) continue
    const ids: string[] = []
    let ok = true
    route.pattern.forEach((part, i) => {
      const seg = segments[i] as string
      if (part === '*') {
        // A literal route (externalMedia) wins over the wildcard, as in Asterisk.
        if (ROUTES.some((r) => r.method === method && r.pattern.length === segments.length && r.pattern[i] === seg)) ok = false
        ids.push(seg)
      } else if (part !== seg) ok = false
    })
    if (ok) return { route, ids }
  }
  return undefined
}

/** Asterisk's ast_uri_decode with ast_uri_http_legacy: `+` is a space, then %XX. */
function decodeQueryValue(text: string): string {
  return decodeURIComponent(text.replace(/\+/g, ' '))
}

function parseQuery(search: string): Record<string, string> {
  const out: Record<string, string> = {}
  if (search === '') return out
  for (const item of search.split('&')) {
    if (item === '') continue
    const eq = item.indexOf('=')
    const key = decodeQueryValue(eq < 0 ? item : item.slice(0, eq))
    out[key] = eq < 0 ? '' : decodeQueryValue(item.slice(eq + 1))
  }
  return out
}

function authorized(headers: IncomingHttpHeaders): boolean {
  const expected = `Basic ${Buffer.from(`${FAKE_ARI_USERNAME}:${FAKE_ARI_PASSWORD}`).toString('base64')}`
  return headers.authorization === expected
}

let channelSerial = 0

export interface FakeAriOptions {
  /** system.version in GET /asterisk/info. Default 22.10.1. */
  asteriskVersion?: string
  /** Answer pings on the events sockets (as Asterisk does). Default true; false plays a half-open link. */
  autoPong?: boolean
}

export async function startFakeAri(options: FakeAriOptions = {}): Promise<FakeAri> {
  const requests: FakeAriRequest[] = []
  const upgrades: FakeAriUpgrade[] = []
  const violations: string[] = []
  const channels = new Map<string, Record<string, unknown>>()
  const variables = new Map<string, Map<string, string>>()
  const bridges: FakeAri['bridges'] = new Map()
  const sockets = new Set<WebSocket>()
  const tcpSockets = new Set<Socket>()
  const notify = new Set<() => void>()
  let accepted = 0
  const stats = { pings: 0, events: 0 }

  const channelJson = (init: FakeAriChannelInit): Record<string, unknown> => ({
    id: init.id,
    name: init.name ?? `Local/${init.id}@test-${String(++channelSerial).padStart(8, '0')};1`,
    state: init.state ?? 'Up',
    protocol_id: '',
    caller: init.caller ?? { name: '', number: '' },
    connected: init.connected ?? { name: '', number: '' },
    accountcode: '',
    dialplan: { context: 'test', exten: 's', priority: 1, app_name: '', app_data: '' },
    creationtime: init.creationtime ?? new Date().toISOString().replace('Z', '+0000'),
    language: 'en',
  })

  const send = (res: ServerResponse, answer: FakeAriAnswer): void => {
    const body = answer.body === undefined ? '' : typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body)
    res.writeHead(answer.status, { ...(body === '' ? {} : { 'Content-Type': 'application/json' }), ...answer.headers })
    res.end(body)
  }
  const error = (status: number, message: string): FakeAriAnswer => ({ status, body: { message } })

  /** Channels in Stasis (stasisEvents), by id: the app they entered. */
  const inStasis = new Map<string, string>()
  /** Events to push once the current request is answered, and the channel changes to tell after them. */
  let afterAnswer: unknown[] = []
  let changesAfterAnswer: FakeAriChannelChange[] = []
  /** Snoop channels by the channel they spy on: they end with it (`hangup`). */
  const snoopsOf = new Map<string, Set<string>>()
  /**
   * Takes a channel out of the model; returns the events Asterisk sends for it: StasisEnd (if in
   * Stasis) and ChannelDestroyed; the latter for any channel when `always` (a hangup, seen by
   * subscribeAll), else only for one in Stasis (a DELETE, as modelled before).
   */
  const removeChannel = (id: string, cause: number, always: boolean): unknown[] => {
    const events: unknown[] = []
    const app = inStasis.get(id)
    if (app !== undefined) events.push({ ...channelEvent('StasisEnd', id), application: app })
    if (app !== undefined || always) events.push({ ...channelEvent('ChannelDestroyed', id), cause, cause_txt: cause === 16 ? 'Normal Clearing' : '' })
    inStasis.delete(id)
    channels.delete(id)
    variables.delete(id)
    snoopsOf.delete(id)
    for (const snoops of snoopsOf.values()) snoops.delete(id)
    for (const b of bridges.values()) b.channels = b.channels.filter((c) => c !== id)
    return events
  }
  const wantsStasis = (channelId: string): boolean => (typeof fake.stasisEvents === 'function' ? fake.stasisEvents(channelId) : fake.stasisEvents)
  const channelEvent = (type: string, channelId: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    type,
    timestamp: new Date().toISOString().replace('Z', '+0000'),
    channel: channels.get(channelId) ?? { id: channelId },
    ...extra,
  })
  const enterStasis = (channelId: string, app: string): void => {
    if (!wantsStasis(channelId)) return
    inStasis.set(channelId, app)
    afterAnswer.push(channelEvent('StasisStart', channelId, { application: app, args: [] }))
  }

  /** The model's answer to a request that passed the route check. */
  const model = (req: FakeAriRequest, ids: string[], route: Route): FakeAriAnswer => {
    const q = req.query
    const key = `${route.method} ${route.pattern.join('/')}`
    const id = ids[0] as string
    switch (key) {
      case 'GET channels':
        return { status: 200, body: [...channels.values()] }
      case 'GET channels/*':
        return channels.has(id) ? { status: 200, body: channels.get(id) } : error(404, 'Channel not found')
      case 'GET channels/*/variable': {
        if (!channels.has(id)) return error(404, 'Channel not found')
        const value = variables.get(id)?.get(q.variable as string)
        return value === undefined ? error(404, 'Provided variable was not found') : { status: 200, body: { value } }
      }
      case 'POST channels/*/snoop': {
        if (!channels.has(id)) return error(404, 'Channel not found')
        if (q.spy !== undefined && !['none', 'both', 'out', 'in'].includes(q.spy)) return error(400, 'Invalid direction specified for spy')
        const snoopId = q.snoopId ?? `${Date.now() / 1000}`
        const snoop = channelJson({ id: snoopId, name: `Snoop/${id}-${String(++channelSerial).padStart(8, '0')}` })
        channels.set(snoopId, snoop)
        enterStasis(snoopId, q.app as string)
        let snoops = snoopsOf.get(id)
        if (snoops === undefined) snoopsOf.set(id, (snoops = new Set()))
        snoops.add(snoopId)
        changesAfterAnswer.push({ type: 'created', id: snoopId, kind: 'snoop', query: { ...q } })
        return { status: 200, body: snoop }
      }
      case 'POST channels/externalMedia': {
        const channelId = q.channelId ?? `${Date.now() / 1000}`
        if (channels.has(channelId)) return error(409, 'Channel with given unique ID already exists')
        const media = channelJson({ id: channelId, name: `AudioSocket/${q.external_host}-${String(++channelSerial).padStart(8, '0')}` })
        channels.set(channelId, media)
        enterStasis(channelId, q.app as string)
        changesAfterAnswer.push({ type: 'created', id: channelId, kind: 'externalMedia', query: { ...q } })
        return { status: 200, body: media }
      }
      case 'DELETE channels/*': {
        if (!channels.has(id)) return error(404, 'Channel not found')
        afterAnswer.push(...removeChannel(id, 16, false))
        changesAfterAnswer.push({ type: 'destroyed', id })
        return { status: 204 }
      }
      case 'GET bridges':
        return { status: 200, body: [...bridges.values()] }
      case 'POST bridges': {
        const bridgeId = q.bridgeId ?? `bridge-${++channelSerial}`
        const bridge = { id: bridgeId, technology: 'simple_bridge', bridge_type: q.type ?? 'mixing', bridge_class: 'stasis', name: q.name ?? '', channels: [] }
        bridges.set(bridgeId, bridge)
        return { status: 200, body: bridge }
      }
      case 'POST bridges/*/addChannel': {
        const bridge = bridges.get(id)
        if (bridge === undefined) return error(404, 'Bridge not found')
        const wanted = (q.channel as string).split(',')
        if (wanted.some((c) => !channels.has(c))) return error(400, 'Channel not found')
        bridge.channels.push(...wanted)
        return { status: 204 }
      }
      case 'DELETE bridges/*':
        return bridges.delete(id) ? { status: 204 } : error(404, 'Bridge not found')
      case 'PUT applications/*/eventFilter':
        // Asterisk answers with the application; the filter itself (the JSON body) is not modelled.
        return { status: 200, body: { name: id, channel_ids: [], bridge_ids: [], endpoint_ids: [], device_names: [], events_allowed: [], events_disallowed: [] } }
      case 'GET asterisk/info':
        return {
          status: 200,
          body: {
            build: { os: 'Linux', kernel: '6.1', machine: 'x86_64', options: '', date: '2026-12-05', user: 'test' },
            system: { version: options.asteriskVersion ?? '22.10.1', entity_id: '02:42:ac:11:00:02' },
            config: { name: '', default_language: 'en', setid: { user: '', group: '' } },
            status: { startup_time: '2026-12-05T10:00:00.000+0000', last_reload_time: '2026-12-05T10:00:00.000+0000' },
          },
        }
      default:
        return error(500, `fake ARI: no model for ${key}`)
    }
  }

  const fake: FakeAri = {
    url: '',
    port: 0,
    connection: { url: '', username: FAKE_ARI_USERNAME, password: FAKE_ARI_PASSWORD },
    requests,
    upgrades,
    violations,
    channels,
    variables,
    bridges,
    respond: undefined,
    refuseUpgradesWith: undefined,
    stasisEvents: false,
    onChannel: undefined,
    sockets,
    stats,
    addChannel(init) {
      const channel = channelJson(init)
      channels.set(init.id, channel)
      variables.set(init.id, new Map(Object.entries(init.variables ?? {})))
      return channel
    },
    hangup(channelId, cause = 16) {
      if (!channels.has(channelId)) return false
      const gone = [...(snoopsOf.get(channelId) ?? []), channelId]
      for (const id of gone) {
        for (const event of removeChannel(id, cause, true)) fake.push(event)
        fake.onChannel?.({ type: 'destroyed', id })
      }
      return true
    },
    push(event) {
      stats.events++
      const data = typeof event === 'string' || Buffer.isBuffer(event) ? event : JSON.stringify(event)
      for (const ws of sockets) ws.send(data)
    },
    channelEvent,
    dropSockets(how = 'close') {
      for (const ws of sockets) {
        if (how === 'close') ws.close(1001, 'going away')
        else ws.terminate()
      }
    },
    waitForUpgrades(n, timeoutMs = 5000) {
      return waitFor(() => accepted >= n, `${n} events socket(s) accepted (${accepted} so far)`, timeoutMs)
    },
    async waitForRequests(n, timeoutMs = 5000) {
      await waitFor(() => requests.length >= n, `${n} request(s) (${requests.length} so far)`, timeoutMs)
      return requests
    },
    close: async () => undefined,
  }

  const waitFor = (done: () => boolean, what: string, timeoutMs: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!done()) return
        notify.delete(check)
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        notify.delete(check)
        reject(new Error(`fake ARI: timed out waiting for ${what}`))
      }, timeoutMs)
      notify.add(check)
      check()
    })
  const changed = (): void => {
    for (const check of [...notify]) check()
  }

  const parse = (req: IncomingMessage): FakeAriRequest => {
    const rawUrl = req.url ?? '/'
    const q = rawUrl.indexOf('?')
    const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q)
    const rawSegments = rawPath.split('/').filter((s) => s !== '')
    const decoded = rawSegments.map((s) => decodeURIComponent(s))
    return {
      method: req.method ?? 'GET',
      rawUrl,
      path: `/${decoded.join('/')}`,
      segments: decoded[0] === 'ari' ? decoded.slice(1) : decoded,
      query: parseQuery(q < 0 ? '' : rawUrl.slice(q + 1)),
      headers: req.headers,
    }
  }

  const server = http.createServer((req, res) => {
    const parsed = parse(req)
    req.resume()
    req.on('end', () => {
      requests.push(parsed)
      changed()
      if ('api_key' in parsed.query) violations.push(`${parsed.method} ${parsed.path}: api_key in the query (the password must travel in the Authorization header)`)
      if (!authorized(req.headers)) {
        send(res, { status: 401, body: { message: 'Authentication required' }, headers: { 'WWW-Authenticate': 'Basic realm="Asterisk REST Interface"' } })
        return
      }
      const answer = fake.respond?.(parsed)
      if (answer instanceof Promise) void answer.then((override) => reply(override), () => req.socket.destroy())
      else reply(answer)
    })
    const reply = (override: FakeAriOverride): void => {
      if (override === 'hang') return
      if (override === 'destroy') {
        req.socket.destroy()
        return
      }
      if (override !== undefined) {
        send(res, override)
        return
      }
      if (!parsed.path.startsWith('/ari/')) {
        violations.push(`${parsed.method} ${parsed.rawUrl}: not under /ari`)
        send(res, { status: 404, body: 'Not Found' })
        return
      }
      const match = matchRoute(parsed.method, parsed.segments)
      if (match === undefined) {
        violations.push(`${parsed.method} ${parsed.path}: no such ARI route`)
        send(res, error(404, 'Resource not found'))
        return
      }
      const missing = match.route.required.filter((name) => !(name in parsed.query))
      const unknown = Object.keys(parsed.query).filter((name) => !match.route.required.includes(name) && !match.route.optional.includes(name))
      if (missing.length > 0 || unknown.length > 0) {
        violations.push(`${parsed.method} ${parsed.path}: ${missing.length > 0 ? `missing ${missing.join(', ')}` : ''}${unknown.length > 0 ? ` unknown ${unknown.join(', ')}` : ''}`.trim())
        send(res, error(400, missing.length > 0 ? `${missing[0]}: Missing required field` : `unknown parameter ${unknown[0]}`))
        return
      }
      afterAnswer = []
      changesAfterAnswer = []
      send(res, model(parsed, match.ids, match.route))
      for (const event of afterAnswer.splice(0)) fake.push(event)
      for (const change of changesAfterAnswer.splice(0)) fake.onChannel?.(change)
    }
  })
  server.on('connection', (socket) => {
    tcpSockets.add(socket)
    socket.on('close', () => tcpSockets.delete(socket))
  })

  const wss = new WebSocketServer({ noServer: true, autoPong: options.autoPong ?? true })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const parsed = parse(req)
    const refuse = (status: number, message: string): void => {
      upgrades.push({ query: parsed.query, headers: req.headers, status })
      changed()
      const body = JSON.stringify({ message })
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    }
    if ('api_key' in parsed.query) violations.push('events upgrade: api_key in the query (the password must travel in the Authorization header)')
    if (!authorized(req.headers)) return refuse(401, 'Authentication required')
    if (parsed.path !== '/ari/events') {
      violations.push(`upgrade to ${parsed.path}: not /ari/events`)
      return refuse(404, 'Not Found')
    }
    if (!parsed.query.app) {
      violations.push('events upgrade without app=')
      return refuse(400, 'app: Missing required field')
    }
    const unknown = Object.keys(parsed.query).filter((name) => name !== 'app' && name !== 'subscribeAll')
    if (unknown.length > 0) violations.push(`events upgrade: unknown parameter(s) ${unknown.join(', ')}`)
    if (fake.refuseUpgradesWith !== undefined) return refuse(fake.refuseUpgradesWith, 'refused by the test')
    wss.handleUpgrade(req, socket, head, (ws) => {
      upgrades.push({ query: parsed.query, headers: req.headers, status: 101 })
      accepted++
      sockets.add(ws)
      ws.on('ping', () => {
        stats.pings++
        changed()
      })
      ws.on('close', () => {
        sockets.delete(ws)
        changed()
      })
      changed()
    })
  })

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const url = `http://127.0.0.1:${port}`
  Object.assign(fake, { url, port, connection: { url, username: FAKE_ARI_USERNAME, password: FAKE_ARI_PASSWORD } })
  fake.close = async () => {
    for (const ws of sockets) ws.terminate()
    wss.close()
    for (const socket of tcpSockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return fake
}
