/**
 * src/call/conversation.ts without sockets: a Conversation over an in-memory sink and the fake
 * clock, its legs played by the test (the LegObserver calls a leg's CallSession makes). What it
 * publishes (conversation.started, conversation.ended with the merged transcript), when it ends,
 * why, and where DTMF goes; plus the pure legOffsets / mergeTranscripts.
 */
import t, { type Test } from 'tap'
import { Conversation, legOffsets, mergeTranscripts, type ConversationSettings } from '../../src/call/conversation.js'
import type { LegControl } from '../../src/call/conversation-leg.js'
import type { EventEnvelope, EventSink } from '../../src/events/envelope.js'
import { createLogger } from '../../src/shared/logger.js'
import type { Utterance } from '../../src/soniox/index.js'
import { FakeTimers } from '../support/fake-timers.js'

const CONVERSATION_ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b'
const CALLER_LEG = '11111111-1111-4111-8111-111111111111'
const AGENT_LEG = '22222222-2222-4222-8222-222222222222'
const CHANNEL = {
  id: '1733400000.42',
  name: 'PJSIP/alice-00000001',
  caller: { name: 'Alice', number: '1001' },
  connected: { name: 'Bob', number: '2002' },
}

interface Rig {
  conversation: Conversation
  events: EventEnvelope[]
  clock: FakeTimers
  legEnded: string[]
  ended: Conversation[]
  logs: Array<Record<string, unknown>>
}

function rig(t: Test, settings: Partial<ConversationSettings> = {}): Rig {
  const events: EventEnvelope[] = []
  const sink: EventSink = { publish: (e) => void events.push(e), close: async () => {} }
  const clock = new FakeTimers(1_700_000_000_000)
  const logs: Array<Record<string, unknown>> = []
  const destination = { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }
  const legEnded: string[] = []
  const ended: Conversation[] = []
  const conversation = new Conversation({
    conversationId: CONVERSATION_ID,
    legs: [
      { callId: CALLER_LEG, role: 'caller' },
      { callId: AGENT_LEG, role: 'agent' },
    ],
    channel: CHANNEL,
    metadata: { ticket: 'T-1' },
    sink,
    clock,
    logger: createLogger({ level: 'debug', destination }),
    onLegEnded: (callId) => void legEnded.push(callId),
    onEnded: (c) => void ended.push(c),
    ...settings,
  })
  t.equal(conversation.state, 'open', 'a new conversation is open')
  return { conversation, events, clock, legEnded, ended, logs }
}

function utterance(index: number, text: string, startMs: number | null, endMs: number | null): Utterance {
  return { index, text, start_ms: startMs, end_ms: endMs, confidence: null, tokens: [{ text }], reason: 'endpoint' }
}

const HANGUP = { reason: 'hangup' as const, audioMs: 1000, errorCode: undefined }

/** A LegControl that records the digits it is given. */
function recordingControl(): LegControl & { digits: string[] } {
  const digits: string[] = []
  return { digits, dtmf: (digit) => void digits.push(digit) }
}

t.test('announce() publishes conversation.started on the conversation\'s own stream', async (t) => {
  const r = rig(t)
  t.equal(r.conversation.id, CONVERSATION_ID)
  r.conversation.announce()
  t.equal(r.events.length, 1)
  const e = r.events[0]!
  t.equal(e.type, 'conversation.started')
  t.equal(e.call_id, CONVERSATION_ID, 'call_id is the conversation id')
  t.equal(e.conversation_id, CONVERSATION_ID, 'and so is conversation_id')
  t.notOk('role' in e, 'the conversation\'s own events carry no role')
  t.equal(e.seq, 0)
  t.equal(e.time, new Date(1_700_000_000_000).toISOString(), 'the time is the clock\'s')
  t.match(e.id, /^evt_[0-9a-f-]{36}$/)
  t.same(e.data, {
    channel: { id: CHANNEL.id, name: CHANNEL.name },
    caller: { name: 'Alice', number: '1001' },
    connected: { name: 'Bob', number: '2002' },
    legs: [
      { call_id: CALLER_LEG, role: 'caller' },
      { call_id: AGENT_LEG, role: 'agent' },
    ],
    metadata: { ticket: 'T-1' },
  })
  t.not(e.data.caller, CHANNEL.caller, 'the caller is copied, not the settings\' object')
  t.same(r.ended, [], 'announcing ends nothing')
})

t.test('legOf: what each leg\'s call is given; undefined for another call id', async (t) => {
  const r = rig(t)
  const caller = r.conversation.legOf(CALLER_LEG)
  t.same({ conversationId: caller?.conversationId, role: caller?.role }, { conversationId: CONVERSATION_ID, role: 'caller' })
  t.equal(caller?.observer, r.conversation, 'the observer is the conversation')
  t.equal(r.conversation.legOf(AGENT_LEG)?.role, 'agent')
  t.equal(r.conversation.legOf('33333333-3333-4333-8333-333333333333'), undefined)
})

t.test('conversation.ended only once every leg ended, seq 1, reason hangup by default; callbacks once', async (t) => {
  const r = rig(t)
  r.conversation.announce()
  r.conversation.legStarted(CALLER_LEG, recordingControl())
  r.conversation.legStarted(AGENT_LEG, recordingControl())
  t.same(r.conversation.liveLegs, [CALLER_LEG, AGENT_LEG])
  r.clock.advance(5000)
  r.conversation.legEnded(CALLER_LEG, HANGUP)
  t.same(r.legEnded, [CALLER_LEG], 'onLegEnded for the first leg')
  t.same(r.conversation.liveLegs, [AGENT_LEG])
  t.equal(r.events.length, 1, 'one leg still live: no conversation.ended')
  t.equal(r.conversation.state, 'open')
  r.conversation.legEnded(CALLER_LEG, { reason: 'error', audioMs: 1, errorCode: 'ERR_X' })
  t.same(r.legEnded, [CALLER_LEG], 'a second legEnded of the same leg is ignored')
  r.clock.advance(250)
  r.conversation.legEnded(AGENT_LEG, { reason: 'hangup', audioMs: 900, errorCode: undefined })
  t.same(r.legEnded, [CALLER_LEG, AGENT_LEG])
  t.equal(r.conversation.state, 'ended')
  t.same(r.conversation.liveLegs, [])
  t.same(r.events.map((e) => [e.type, e.seq]), [['conversation.started', 0], ['conversation.ended', 1]])
  const ended = r.events[1]!
  t.equal(ended.call_id, CONVERSATION_ID)
  t.equal(ended.conversation_id, CONVERSATION_ID)
  t.same(ended.data, {
    reason: 'hangup',
    duration_ms: 5250,
    legs: [
      { call_id: CALLER_LEG, role: 'caller', reason: 'hangup', audio_ms: 1000, offset_ms: 0, utterances: 0, error: null },
      { call_id: AGENT_LEG, role: 'agent', reason: 'hangup', audio_ms: 900, offset_ms: 0, utterances: 0, error: null },
    ],
    transcript: [],
    metadata: { ticket: 'T-1' },
  })
  t.same(r.ended, [r.conversation], 'onEnded once, with the conversation')
  // Nothing more: a late legEnded, legMissing, or utterance publishes nothing.
  r.conversation.legEnded(AGENT_LEG, HANGUP)
  r.conversation.legMissing(CALLER_LEG, 'ERR_ARI_TAP_NO_STREAM')
  t.equal(r.events.length, 2, 'nothing after conversation.ended')
  t.equal(r.ended.length, 1)
  t.equal(r.legEnded.length, 2)
})

t.test('onLegEnded runs before conversation.ended is published for the last leg', async (t) => {
  const order: string[] = []
  const events: EventEnvelope[] = []
  const r = rig(t, {
    sink: { publish: (e) => void (events.push(e), order.push(e.type)), close: async () => {} },
    onLegEnded: (callId) => void order.push(`leg ${callId === CALLER_LEG ? 'caller' : 'agent'}`),
    onEnded: () => void order.push('onEnded'),
  })
  r.conversation.legEnded(AGENT_LEG, HANGUP)
  r.conversation.legEnded(CALLER_LEG, HANGUP)
  t.same(order, ['leg agent', 'leg caller', 'conversation.ended', 'onEnded'])
  t.equal(events[0]?.seq, 0, 'without announce() the ended event is the stream\'s first')
})

t.test('legMissing: the leg counts as ended with its error; the reason is error', async (t) => {
  const r = rig(t)
  r.conversation.announce()
  r.conversation.legEnded(CALLER_LEG, HANGUP)
  r.conversation.legMissing(AGENT_LEG, 'ERR_ARI_TAP_NO_STREAM')
  t.same(r.legEnded, [CALLER_LEG], 'a missing leg is not a leg that ended (no onLegEnded)')
  t.equal(r.conversation.state, 'ended')
  const ended = r.events[1]!
  t.equal(ended.type, 'conversation.ended')
  t.equal(ended.data.reason, 'error')
  t.same((ended.data.legs as unknown[])[1], { call_id: AGENT_LEG, role: 'agent', reason: 'error', audio_ms: 0, offset_ms: 0, utterances: 0, error: { code: 'ERR_ARI_TAP_NO_STREAM' } })
  t.equal(r.ended.length, 1)
  t.match(r.logs.find((l) => l.msg === 'conversation leg never streamed'), { level: 40, callId: AGENT_LEG, role: 'agent', errorCode: 'ERR_ARI_TAP_NO_STREAM' })
})

t.test('legMissing for both legs ends the conversation; for an unknown or ended leg it does nothing', async (t) => {
  const r = rig(t)
  r.conversation.legMissing('33333333-3333-4333-8333-333333333333', 'ERR_ARI_TAP_FAILED')
  r.conversation.legEnded(CALLER_LEG, HANGUP)
  r.conversation.legMissing(CALLER_LEG, 'ERR_ARI_TAP_FAILED')
  t.equal(r.conversation.state, 'open', 'the agent leg is still awaited')
  r.conversation.legMissing(AGENT_LEG, 'ERR_ARI_TAP_FAILED')
  const legs = r.events[0]?.data.legs as Array<Record<string, unknown>>
  t.same(legs.map((l) => [l.reason, l.error]), [['hangup', null], ['error', { code: 'ERR_ARI_TAP_FAILED' }]], 'the ended caller leg keeps its own end')
})

t.test('a leg that ended with an error code makes the reason error', async (t) => {
  const r = rig(t)
  r.conversation.legEnded(CALLER_LEG, { reason: 'hangup', audioMs: 500, errorCode: 'ERR_SONIOX_CLOSED' })
  r.conversation.legEnded(AGENT_LEG, HANGUP)
  t.equal(r.events[0]?.data.reason, 'error')
  t.same((r.events[0]?.data.legs as Array<Record<string, unknown>>)[0]?.error, { code: 'ERR_SONIOX_CLOSED' })
})

t.test('ending(): the first reason wins, over the default and over a leg\'s error', async (t) => {
  const r = rig(t)
  r.conversation.ending('stopped')
  r.conversation.ending('shutdown')
  r.conversation.legEnded(CALLER_LEG, { reason: 'server_hangup', audioMs: 10, errorCode: 'ERR_X' })
  r.conversation.legEnded(AGENT_LEG, HANGUP)
  t.equal(r.events[0]?.data.reason, 'stopped')

  const s = rig(t)
  s.conversation.ending('shutdown')
  s.conversation.legEnded(CALLER_LEG, HANGUP)
  s.conversation.ending('error')
  s.conversation.legEnded(AGENT_LEG, HANGUP)
  t.equal(s.events[0]?.data.reason, 'shutdown')
})

t.test('the merged transcript: both legs on one timeline (offsets from audioStarted), in time order', async (t) => {
  const r = rig(t)
  r.conversation.announce()
  // The agent's stream's first frame came 40 ms after the caller's.
  r.conversation.audioStarted(CALLER_LEG, 2000)
  r.conversation.audioStarted(AGENT_LEG, 2040)
  r.conversation.audioStarted(AGENT_LEG, 9999) // only the first counts
  r.conversation.utterance(CALLER_LEG, utterance(0, 'hello', 100, 600))
  r.conversation.utterance(AGENT_LEG, utterance(0, 'hi there', 500, 900)) // 540 on the shared timeline
  r.conversation.utterance(CALLER_LEG, utterance(1, 'how are you', 1000, 1500))
  r.conversation.utterance(AGENT_LEG, utterance(1, 'fine', 960, 1200)) // 1000: ties with the caller's
  r.conversation.utterance('33333333-3333-4333-8333-333333333333', utterance(0, 'stranger', 0, 1))
  r.conversation.legEnded(AGENT_LEG, HANGUP)
  r.conversation.legEnded(CALLER_LEG, HANGUP)
  const data = r.events[1]!.data
  t.same(data.transcript, [
    { role: 'caller', call_id: CALLER_LEG, start_ms: 100, end_ms: 600, text: 'hello' },
    { role: 'agent', call_id: AGENT_LEG, start_ms: 540, end_ms: 940, text: 'hi there' },
    { role: 'caller', call_id: CALLER_LEG, start_ms: 1000, end_ms: 1500, text: 'how are you' },
    { role: 'agent', call_id: AGENT_LEG, start_ms: 1000, end_ms: 1240, text: 'fine' },
  ], 'shifted by 40 ms, interleaved, the tie in leg order (the caller first), the stranger\'s words nowhere')
  const legs = data.legs as Array<Record<string, unknown>>
  t.same(legs.map((l) => [l.role, l.offset_ms, l.utterances]), [['caller', 0, 2], ['agent', 40, 2]])
})

t.test('the earlier leg is time 0 whichever leg it is; utterances without times keep their place', async (t) => {
  const r = rig(t)
  r.conversation.audioStarted(AGENT_LEG, 5000)
  r.conversation.audioStarted(CALLER_LEG, 5012.6) // rounds to 13
  r.conversation.utterance(AGENT_LEG, utterance(0, 'a0', 0, 100))
  r.conversation.utterance(AGENT_LEG, utterance(1, 'a1', null, null)) // after a0, at a0's place
  r.conversation.utterance(AGENT_LEG, utterance(2, 'a2', 800, 900))
  r.conversation.utterance(CALLER_LEG, utterance(0, 'c0', null, null)) // before any caller time: at the caller's offset
  r.conversation.utterance(CALLER_LEG, utterance(1, 'c1', 300, 400))
  r.conversation.legEnded(CALLER_LEG, HANGUP)
  r.conversation.legEnded(AGENT_LEG, HANGUP)
  const transcript = r.events[0]!.data.transcript as Array<Record<string, unknown>>
  t.same(transcript.map((u) => [u.text, u.start_ms, u.end_ms]), [
    ['a0', 0, 100],
    ['a1', null, null],
    ['c0', null, null],
    ['c1', 313, 413],
    ['a2', 800, 900],
  ])
  const legs = r.events[0]!.data.legs as Array<Record<string, unknown>>
  t.same(legs.map((l) => l.offset_ms), [13, 0], 'listed in the settings\' leg order, offsets rounded')
})

t.test('a leg without audio has offset 0 and does not move time 0', async (t) => {
  const r = rig(t)
  r.conversation.audioStarted(AGENT_LEG, 7000)
  r.conversation.utterance(AGENT_LEG, utterance(0, 'alone', 10, 20))
  r.conversation.legMissing(CALLER_LEG, 'ERR_ARI_TAP_NO_STREAM')
  r.conversation.legEnded(AGENT_LEG, HANGUP)
  const data = r.events[0]!.data
  t.same((data.legs as Array<Record<string, unknown>>).map((l) => l.offset_ms), [0, 0])
  t.same(data.transcript, [{ role: 'agent', call_id: AGENT_LEG, start_ms: 10, end_ms: 20, text: 'alone' }])
})

t.test('dtmf(role) reaches only the live leg of that role', async (t) => {
  const r = rig(t)
  const caller = recordingControl()
  const agent = recordingControl()
  r.conversation.dtmf('caller', '1') // no leg started yet: nowhere, and no throw
  r.conversation.legStarted(CALLER_LEG, caller)
  r.conversation.legStarted(AGENT_LEG, agent)
  r.conversation.legStarted('33333333-3333-4333-8333-333333333333', recordingControl())
  r.conversation.dtmf('caller', '5')
  r.conversation.dtmf('agent', '7')
  r.conversation.dtmf('agent', '#')
  r.conversation.dtmf('supervisor', '9')
  t.same(caller.digits, ['5'])
  t.same(agent.digits, ['7', '#'])
  r.conversation.legEnded(CALLER_LEG, HANGUP)
  r.conversation.dtmf('caller', '2')
  t.same(caller.digits, ['5'], 'an ended leg gets no more digits')
  r.conversation.dtmf('agent', '3')
  t.same(agent.digits, ['7', '#', '3'])
  r.conversation.legMissing(AGENT_LEG, 'ERR_X')
  r.conversation.dtmf('agent', '4')
  t.same(agent.digits, ['7', '#', '3'], 'nor does one counted as missing')
})

t.test('legOffsets: ms after the earliest first frame, rounded; 0 without audio', async (t) => {
  t.same([...legOffsets([{ callId: 'a', audioStartedAt: 100 }, { callId: 'b', audioStartedAt: 140.4 }, { callId: 'c', audioStartedAt: undefined }])], [['a', 0], ['b', 40], ['c', 0]])
  t.same([...legOffsets([{ callId: 'a', audioStartedAt: 250.5 }, { callId: 'b', audioStartedAt: 100 }])], [['a', 151], ['b', 0]])
  t.same([...legOffsets([{ callId: 'a', audioStartedAt: undefined }, { callId: 'b', audioStartedAt: undefined }])], [['a', 0], ['b', 0]], 'no audio at all: every offset 0 (not NaN)')
  t.same([...legOffsets([])], [])
})

t.test('mergeTranscripts: pure; shifts, orders, keeps leg order on ties and places untimed utterances', async (t) => {
  const legs = [
    { callId: 'A', role: 'caller', utterances: [utterance(0, 'a0', 0, 10), utterance(1, 'a1', 50, 60), utterance(2, 'a2', null, null)] },
    { callId: 'B', role: 'agent', utterances: [utterance(0, 'b0', null, 5), utterance(1, 'b1', 10, 20), utterance(2, 'b2', 30, null)] },
  ]
  const frozen = JSON.stringify(legs)
  const merged = mergeTranscripts(legs, new Map([['A', 0], ['B', 20]]))
  t.same(merged.map((u) => [u.text, u.start_ms, u.end_ms]), [
    ['a0', 0, 10],
    ['b0', null, 25], // untimed first utterance of B: at B's offset (20)
    ['b1', 30, 40],
    ['a1', 50, 60], // ties with b2 (30+20): A first
    ['a2', null, null], // after a1 (its leg's previous), before b2 by leg order
    ['b2', 50, null],
  ])
  t.same(Object.keys(merged[0]!), ['role', 'call_id', 'start_ms', 'end_ms', 'text'], 'only these fields')
  t.equal(JSON.stringify(legs), frozen, 'the legs\' utterances are not changed')
  t.same(mergeTranscripts(legs, new Map()).map((u) => u.text), ['a0', 'b0', 'b1', 'b2', 'a1', 'a2'], 'a leg missing from the offsets has offset 0')
  t.same(mergeTranscripts([], new Map()), [])
})
