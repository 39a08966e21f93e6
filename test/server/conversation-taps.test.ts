/**
 * src/server/conversation-taps.ts against the fake ARI (test/support/fake-ari.ts), through the real
 * AriRest and AriEventStream: the exact REST sequence of a tap, what admission gets for its legs,
 * each refusal of begin(), the stream deadline, DTMF by party, the teardown when the call ends, the
 * automatic tap by AUDIOSOCKET_SONIOX_TAP, and the reconciliation at every (re)connection.
 *
 * Every timer of the taps (Stasis waits, stream deadline) and of the events socket (backoff) is on
 * the fake clock: the test moves time. What crosses a socket is waited for as a state, never slept.
 */
import t, { type Test } from 'tap'
import { AriEventStream, AriRest, type AriEvent } from '../../src/ari/index.js'
import type { LegControl, LegObserver } from '../../src/call/conversation-leg.js'
import type { CallOptions } from '../../src/call/call-session.js'
import type { EventEnvelope, EventSink } from '../../src/events/envelope.js'
import { createLogger } from '../../src/shared/logger.js'
import { ConversationTaps, TAP_VARIABLE, type BeginResult, type ConversationTapsSettings } from '../../src/server/conversation-taps.js'
import { startFakeAri, type FakeAri, type FakeAriOverride, type FakeAriRequest } from '../support/fake-ari.js'
import { FakeTimers } from '../support/fake-timers.js'
import { waitUntil } from '../support/wait.js'

const APP = 'audiosocket-soniox'
const EXTERNAL_HOST = '10.0.0.5:9092'
const STASIS_TIMEOUT_MS = 5000
const STREAM_TIMEOUT_MS = 10_000
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const NATIVE_FORMAT = 'CHANNEL(audionativeformat)'

interface Rig {
  ari: FakeAri
  taps: ConversationTaps
  clock: FakeTimers
  events: EventEnvelope[]
  logs: Array<Record<string, unknown>>
  metrics: string[]
  /** Requests to the fake from `from` on (an index into ari.requests). */
  since(from: number): FakeAriRequest[]
  until(predicate: () => boolean, what: string): Promise<void>
  /** The events of type `type` published so far. */
  published(type: string): EventEnvelope[]
}

async function rig(t: Test, settings: Partial<ConversationTapsSettings> = {}, options: { start?: boolean; before?: (ari: FakeAri) => void } = {}): Promise<Rig> {
  const ari = await startFakeAri()
  ari.stasisEvents = true
  options.before?.(ari)
  const clock = new FakeTimers(1_700_000_000_000)
  const events: EventEnvelope[] = []
  const sink: EventSink = { publish: (e) => void events.push(e), close: async () => {} }
  const logs: Array<Record<string, unknown>> = []
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } })
  const metrics: string[] = []
  const taps = new ConversationTaps({
    rest: new AriRest(ari.connection),
    createEvents: (handlers) => new AriEventStream({ ...ari.connection, app: APP, logger, clock, pingIntervalMs: 0, random: () => 0, ...handlers }),
    sink,
    logger,
    clock,
    metrics: {
      requestFinished: () => undefined,
      eventStreamConnected: () => undefined,
      tapStarted: () => void metrics.push('started'),
      tapEnded: () => void metrics.push('ended'),
    },
    settings: { app: APP, externalHost: EXTERNAL_HOST, stasisTimeoutMs: STASIS_TIMEOUT_MS, streamTimeoutMs: STREAM_TIMEOUT_MS, ...settings },
  })
  t.teardown(async () => {
    await taps.close()
    await ari.close()
  })
  const r: Rig = {
    ari,
    taps,
    clock,
    events,
    logs,
    metrics,
    since: (from) => ari.requests.slice(from),
    until: (predicate, what) => waitUntil(predicate, what, 5000),
    published: (type) => events.filter((e) => e.type === type),
  }
  if (options.start !== false) await startAndReconcile(r)
  return r
}

/** Starts the taps and waits for the first reconciliation's two listings. */
async function startAndReconcile(r: Rig): Promise<void> {
  const before = r.ari.requests.length
  r.taps.start()
  await r.taps.connected()
  await r.until(() => r.since(before).filter((q) => q.method === 'GET' && (q.path === '/ari/channels' || q.path === '/ari/bridges')).length === 2, 'the reconciliation\'s listings')
}

/** The tapped call: an inbound channel (the caller's), and optionally the agent's bridged with it. */
function addCall(ari: FakeAri, options: { nativeFormat?: string; bridged?: boolean } = {}): void {
  ari.addChannel({
    id: '1733400000.1',
    name: 'PJSIP/alice-00000001',
    caller: { name: 'Alice', number: '1001' },
    connected: { name: 'Bob', number: '2002' },
    variables: options.nativeFormat === undefined ? {} : { [NATIVE_FORMAT]: options.nativeFormat },
  })
  ari.addChannel({ id: '1733400000.2', name: 'PJSIP/bob-00000002' })
  if (options.bridged ?? true) {
    ari.bridges.set('call-bridge', { id: 'call-bridge', technology: 'simple_bridge', bridge_type: 'mixing', bridge_class: 'base', name: '', channels: ['1733400000.1', '1733400000.2'] })
  }
}
const CALLER = '1733400000.1'
const AGENT = '1733400000.2'
const ROLES = { in: 'caller', out: 'agent' }

function ok(result: BeginResult): Extract<BeginResult, { ok: true }> {
  if (!result.ok) throw new Error(`begin refused: ${result.status} ${result.error}`)
  return result
}

const ids = (conversationId: string, spy: 'in' | 'out') => ({
  snoop: `${APP}-${conversationId}-${spy}-snoop`,
  media: `${APP}-${conversationId}-${spy}-media`,
  bridge: `${APP}-${conversationId}-${spy}-bridge`,
})

/** A request as "METHOD /path?query" with the query in a fixed order, for comparing sequences. */
function show(q: FakeAriRequest): string {
  const query = Object.entries(q.query).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join('&')
  return `${q.method} ${q.path}${query ? `?${query}` : ''}`
}

/**
 * One more round trip through the taps' REST client (a begin() for a channel that does not exist:
 * 404, no state changed), so that requests the taps sent before it have reached the fake.
 */
async function roundTrip(r: Rig): Promise<void> {
  const result = await r.taps.begin({ channel: 'no-such-channel', roles: ROLES, options: {} })
  if (result.ok || result.status !== 404) throw new Error(`round trip: ${JSON.stringify(result)}`)
}

/** Takes both legs as admission would, and starts each with a recording control. */
function takeAndStart(r: Rig, result: Extract<BeginResult, { ok: true }>): { options: CallOptions[]; digits: Map<string, string[]>; observer: LegObserver } {
  const options = result.legs.map((leg) => {
    const taken = r.taps.takeLeg(leg.callId)
    if (taken === undefined) throw new Error(`no options for leg ${leg.role}`)
    return taken
  })
  const digits = new Map<string, string[]>()
  const observer = options[0]!.conversation!.observer
  result.legs.forEach((leg) => {
    const got: string[] = []
    digits.set(leg.role, got)
    const control: LegControl = { dtmf: (digit) => void got.push(digit) }
    observer.legStarted(leg.callId, control)
  })
  return { options, digits, observer }
}

t.test('begin(): the exact REST sequence per leg, the conversation announced, the legs\' options for admission', async (t) => {
  const r = await rig(t)
  addCall(r.ari, { nativeFormat: 'slin16' })
  const from = r.ari.requests.length
  const result = ok(await r.taps.begin({ channel: CALLER, roles: ROLES, options: { metadata: { ticket: 'T-1' }, recognition: { languageHints: ['en'] } } }))
  const cid = result.conversationId
  t.match(cid, UUID_RE)
  t.equal(result.legs.length, 2)
  t.same(result.legs.map((l) => l.role), ['caller', 'agent'])
  for (const leg of result.legs) t.match(leg.callId, UUID_RE)
  t.not(result.legs[0]!.callId, result.legs[1]!.callId)

  const requests = r.since(from)
  t.same(requests.slice(0, 2).map(show), [`GET /ari/channels/${CALLER}`, `GET /ari/channels/${CALLER}/variable?variable=${NATIVE_FORMAT}`], 'the channel, then its native format')
  t.equal(show(requests.at(-1)!), 'GET /ari/bridges', 'last: the bridges, for the peer')
  const legSequence = (spy: 'in' | 'out', callId: string) => {
    const o = ids(cid, spy)
    return [
      `POST /ari/channels/${CALLER}/snoop?app=${APP}&snoopId=${o.snoop}&spy=${spy}`,
      `POST /ari/channels/externalMedia?app=${APP}&channelId=${o.media}&data=${callId}&encapsulation=audiosocket&external_host=${EXTERNAL_HOST}&format=slin16&transport=tcp`,
      `POST /ari/bridges?bridgeId=${o.bridge}&name=${o.bridge}&type=mixing`,
      `POST /ari/bridges/${o.bridge}/addChannel?channel=${o.snoop},${o.media}`,
    ]
  }
  const ofLeg = (spy: 'in' | 'out') => requests.filter((q) => q.rawUrl.includes(`-${spy}-`)).map(show)
  t.same(ofLeg('in'), legSequence('in', result.legs[0]!.callId), 'the caller\'s leg: snoop spy=in, its stream (data = the leg\'s UUID), a bridge joining them')
  t.same(ofLeg('out'), legSequence('out', result.legs[1]!.callId), 'the agent\'s leg: snoop spy=out')
  t.equal(requests.length, 2 + 8 + 1, 'nothing else')
  t.same(r.ari.violations, [])

  t.same([...r.ari.bridges.get(ids(cid, 'in').bridge)!.channels], [ids(cid, 'in').snoop, ids(cid, 'in').media])
  t.same([...r.ari.bridges.get(ids(cid, 'out').bridge)!.channels], [ids(cid, 'out').snoop, ids(cid, 'out').media])

  t.same(r.events.map((e) => e.type), ['conversation.started'])
  t.match(r.events[0], {
    call_id: cid,
    conversation_id: cid,
    seq: 0,
    data: {
      channel: { id: CALLER, name: 'PJSIP/alice-00000001' },
      caller: { name: 'Alice', number: '1001' },
      connected: { name: 'Bob', number: '2002' },
      legs: [{ call_id: result.legs[0]!.callId, role: 'caller' }, { call_id: result.legs[1]!.callId, role: 'agent' }],
      metadata: { ticket: 'T-1' },
    },
  })
  t.equal(r.taps.active, 1)
  t.same(r.metrics, ['started'])

  const caller = r.taps.takeLeg(result.legs[0]!.callId)
  t.same(
    { ...caller, conversation: { conversationId: caller?.conversation?.conversationId, role: caller?.conversation?.role } },
    { metadata: { ticket: 'T-1' }, recognition: { languageHints: ['en'] }, conversation: { conversationId: cid, role: 'caller' }, silenceMode: 'continuous', sampleRate: 16000 },
    'the leg\'s options: the request\'s, its conversation and role, continuous silence, the rate of slin16',
  )
  t.equal(typeof caller?.conversation?.observer.legStarted, 'function', 'with the conversation as its observer')
  t.equal(r.taps.takeLeg(result.legs[0]!.callId), undefined, 'taken once')
  t.equal(r.taps.takeLeg('5d0b4a8e-1c1f-4f8e-9c43-2f1d2b7b9a10'), undefined, 'any other UUID: not a leg')
  t.equal(r.taps.takeLeg(result.legs[1]!.callId)?.conversation?.role, 'agent')
})

t.test('the stream format: slin16 only for a wideband channel; slin for 8 kHz or an unknown format', async (t) => {
  for (const [native, format, rate] of [['ulaw', 'slin', 8000], ['(g722)', 'slin16', 16000], ['opus', 'slin16', 16000], [undefined, 'slin', 8000]] as const) {
    const r = await rig(t)
    addCall(r.ari, native === undefined ? {} : { nativeFormat: native })
    const result = ok(await r.taps.begin({ channel: CALLER, roles: ROLES, options: {} }))
    const media = r.ari.requests.filter((q) => q.path === '/ari/channels/externalMedia')
    t.same(media.map((q) => q.query.format), [format, format], `${native ?? 'no variable'}: format=${format} on both streams`)
    t.equal(r.taps.takeLeg(result.legs[0]!.callId)?.sampleRate, rate, `and sampleRate ${rate}`)
  }
})

t.test('a channel given by name is found in the channel list', async (t) => {
  const r = await rig(t)
  addCall(r.ari)
  const result = ok(await r.taps.begin({ channel: 'PJSIP/alice-00000001', roles: ROLES, options: {} }))
  t.match(r.events[0]?.data, { channel: { id: CALLER } })
  t.ok(r.ari.requests.some((q) => q.path === `/ari/channels/${CALLER}/snoop`), 'the snoop is on the channel\'s id')
  t.equal(r.taps.takeLeg(result.legs[0]!.callId)?.conversation?.conversationId, result.conversationId)
})

t.test('refusals: unknown channel 404, a tap object 409, the same call twice 409 with its id, the socket down 503, draining 503', async (t) => {
  const r = await rig(t)
  addCall(r.ari)
  const unknown = await r.taps.begin({ channel: 'PJSIP/nobody-00000009', roles: ROLES, options: {} })
  t.match(unknown, { ok: false, status: 404, error: /no live channel with the id or name "PJSIP\/nobody-00000009"/ })

  const first = ok(await r.taps.begin({ channel: CALLER, roles: ROLES, options: {} }))
  const from = r.ari.requests.length
  const again = await r.taps.begin({ channel: CALLER, roles: ROLES, options: {} })
  t.same(again, { ok: false, status: 409, error: 'this call is already being transcribed', conversationId: first.conversationId })
  const peer = await r.taps.begin({ channel: AGENT, roles: ROLES, options: {} })
  t.same(peer, { ok: false, status: 409, error: 'this call is already being transcribed', conversationId: first.conversationId }, 'the other party of the same call too')
  t.notOk(r.since(from).some((q) => q.method !== 'GET'), 'no object made for a refused tap')
  const own = await r.taps.begin({ channel: ids(first.conversationId, 'in').snoop, roles: ROLES, options: {} })
  t.match(own, { ok: false, status: 409, error: /one of this server's own tap channels/ })
  t.equal(r.taps.active, 1)
  t.equal(r.published('conversation.started').length, 1, 'no conversation for a refusal')

  // The events socket drops: no tap can start (its snoops would die at once).
  r.ari.dropSockets()
  await r.until(() => r.taps.eventsState !== 'connected', 'the events socket lost')
  const before = r.ari.requests.length
  const down = await r.taps.begin({ channel: AGENT, roles: ROLES, options: {} })
  t.match(down, { ok: false, status: 503, error: /the ARI events socket is (waiting|connecting)/ })
  t.equal(r.ari.requests.length, before, 'refused before any request')

  r.taps.refuseNew()
  const draining = await r.taps.begin({ channel: AGENT, roles: ROLES, options: {} })
  t.match(draining, { ok: false, status: 503, error: /draining/ })
  t.same(r.ari.violations, [])
})

t.test('maxConversations: 429 beyond it', async (t) => {
  const r = await rig(t, { maxConversations: 1 })
  addCall(r.ari, { bridged: false })
  ok(await r.taps.begin({ channel: CALLER, roles: ROLES, options: {} }))
  const second = await r.taps.begin({ channel: AGENT, roles: ROLES, options: {} })
  t.match(second, { ok: false, status: 429, error: /1 conversations are live/ })
})

t.test('a snoop that never enters Stasis: 502 after stasisTimeoutMs, everything made is deleted, the conversation ends in error', async (t) => {
  const r = await rig(t)
  addCall(r.ari)
  const outSnoop = (id: string) => /-out-snoop$/.test(id)
  r.ari.stasisEvents = (id) => !outSnoop(id)
  const pending = r.taps.begin({ channel: CALLER, roles: ROLES, options: {} })
  // The caller's leg is all up, the agent's snoop made but silent.
  await r.until(() => [...r.ari.bridges.values()].some((b) => b.id.endsWith('-in-bridge') && b.channels.length === 2) && [...r.ari.channels.keys()].some(outSnoop), 'one leg up, the other\'s snoop made')
  let settled = false
  void pending.then(() => (settled = true))
  r.clock.advance(STASIS_TIMEOUT_MS - 1)
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(settled, 'still waiting 1 ms before the deadline')
  r.clock.advance(1)
  const result = await pending
  t.match(result, { ok: false, status: 502, error: /did not enter Stasis within 5000 ms/ })
  if (result.ok) return
  t.match(result.conversationId, UUID_RE, 'naming the conversation that was announced')
  t.same([...r.ari.channels.keys()].sort(), [CALLER, AGENT].sort(), 'every snoop and stream deleted')
  t.same([...r.ari.bridges.keys()], ['call-bridge'], 'every bridge of the tap deleted')
  const deletes = r.ari.requests.filter((q) => q.method === 'DELETE').map((q) => q.path.replace(`${APP}-${result.conversationId}-`, ''))
  for (const spy of ['in', 'out']) {
    const own = deletes.filter((p) => p.includes(`/${spy}-`))
    t.same(own, [`/ari/channels/${spy}-media`, `/ari/bridges/${spy}-bridge`, `/ari/channels/${spy}-snoop`], `the ${spy} leg: stream, bridge, snoop, in that order`)
  }
  t.same(r.events.map((e) => e.type), ['conversation.started', 'conversation.ended'])
  const ended = r.events[1]!
  t.equal(ended.call_id, result.conversationId)
  t.equal(ended.data.reason, 'error')
  t.same((ended.data.legs as Array<Record<string, unknown>>).map((l) => l.error), [{ code: 'ERR_ARI_TAP_FAILED' }, { code: 'ERR_ARI_TAP_FAILED' }])
  t.equal(r.taps.active, 0, 'nothing live')
  t.same(r.metrics, ['started', 'ended'])
  r.ari.stasisEvents = true
  const afterwards = await r.taps.begin({ channel: CALLER, roles: ROLES, options: {} })
  t.equal(afterwards.ok, true, 'the channel can be tapped again')
})

t.test('a leg whose stream never comes: after streamTimeoutMs it counts as ended with ERR_ARI_TAP_NO_STREAM, its objects go', async (t) => {
  const r = await rig(t)
  addCall(r.ari)
  const result = ok(await r.taps.begin({ channel: CALLER, roles: ROLES, options: {} }))
  const cid = result.conversationId
  const callerOptions = r.taps.takeLeg(result.legs[0]!.callId) // the caller's stream arrives, the agent's never
  const observer = callerOptions!.conversation!.observer
  observer.legStarted(result.legs[0]!.callId, { dtmf: () => undefined })
  r.clock.advance(STREAM_TIMEOUT_MS - 1)
  t.equal(r.ari.requests.filter((q) => q.method === 'DELETE').length, 0, 'not before the deadline')
  const from = r.ari.requests.length
  r.clock.advance(1)
  t.equal(r.taps.takeLeg(result.legs[1]!.callId), undefined, 'the late leg is no longer admitted')
  await r.until(() => r.since(from).filter((q) => q.method === 'DELETE').length === 3, 'the agent leg\'s objects deleted')
  t.same(r.since(from).map(show), [`DELETE /ari/channels/${ids(cid, 'out').media}`, `DELETE /ari/bridges/${ids(cid, 'out').bridge}`, `DELETE /ari/channels/${ids(cid, 'out').snoop}`])
  t.ok(r.ari.channels.has(ids(cid, 'in').media), 'the caller\'s leg is untouched')
  t.equal(r.published('conversation.ended').length, 0, 'the caller\'s leg is still live')

  observer.legEnded(result.legs[0]!.callId, { reason: 'hangup', audioMs: 4000, errorCode: undefined })
  const [ended] = r.published('conversation.ended')
  t.ok(ended, 'conversation.ended once the caller\'s leg ended too')
  t.equal(ended?.data.reason, 'error')
  t.same((ended?.data.legs as Array<Record<string, unknown>>).map((l) => [l.role, l.reason, l.error]), [['caller', 'hangup', null], ['agent', 'error', { code: 'ERR_ARI_TAP_NO_STREAM' }]])
  await r.until(() => !r.ari.channels.has(ids(cid, 'in').media) && !r.ari.channels.has(ids(cid, 'in').snoop), 'the caller\'s leg removed once it ended')
  t.equal(r.taps.active, 0)
})

t.test('both streams in time: no deadline fires', async (t) => {
  const r = await rig(t)
  addCall(r.ari)
  const result = ok(await r.taps.begin({ channel: CALLER, roles: ROLES, options: {} }))
  takeAndStart(r, result)
  t.equal(r.clock.pending, 0, 'the deadline is cleared once the last stream arrived')
  r.clock.advance(STREAM_TIMEOUT_MS * 3)
  t.equal(r.published('conversation.ended').length, 0, 'no leg counted as missing')
  await roundTrip(r)
  t.equal(r.ari.requests.filter((q) => q.method === 'DELETE').length, 0, 'nothing torn down')
})

t.test('DTMF: the tapped channel\'s digits go to the in role, its peer\'s to the out role, a stranger\'s nowhere', async (t) => {
  const r = await rig(t)
  addCall(r.ari)
  r.ari.addChannel({ id: 'stranger', name: 'PJSIP/carol-00000003' })
  const result = ok(await r.taps.begin({ channel: CALLER, roles: { in: 'customer', out: 'operator' }, options: {} }))
  const { digits } = takeAndStart(r, result)
  r.ari.push(r.ari.channelEvent('ChannelDtmfReceived', CALLER, { digit: '5', duration_ms: 100 }))
  r.ari.push(r.ari.channelEvent('ChannelDtmfReceived', 'stranger', { digit: '1', duration_ms: 100 }))
  r.ari.push(r.ari.channelEvent('ChannelDtmfReceived', AGENT, { digit: '7', duration_ms: 100 }))
  r.ari.push(r.ari.channelEvent('ChannelDtmfReceived', CALLER, { digit: '#', duration_ms: 100 }))
  await r.until(() => digits.get('customer')!.length === 2, 'the caller\'s digits')
  t.same(digits.get('customer'), ['5', '#'], 'the tapped channel\'s party: the in role')
  t.same(digits.get('operator'), ['7'], 'the bridged peer (found in GET /bridges at the start): the out role')
})

t.test('DTMF: a peer that joins later (ChannelEnteredBridge) is the out party; one that left is no longer', async (t) => {
  const r = await rig(t)
  addCall(r.ari, { bridged: false })
  r.ari.addChannel({ id: 'transfer-target', name: 'PJSIP/dave-00000004' })
  const result = ok(await r.taps.begin({ channel: CALLER, roles: ROLES, options: {} }))
  const { digits } = takeAndStart(r, result)
  const sentinel = async (n: number) => {
    r.ari.push(r.ari.channelEvent('ChannelDtmfReceived', CALLER, { digit: '0' }))
    await r.until(() => digits.get('caller')!.length === n, 'the sentinel digit')
  }
  r.ari.push(r.ari.channelEvent('ChannelDtmfReceived', AGENT, { digit: '9' }))
  await sentinel(1)
  t.same(digits.get('agent'), [], 'not bridged with the tapped channel yet: nobody\'s')
  const bridge = { id: 'b-1', technology: 'simple_bridge', bridge_type: 'mixing', bridge_class: 'base', name: '', channels: [CALLER, AGENT] }
  r.ari.push(r.ari.channelEvent('ChannelEnteredBridge', AGENT, { bridge }))
  r.ari.push(r.ari.channelEvent('ChannelDtmfReceived', AGENT, { digit: '3' }))
  await r.until(() => digits.get('agent')!.length === 1, 'the peer\'s digit')
  t.same(digits.get('agent'), ['3'])
  // A transfer: the agent leaves, another party is bridged with the caller.
  r.ari.push(r.ari.channelEvent('ChannelLeftBridge', AGENT, { bridge: { ...bridge, channels: [CALLER] } }))
  r.ari.push(r.ari.channelEvent('ChannelEnteredBridge', 'transfer-target', { bridge: { ...bridge, channels: [CALLER, 'transfer-target'] } }))
  r.ari.push(r.ari.channelEvent('ChannelDtmfReceived', AGENT, { digit: '4' }))
  r.ari.push(r.ari.channelEvent('ChannelDtmfReceived', 'transfer-target', { digit: '8' }))
  await r.until(() => digits.get('agent')!.length === 2, 'the new peer\'s digit')
  await sentinel(2)
  t.same(digits.get('agent'), ['3', '8'], 'the new peer\'s digit, not the departed one\'s')
})

t.test('the tapped channel destroyed: both legs\' streams, bridges and snoops are deleted; conversation.ended once the legs end', async (t) => {
  const r = await rig(t)
  addCall(r.ari)
  const result = ok(await r.taps.begin({ channel: CALLER, roles: ROLES, options: {} }))
  const cid = result.conversationId
  const { observer } = takeAndStart(r, result)
  const from = r.ari.requests.length
  r.ari.channels.delete(CALLER)
  r.ari.push(r.ari.channelEvent('ChannelDestroyed', CALLER, { channel: { id: CALLER, name: 'PJSIP/alice-00000001' }, cause: 16, cause_txt: 'Normal Clearing' }))
  await r.until(() => r.since(from).filter((q) => q.method === 'DELETE').length >= 6, 'six deletes')
  await roundTrip(r)
  const deletes = r.since(from).filter((q) => q.method === 'DELETE')
  t.equal(deletes.length, 6, 'each object once (its own StasisEnd / ChannelDestroyed add nothing)')
  for (const spy of ['in', 'out'] as const) {
    const o = ids(cid, spy)
    t.same(deletes.filter((q) => q.path.includes(`-${spy}-`)).map(show), [`DELETE /ari/channels/${o.media}`, `DELETE /ari/bridges/${o.bridge}`, `DELETE /ari/channels/${o.snoop}`], `the ${spy} leg: stream first, then bridge, then snoop`)
  }
  t.same([...r.ari.channels.keys()], [AGENT], 'nothing of the tap is left')
  t.same([...r.ari.bridges.keys()], ['call-bridge'])
  t.equal(r.published('conversation.ended').length, 0, 'the legs\' calls have not ended yet (their streams end with EOF)')
  observer.legEnded(result.legs[0]!.callId, { reason: 'hangup', audioMs: 3000, errorCode: undefined })
  observer.legEnded(result.legs[1]!.callId, { reason: 'hangup', audioMs: 3000, errorCode: undefined })
  const ended = r.published('conversation.ended')
  t.equal(ended.length, 1)
  t.equal(ended[0]?.data.reason, 'hangup')
  t.equal(r.taps.active, 0)
  t.same(r.metrics, ['started', 'ended'])
  await new Promise((resolve) => setImmediate(resolve))
  t.same(r.ari.violations, [])
})

// The call hangs up while a leg is still being built: the leg's teardown waits for its setup to
// stop (startLeg checks between steps), so nothing made after the teardown began is left behind
// (a stream left in Asterisk would connect with a UUID no tap awaits: a stray call).
t.test('the call hangs up while its tap is being built: nothing of the tap is left in Asterisk', async (t) => {
  const r = await rig(t)
  addCall(r.ari)
  let release: (override: FakeAriOverride) => void = () => undefined
  const held = new Promise<FakeAriOverride>((resolve) => (release = resolve))
  const isInStream = (q: FakeAriRequest) => q.path === '/ari/channels/externalMedia' && (q.query.channelId ?? '').endsWith('-in-media')
  r.ari.respond = (q) => (isInStream(q) ? held : undefined)
  const pending = r.taps.begin({ channel: CALLER, roles: ROLES, options: {} })
  // Asterisk is slow to answer the caller leg's externalMedia; the agent's leg is all up.
  await r.until(() => r.ari.requests.some(isInStream) && [...r.ari.bridges.values()].some((b) => b.id.endsWith('-out-bridge') && b.channels.length === 2), 'the caller leg\'s stream asked for, the agent\'s leg up')
  const streamRequest = r.ari.requests.find(isInStream)!
  const cid = (streamRequest.query.channelId ?? '').slice(APP.length + 1, APP.length + 37)
  t.match(cid, UUID_RE)
  const from = r.ari.requests.length
  r.ari.channels.delete(CALLER)
  r.ari.push(r.ari.channelEvent('ChannelDestroyed', CALLER, { channel: { id: CALLER, name: 'PJSIP/alice-00000001' }, cause: 16 }))
  // The agent leg goes at once; the caller leg's teardown waits for its setup, held at externalMedia.
  await r.until(() => r.since(from).filter((q) => q.method === 'DELETE').length >= 3, 'the teardown of the agent leg')
  await r.until(() => r.published('conversation.ended').length === 1, 'the conversation ended (no stream came)')
  release(undefined) // Asterisk now creates the caller leg's stream
  const result = await pending
  t.match(result, { ok: false, status: 404, error: /ended while the tap was being set up/ }, 'begin() answers 404: the channel ended during the setup')
  await roundTrip(r)
  const left = [...r.ari.channels.keys(), ...r.ari.bridges.keys()].filter((id) => id.includes(cid))
  t.same(left, [], 'no snoop, stream or bridge of the tap is left')
  t.equal(r.taps.takeLeg(streamRequest.query.data ?? ''), undefined, 'its UUID is no longer a leg: a stream left behind would be a stray call')
  t.equal(r.taps.active, 0)
  r.ari.respond = undefined
})

t.test('the events socket lost while a tap is being built: begin() fails at once (502), not at the Stasis deadline; nothing is left', async (t) => {
  const r = await rig(t)
  addCall(r.ari)
  r.ari.stasisEvents = (id) => !id.endsWith('-snoop') // the snoops' StasisStart never comes
  const pending = r.taps.begin({ channel: CALLER, roles: ROLES, options: {} })
  await r.until(() => [...r.ari.channels.keys()].filter((id) => id.endsWith('-snoop')).length === 2, 'both snoops made')
  r.ari.dropSockets()
  const result = await pending // no clock advance: the lost socket fails the waits
  t.match(result, { ok: false, status: 502, error: /ARI events socket/ })
  t.same([...r.ari.channels.keys()].sort(), [CALLER, AGENT].sort(), 'both snoops deleted')
  t.match(r.published('conversation.ended'), [{ data: { reason: 'error' } }])
})

t.test('close(): every live tap is torn down (reason shutdown), then new taps are refused', async (t) => {
  const r = await rig(t)
  addCall(r.ari)
  const result = ok(await r.taps.begin({ channel: CALLER, roles: ROLES, options: {} }))
  const { observer } = takeAndStart(r, result)
  r.taps.markEnding('shutdown')
  await r.taps.close()
  t.same([...r.ari.channels.keys()].sort(), [CALLER, AGENT].sort(), 'every snoop and stream deleted before close() resolves')
  t.same([...r.ari.bridges.keys()], ['call-bridge'])
  t.equal(r.taps.eventsState, 'closed')
  for (const leg of result.legs) observer.legEnded(leg.callId, { reason: 'shutdown', audioMs: 10, errorCode: undefined })
  t.equal(r.published('conversation.ended')[0]?.data.reason, 'shutdown')
  t.match(await r.taps.begin({ channel: AGENT, roles: ROLES, options: {} }), { ok: false, status: 503 })
})

t.test('end(id): the tap is torn down, reason stopped; unknown id false', async (t) => {
  const r = await rig(t)
  addCall(r.ari)
  const result = ok(await r.taps.begin({ channel: CALLER, roles: ROLES, options: {} }))
  const { observer } = takeAndStart(r, result)
  t.equal(await r.taps.end('5d0b4a8e-1c1f-4f8e-9c43-2f1d2b7b9a10'), false)
  t.equal(await r.taps.end(result.conversationId), true)
  t.same([...r.ari.channels.keys()].sort(), [CALLER, AGENT].sort(), 'resolved once the tap\'s objects are gone')
  for (const leg of result.legs) observer.legEnded(leg.callId, { reason: 'hangup', audioMs: 100, errorCode: undefined })
  t.equal(r.published('conversation.ended')[0]?.data.reason, 'stopped')
})

t.test('auto tap: a two-party bridge with AUDIOSOCKET_SONIOX_TAP on both channels: one conversation, of the older channel, with its roles', async (t) => {
  const r = await rig(t)
  r.ari.addChannel({ id: 'newer', name: 'PJSIP/agent-00000008', creationtime: '2026-12-05T10:00:05.000+0000', variables: { [TAP_VARIABLE]: 'support,client' } })
  r.ari.addChannel({ id: 'older', name: 'PJSIP/caller-00000007', creationtime: '2026-12-05T10:00:01.000+0000', variables: { [TAP_VARIABLE]: 'customer , operator' } })
  const bridge = { id: 'call-bridge', technology: 'simple_bridge', bridge_type: 'mixing', bridge_class: 'base', name: '', channels: ['newer', 'older'] }
  r.ari.bridges.set(bridge.id, bridge)
  r.ari.push(r.ari.channelEvent('ChannelEnteredBridge', 'older', { bridge: { ...bridge, channels: ['older'] } })) // one channel: not a call yet
  r.ari.push(r.ari.channelEvent('ChannelEnteredBridge', 'newer', { bridge }))
  r.ari.push(r.ari.channelEvent('ChannelEnteredBridge', 'older', { bridge }))
  await r.until(() => r.ari.requests.filter((q) => q.path.endsWith('/addChannel')).length === 2 && r.taps.active === 1, 'the tap up')
  // The next bridge change (and its DTMF) is handled after anything the joins above started.
  r.ari.push(r.ari.channelEvent('ChannelEnteredBridge', 'newer', { bridge }))
  await r.until(() => r.ari.requests.filter((q) => q.path === '/ari/bridges').length >= 2, 'the peer listing')
  await roundTrip(r)
  const started = r.published('conversation.started')
  t.equal(started.length, 1, 'one conversation for the call')
  t.match(started[0]?.data, { channel: { id: 'older', name: 'PJSIP/caller-00000007' } }, 'the older channel is tapped')
  t.same((started[0]?.data.legs as Array<Record<string, unknown>>).map((l) => l.role), ['customer', 'operator'], 'with the roles its variable names')
  t.equal(r.ari.requests.filter((q) => q.path.endsWith('/snoop')).length, 2, 'one snoop per leg, no second tap')
  t.ok(r.ari.requests.every((q) => !q.path.endsWith('/snoop') || q.path === '/ari/channels/older/snoop'))
  t.same(r.ari.violations, [])
})

t.test('auto tap: only the channel that carries the variable is tapped (even the newer); "1" means the default roles', async (t) => {
  const r = await rig(t)
  r.ari.addChannel({ id: 'older', creationtime: '2026-12-05T10:00:01.000+0000' })
  r.ari.addChannel({ id: 'newer', creationtime: '2026-12-05T10:00:05.000+0000', variables: { [TAP_VARIABLE]: '1' } })
  r.ari.push(r.ari.channelEvent('ChannelEnteredBridge', 'newer', { bridge: { id: 'b', channels: ['older', 'newer'] } }))
  await r.until(() => r.taps.active === 1 && r.published('conversation.started').length === 1, 'the tap')
  const started = r.published('conversation.started')[0]
  t.match(started?.data, { channel: { id: 'newer' } })
  t.same((started?.data.legs as Array<Record<string, unknown>>).map((l) => l.role), ['caller', 'agent'])
})

t.test('auto tap: not for a bridge of three, a variable saying no, or with autoTap off', async (t) => {
  const r = await rig(t)
  for (const id of ['a', 'b', 'c']) r.ari.addChannel({ id, variables: { [TAP_VARIABLE]: 'caller,agent' } })
  r.ari.addChannel({ id: 'd', variables: { [TAP_VARIABLE]: 'no' } })
  r.ari.addChannel({ id: 'e', variables: { [TAP_VARIABLE]: '0' } })
  r.ari.addChannel({ id: 'f' })
  r.ari.push(r.ari.channelEvent('ChannelEnteredBridge', 'c', { bridge: { id: 'three', channels: ['a', 'b', 'c'] } }))
  r.ari.push(r.ari.channelEvent('ChannelEnteredBridge', 'e', { bridge: { id: 'no', channels: ['d', 'e'] } }))
  // The sentinel: a bridge that is tapped, after the ones that must not be.
  r.ari.push(r.ari.channelEvent('ChannelEnteredBridge', 'f', { bridge: { id: 'yes', channels: ['a', 'f'] } }))
  await r.until(() => r.published('conversation.started').length === 1 && r.taps.active === 1, 'the sentinel\'s tap')
  // The "no" bridge asks d, then e (one after the other); after e's answer it asks nothing more.
  await r.until(() => r.ari.requests.some((q) => q.path === '/ari/channels/e/variable'), 'the "no" bridge looked at')
  await roundTrip(r)
  t.same(r.published('conversation.started').map((e) => (e.data.channel as { id: string }).id), ['a'], 'only the two-party bridge whose channel says yes')
  t.notOk(r.ari.requests.some((q) => q.path.startsWith('/ari/channels/b') || q.path.startsWith('/ari/channels/c')), 'the three-party bridge was not even looked at')

  const off = await rig(t, { autoTap: false })
  off.ari.addChannel({ id: 'x', variables: { [TAP_VARIABLE]: '1' } })
  off.ari.addChannel({ id: 'y' })
  off.ari.addChannel({ id: 'z' })
  // A tap begun by hand (on a third channel) makes the events socket's progress visible: its DTMF.
  const manual = ok(await off.taps.begin({ channel: 'z', roles: ROLES, options: {} }))
  const { digits } = takeAndStart(off, manual)
  const from = off.ari.requests.length
  off.ari.push(off.ari.channelEvent('ChannelEnteredBridge', 'y', { bridge: { id: 'b', channels: ['x', 'y'] } }))
  off.ari.push(off.ari.channelEvent('ChannelDtmfReceived', 'z', { digit: '1' }))
  await off.until(() => digits.get('caller')!.length === 1, 'the event after the bridge handled')
  await roundTrip(off)
  t.notOk(off.since(from).some((q) => q.query.variable === TAP_VARIABLE), 'autoTap off: the variable is never asked for')
  t.equal(off.published('conversation.started').length, 1, 'only the tap begun by hand')
})

t.test('reconcile on connect: this app\'s tap objects that no live tap owns are deleted (streams first), others untouched', async (t) => {
  const old = '0f0e0d0c-0b0a-4090-8070-605040302010'
  const older = '1f1e1d1c-1b1a-4191-8171-615141312111'
  const r = await rig(t, {}, {
    start: false,
    before: (ari) => {
      for (const id of [`${APP}-${old}-in-snoop`, `${APP}-${old}-in-media`, `${APP}-${older}-out-media`, `${APP}-${older}-out-snoop`]) ari.addChannel({ id })
      for (const id of [`other-app-${old}-in-media`, `${APP}-not-a-uuid-in-media`, `${APP}-${old}-both-media`, 'PJSIP/alice-1', '1733400000.9']) ari.addChannel({ id })
      for (const id of [`${APP}-${old}-in-bridge`, 'call-bridge', `other-app-${old}-in-bridge`]) {
        ari.bridges.set(id, { id, technology: 'simple_bridge', bridge_type: 'mixing', bridge_class: 'stasis', name: id, channels: [] })
      }
    },
  })
  await startAndReconcile(r)
  await r.until(() => r.ari.requests.filter((q) => q.method === 'DELETE').length === 5, 'five deletes')
  const deletes = r.ari.requests.filter((q) => q.method === 'DELETE').map((q) => q.path)
  t.same(deletes.slice(0, 2).sort(), [`/ari/channels/${APP}-${old}-in-media`, `/ari/channels/${APP}-${older}-out-media`].sort(), 'the streams first')
  t.same(deletes.slice(2, 4).sort(), [`/ari/channels/${APP}-${old}-in-snoop`, `/ari/channels/${APP}-${older}-out-snoop`].sort(), 'then the snoops')
  t.same(deletes[4], `/ari/bridges/${APP}-${old}-in-bridge`, 'then the bridges')
  t.same([...r.ari.channels.keys()].sort(), [`other-app-${old}-in-media`, `${APP}-not-a-uuid-in-media`, `${APP}-${old}-both-media`, 'PJSIP/alice-1', '1733400000.9'].sort(), 'another app\'s and non-tap channels untouched')
  t.same([...r.ari.bridges.keys()].sort(), ['call-bridge', `other-app-${old}-in-bridge`].sort())
  await r.until(() => r.logs.some((l) => l.msg === 'removed tap channels and bridges no live tap owns'), 'the reconciliation\'s log line')
  t.match(r.logs.find((l) => l.msg === 'removed tap channels and bridges no live tap owns'), { level: 30, channels: 4, bridges: 1 })
  t.same(r.ari.violations, [])
})

t.test('reconcile on reconnect: a live tap\'s objects stay; orphans made while the socket was down go; a tap whose channel is gone ends', async (t) => {
  const r = await rig(t)
  addCall(r.ari)
  const live = ok(await r.taps.begin({ channel: CALLER, roles: ROLES, options: {} }))
  takeAndStart(r, live)
  const orphan = `${APP}-2a2b2c2d-3e3f-4a4b-8c8d-9e9fa0a1a2a3-in-media`
  r.ari.addChannel({ id: orphan })
  const liveObjects = [...r.ari.channels.keys()].filter((id) => id.includes(live.conversationId))
  t.equal(liveObjects.length, 4)
  r.ari.dropSockets()
  await r.until(() => r.taps.eventsState === 'waiting', 'the socket lost')
  const from = r.ari.requests.length
  r.clock.advance(500) // the first backoff (no jitter)
  await r.taps.connected()
  await r.until(() => r.since(from).some((q) => q.method === 'DELETE'), 'the orphan deleted')
  await r.until(() => r.since(from).filter((q) => q.method === 'GET').length === 2, 'both listings')
  t.same(r.since(from).filter((q) => q.method === 'DELETE').map((q) => q.path), [`/ari/channels/${orphan}`])
  t.ok(liveObjects.every((id) => r.ari.channels.has(id)), 'the live tap\'s snoops and streams untouched')
  t.equal(r.taps.active, 1)

  // The tapped call ended while the socket was down (its ChannelDestroyed never seen).
  r.ari.channels.delete(CALLER)
  r.ari.dropSockets()
  await r.until(() => r.taps.eventsState === 'waiting', 'the socket lost again')
  const again = r.ari.requests.length
  r.clock.advance(1000) // the second backoff
  await r.taps.connected()
  await r.until(() => r.since(again).filter((q) => q.method === 'DELETE').length === 6, 'the dead call\'s tap torn down')
  t.ok(liveObjects.every((id) => !r.ari.channels.has(id)), 'its objects are gone')
  t.same(r.ari.violations, [])
})
