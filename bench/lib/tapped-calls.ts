/**
 * Asterisk's part in the conversation load, inside the load generator's process: bridged calls in
 * the fake ARI (test/support/fake-ari.ts), each tapped through the server's `POST /conversations`
 * as a dialplan's CURL() would (form body, a connection per request), an AudioSocket stream opened
 * for every externalMedia channel the server has ARI create (its `data` is the leg's UUID, its
 * `external_host` where to connect), and the call hung up once both legs have played their audio.
 *
 * Ending as Asterisk does (src/ari/channel-tap.ts): the party hangs up, so the call's channels and
 * their snoops end (StasisEnd, ChannelDestroyed); the server then DELETEs each externalMedia channel,
 * and only then does that leg's stream close (Asterisk keeps it open until its channel goes).
 */
import http from 'node:http'
import { parseHostPort } from '../../src/cli/cli-support.js'
import type { CallReplayResult } from '../../src/tools/index.js'
import type { FakeAri, FakeAriChannelChange } from '../../test/support/fake-ari.js'

/** What Asterisk sends a channel's CHANNEL(audionativeformat) as for an 8 kHz call: the server then asks for slin. */
const NATIVE_FORMAT = 'ulaw'

/** One leg's stream, as the load generator plays it. */
export interface LegStream {
  /** Resolves after the leg's last audio write (or when the stream closed before it). */
  audioDone: Promise<void>
  /** Resolves with the replay's result once the stream has closed. */
  closed: Promise<CallReplayResult>
}

export interface TappedCallsOptions {
  ari: FakeAri
  /** The server's HTTP endpoint, http://host:port. */
  httpUrl: string
  /** Its HTTP_TOKEN. */
  token: string
  /** Opens a leg's stream to host:port with the leg's UUID, kept open until `hungUp` settles. */
  openStream(leg: { uuid: string; host: string; port: number; hungUp: Promise<void> }): LegStream
}

export interface TappedCallResult {
  ok: boolean
  failure: string | undefined
  /** POST /conversations to its 201 (the tap fully set up), ms. */
  setupMs: number | undefined
}

/** What the fake ARI saw since a mark: requests (by route too) and events pushed; and every violation since it started. */
export interface AriTraffic {
  requests: number
  /** "POST /channels/{id}/snoop" -> count: ids replaced, so routes add up across calls. */
  byRoute: Record<string, number>
  events: number
  violations: string[]
}

/** Where the fake ARI's counts stand now, to count traffic from (`ariTraffic`). */
export function ariMark(ari: FakeAri): { requests: number; events: number } {
  return { requests: ari.requests.length, events: ari.stats.events }
}

export function ariTraffic(ari: FakeAri, since: { requests: number; events: number }): AriTraffic {
  const byRoute: Record<string, number> = {}
  for (const request of ari.requests.slice(since.requests)) {
    const route = routeOf(request.method, request.segments)
    byRoute[route] = (byRoute[route] ?? 0) + 1
  }
  return { requests: ari.requests.length - since.requests, byRoute, events: ari.stats.events - since.events, violations: [...ari.violations] }
}

/**
 * A request's route with its ids replaced by `{id}` (the path segments after /ari that are not
 * literal route words), so that the same route of different calls counts as one.
 */
export function routeOf(method: string, segments: readonly string[]): string {
  const words = new Set(['channels', 'bridges', 'externalMedia', 'snoop', 'variable', 'addChannel', 'asterisk', 'info', 'applications', 'eventFilter'])
  return `${method} /${segments.map((s) => (words.has(s) ? s : '{id}')).join('/')}`
}

/** One request on a connection of its own, as a dialplan's CURL() makes it. */
function request(method: 'GET' | 'POST', url: URL, headers: Record<string, string> = {}, body = ''): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * Resolves once the server's /readyz says its ARI events socket is connected (taps are refused
 * before it is): the load starts then, as a PBX's calls are only tapped by a ready server.
 */
export async function serverReadyToTap(httpUrl: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const answer = await request('GET', new URL('/readyz', httpUrl)).catch(() => undefined)
    const body = answer?.status === 200 ? (JSON.parse(answer.body) as { ari?: { events?: string } }) : undefined
    if (body?.ari?.events === 'connected') return
    if (Date.now() > deadline) throw new Error(`the server was not ready with ARI connected within ${timeoutMs} ms (last answer: ${answer?.status ?? 'none'} ${answer?.body.slice(0, 200) ?? ''})`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

interface Deferred<T> {
  promise: Promise<T>
  resolve(value: T): void
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

export class TappedCalls {
  /** Each leg's stream by its UUID, as soon as its externalMedia channel exists (or a wait for it). */
  private readonly legs = new Map<string, Deferred<LegStream>>()
  /** Each externalMedia channel's end: its stream closes then. */
  private readonly mediaGone = new Map<string, Deferred<void>>()
  private readonly streams: Array<Promise<CallReplayResult>> = []

  constructor(private readonly options: TappedCallsOptions) {
    options.ari.stasisEvents = true
    options.ari.onChannel = (change) => this.onChannel(change)
  }

  /** Every leg stream started so far, settled. */
  streamResults(): Promise<CallReplayResult[]> {
    return Promise.all(this.streams)
  }

  /**
   * Resolves once the fake ARI has had no request for `quietMs` (at most `timeoutMs`): a leg's
   * stream closes at the DELETE of its externalMedia channel, and the server's DELETEs of the
   * leg's bridge and snoop follow it, so the traffic is only complete a little after the last stream.
   */
  async quiet(quietMs = 1000, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let seen = this.options.ari.requests.length
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, quietMs))
      if (this.options.ari.requests.length === seen) return
      seen = this.options.ari.requests.length
    }
  }

  /** Call `index`: bridged, tapped, both legs played, hung up. Resolves once its streams have closed; never rejects. */
  async run(index: number): Promise<TappedCallResult> {
    try {
      return await this.playCall(index)
    } catch (err) {
      return { ok: false, failure: `call ${index}: ${(err as Error).message}`, setupMs: undefined }
    }
  }

  private async playCall(index: number): Promise<TappedCallResult> {
    const { ari } = this.options
    const caller = `bench-${index}.1`
    const agent = `bench-${index}.2`
    const bridge = `bench-call-${index}`
    ari.addChannel({ id: caller, name: `PJSIP/caller-${index.toString(16).padStart(8, '0')}`, caller: { name: 'Caller', number: String(1000 + index) }, variables: { 'CHANNEL(audionativeformat)': NATIVE_FORMAT } })
    ari.addChannel({ id: agent, name: `PJSIP/agent-${index.toString(16).padStart(8, '0')}` })
    ari.bridges.set(bridge, { id: bridge, technology: 'simple_bridge', bridge_type: 'mixing', bridge_class: 'base', name: '', channels: [caller, agent] })
    const hangUp = (): void => {
      ari.hangup(caller)
      ari.hangup(agent)
      ari.bridges.delete(bridge)
    }
    const started = performance.now()
    let answer: { status: number; body: string }
    try {
      const form = `channel=${encodeURIComponent(caller)}&roles=caller%2Cagent`
      const headers = { authorization: `Bearer ${this.options.token}`, 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(form)) }
      answer = await request('POST', new URL('/conversations', this.options.httpUrl), headers, form)
    } catch (err) {
      hangUp()
      return { ok: false, failure: `POST /conversations: ${(err as Error).message}`, setupMs: undefined }
    }
    const setupMs = performance.now() - started
    if (answer.status !== 201) {
      hangUp()
      return { ok: false, failure: `POST /conversations answered ${answer.status}: ${answer.body.slice(0, 200)}`, setupMs }
    }
    const { legs } = JSON.parse(answer.body) as { legs: Array<{ call_id: string }> }
    const streams = await Promise.all(legs.map((leg) => this.leg(leg.call_id).promise))
    await Promise.all(streams.map((s) => s.audioDone))
    hangUp()
    const results = await Promise.all(streams.map((s) => s.closed))
    const bad = results.find((r) => !r.ok || !r.completed)
    return { ok: bad === undefined, failure: bad && (bad.failure ?? `leg ${bad.uuid ?? '?'} closed after ${bad.framesSent} of ${bad.framesTotal} frames`), setupMs }
  }

  private leg(uuid: string): Deferred<LegStream> {
    let leg = this.legs.get(uuid)
    if (leg === undefined) this.legs.set(uuid, (leg = deferred()))
    return leg
  }

  private onChannel(change: FakeAriChannelChange): void {
    if (change.type === 'destroyed') {
      this.mediaGone.get(change.id)?.resolve()
      this.mediaGone.delete(change.id)
      return
    }
    if (change.kind !== 'externalMedia') return
    // Asterisk connects to external_host and sends `data` as the stream's UUID.
    const uuid = change.query.data ?? ''
    let target: { host: string; port: number }
    try {
      target = parseHostPort(change.query.external_host ?? '', 'external_host')
    } catch {
      // Asterisk could not connect either: the leg's stream fails (port 0 refuses), and its call with it.
      target = { host: '127.0.0.1', port: 0 }
    }
    const { host, port } = target
    const gone = deferred<void>()
    this.mediaGone.set(change.id, gone)
    const stream = this.options.openStream({ uuid, host, port, hungUp: gone.promise })
    this.streams.push(stream.closed)
    this.leg(uuid).resolve(stream)
  }
}
