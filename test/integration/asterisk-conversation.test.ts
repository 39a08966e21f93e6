/**
 * Both parties of a bridged call transcribed as one conversation, against a real Asterisk
 * (test/support/asterisk-conversation.ts): ARI snoops + externalMedia streams into the server,
 * two legs with roles, DTMF from ARI, the merged transcript, and each way a conversation ends.
 *
 * Skipped, with the reason, when there is no Asterisk at ASTERISK_PREFIX (default /opt/asterisk).
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { asteriskMissing } from '../support/asterisk.js'
import { waitUntil } from '../support/wait.js'
import { AriRest } from '../../src/ari/index.js'
import { ARI_PASSWORD, ARI_USER, HTTP_TOKEN, type CallOptions } from '../support/asterisk-conversation.js'
import { conversationEvents, startConversationRig, withoutSilentFrames, RATE, type ConversationRig } from '../support/asterisk-conversation.js'
import { expectedTranscript } from '../support/fake-soniox.js'

const missing = asteriskMissing()

/** The Soniox session whose start message came from the leg (client_reference_id is the call id). */
function sessionOf(rig: ConversationRig, callId: string) {
  return rig.h.soniox.sessions.filter((s) => s.startMessage?.client_reference_id === callId)
}

/** Checks one leg end to end: its audio is exactly its party's file, its transcript the stand-in's words for it. */
function checkLeg(t: Test, rig: ConversationRig, leg: any[], role: string, audio: Buffer, digit: string | undefined) {
  const callId = leg[0].call_id
  t.ok(leg.every((e) => e.role === role), `every event of the ${role} leg names role ${role}`)
  t.same(leg.map((e) => e.seq), leg.map((_, i) => i), `the ${role} leg's seq is gapless`)
  const ended = leg.find((e) => e.type === 'call.ended')
  t.ok(ended, `the ${role} leg has call.ended`)
  t.equal(ended.data.sample_rate, RATE, `the ${role} leg is slin16`)
  const sessions = sessionOf(rig, callId)
  t.equal(sessions.length, 1, `one Soniox session for the ${role} leg`)
  const session = sessions[0]!
  t.same(session.violations, [], 'the stand-in saw nothing Soniox would refuse')
  const voiced = withoutSilentFrames(session.audio)
  if (!voiced.equals(audio)) {
    const at = voiced.findIndex((b, i) => b !== audio[i])
    t.comment(`${role}: voiced ${voiced.length} bytes, file ${audio.length}; first difference at byte ${at}; file found at ${voiced.indexOf(audio.subarray(0, 640))}`)
  }
  t.ok(voiced.equals(audio), `the ${role} leg carried exactly its party's file (${audio.length} bytes), the rest zeros`)
  const expected = expectedTranscript(session.audio, RATE).transcript
  t.ok(expected.trim().length > 0, `the stand-in heard words on the ${role} leg`)
  t.equal(ended.data.transcript, expected, `the ${role} leg's transcript is exactly the stand-in's words`)
  const finals = leg.filter((e) => e.type === 'transcript.final').map((e) => e.data.text).join('')
  t.equal(finals, expected, `the ${role} leg's transcript.final events add up to it`)
  if (digit !== undefined) t.same(leg.filter((e) => e.type === 'call.dtmf').map((e) => e.data.digit), [digit], `the ${role} party's digit is on the ${role} leg`)
  t.ok(ended.data.silence_frames_sent > 0, 'the server sent the tap stream silence all along')
  return { callId, ended, expected }
}


/** Every event of a conversation once it and both legs have ended. */
async function finishedConversation(rig: ConversationRig, conversationId: string) {
  await conversationEvents(rig.h, conversationId)
  await rig.h.receiver.waitFor((evs) => evs.filter((e) => e.conversation_id === conversationId && e.type === 'call.ended').length === 2, 30_000)
  const { own, legs } = await conversationEvents(rig.h, conversationId)
  const byRole = new Map([...legs.values()].map((events) => [events[0].role as string, events]))
  return { own, legs, byRole }
}

/** The conversation.started of call `callNum` (its metadata or the conversation's tap log names it). */
async function startedConversation(rig: ConversationRig, predicate: (e: any) => boolean = () => true): Promise<string> {
  const events = await rig.h.receiver.waitFor((evs) => evs.some((e) => e.type === 'conversation.started' && predicate(e)), 30_000)
  return events.find((e) => e.type === 'conversation.started' && predicate(e)).conversation_id
}

/** Resolves when the server logged the tap of this conversation as up (snoops, streams and bridges in place). */
async function tapUp(rig: ConversationRig, conversationId: string): Promise<void> {
  await waitUntil(() => rig.h.logs.some((r) => r.msg === 'tap up' && r.conversationId === conversationId), `tap ${conversationId} up`, 30_000)
}

/**
 * Originates a call whose channel carries AUDIOSOCKET_SONIOX_TAP, waits for its tap to be up (so no
 * word is missed), then lets its parties speak; resolves with the conversation id.
 */
async function tappedCall(rig: ConversationRig, options: Omit<CallOptions, 'waitReady'> & { tapVariable: string }): Promise<string> {
  const callNum = rig.call({ ...options, waitReady: true })
  const conversationId = await startedConversation(rig)
  await tapUp(rig, conversationId)
  await rig.ready(callNum)
  return conversationId
}

function ari(rig: ConversationRig): AriRest {
  return new AriRest({ url: `http://127.0.0.1:${rig.ariPort}`, username: ARI_USER, password: ARI_PASSWORD })
}

/** Ids of this app's tap channels and bridges still in Asterisk. */
async function tapObjects(rig: ConversationRig): Promise<string[]> {
  const rest = ari(rig)
  try {
    const [channels, bridges] = await Promise.all([rest.listChannels(), rest.listBridges()])
    return [...channels.map((c) => c.id), ...bridges.map((b) => b.id)].filter((id) => id.startsWith('audiosocket-soniox-'))
  } finally {
    rest.close()
  }
}

/**
 * This app's tap objects once Asterisk has removed them all (a hangup of a Stasis channel is
 * answered before the channel is gone), or what is left after 10 s.
 */
async function tapObjectsGone(rig: ConversationRig): Promise<string[]> {
  let left = await tapObjects(rig)
  for (let attempt = 0; attempt < 200 && left.length > 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    left = await tapObjects(rig)
  }
  return left
}

function checkMerged(t: Test, ended: any, caller: { expected: string }, agent: { expected: string }) {
  const merged = ended.transcript as Array<{ role: string; start_ms: number; end_ms: number; text: string }>
  t.equal(merged.filter((u) => u.role === 'caller').map((u) => u.text).join(''), caller.expected, "the merged transcript holds all of the caller's words")
  t.equal(merged.filter((u) => u.role === 'agent').map((u) => u.text).join(''), agent.expected, "and all of the agent's")
  t.ok(merged.every((u, i) => i === 0 || u.start_ms >= merged[i - 1]!.start_ms), 'in time order')
  return merged
}
t.test('POST /conversations from the dialplan (CURL): two legs, exact transcripts, roles, DTMF, merged in time order', { skip: missing ?? false }, async (t) => {
  const rig = await startConversationRig(t, { env: { AUDIOSOCKET_SILENCE_MODE: 'off' } })
  rig.call({ byCurl: true, callerHold: 2 })
  const started = await rig.h.receiver.waitFor((evs) => evs.some((e) => e.type === 'conversation.started'), 30_000)
  const conversationId = started.find((e) => e.type === 'conversation.started').conversation_id
  const { own, legs } = await conversationEvents(rig.h, conversationId)
  await rig.h.receiver.waitFor((evs) => evs.filter((e) => e.conversation_id === conversationId && e.type === 'call.ended').length === 2, 30_000)
  const { legs: allLegs } = await conversationEvents(rig.h, conversationId)

  t.same(own.map((e) => e.type), ['conversation.started', 'conversation.ended'], 'the conversation stream: started, ended')
  const start = own[0]
  t.match(start.data.channel, { name: /^Local\/caller@conv-[0-9a-f]+;2$/ }, 'conversation.started names the tapped channel')
  t.same(start.data.metadata, { callnum: '1' }, 'the metadata posted with the tap')
  t.same(start.data.legs.map((l: any) => l.role), ['caller', 'agent'], 'two legs: caller, agent')
  t.equal(allLegs.size, 2, 'two legs streamed')
  const byRole = new Map([...allLegs.values()].map((events) => [events[0].role, events]))
  const caller = checkLeg(t, rig, byRole.get('caller')!, 'caller', rig.callerAudio, '5')
  const agent = checkLeg(t, rig, byRole.get('agent')!, 'agent', rig.agentAudio, '7')
  t.equal(legs.size, 2)

  const ended = own[1].data
  t.equal(ended.reason, 'hangup', 'the call hung up')
  t.same(ended.legs.map((l: any) => [l.call_id, l.role]), [[caller.callId, 'caller'], [agent.callId, 'agent']], 'conversation.ended lists both legs')
  const merged = ended.transcript as Array<{ role: string; start_ms: number; end_ms: number; text: string }>
  t.equal(merged.filter((u) => u.role === 'caller').map((u) => u.text).join(''), caller.expected, "the merged transcript holds all of the caller's words")
  t.equal(merged.filter((u) => u.role === 'agent').map((u) => u.text).join(''), agent.expected, "and all of the agent's")
  t.ok(merged.every((u, i) => i === 0 || u.start_ms >= merged[i - 1]!.start_ms), 'in time order')
  const lastCaller = merged.map((u) => u.role).lastIndexOf('caller')
  const firstAgent = merged.map((u) => u.role).indexOf('agent')
  t.ok(lastCaller < firstAgent, "the caller spoke first, then the agent (who waits 2.5 s, after the caller's 2 s)")
  t.same(rig.h.logs.filter((r) => typeof r.msg === 'string' && r.msg.startsWith('ARI event filter not set')), [], 'Asterisk took the event filter (only the events the taps act on)')
})

t.test('AUDIOSOCKET_SONIOX_TAP on both channels: one conversation, the older channel tapped; the agent hangs up first', { skip: missing ?? false }, async (t) => {
  const rig = await startConversationRig(t)
  const conversationId = await tappedCall(rig, { tapVariable: 'caller,agent', agentHold: 0.2, callerHold: 30 })
  const { own, byRole } = await finishedConversation(rig, conversationId)
  t.equal(rig.h.receiver.events.filter((e) => e.type === 'conversation.started').length, 1, 'one conversation though both channels carry the variable')
  t.match(own[0].data.channel, { name: /^Local\/caller@conv-[0-9a-f]+;2$/ }, "the caller's channel (the older one) is the tapped one")
  const caller = checkLeg(t, rig, byRole.get('caller')!, 'caller', rig.callerAudio, '5')
  const agent = checkLeg(t, rig, byRole.get('agent')!, 'agent', rig.agentAudio, '7')
  t.equal(own[1].data.reason, 'hangup', 'the agent hung up: the call, and the conversation, ended')
  checkMerged(t, own[1].data, caller, agent)
  t.same(await tapObjectsGone(rig), [], 'no tap channel or bridge is left in Asterisk')
})

t.test('DELETE /conversations/{id} mid-call: the legs end, the call goes on', { skip: missing ?? false }, async (t) => {
  const rig = await startConversationRig(t)
  const conversationId = await tappedCall(rig, { tapVariable: '1', callerHold: 60, agentHold: 60 })
  // Both parties have spoken and pressed their digit.
  await rig.h.receiver.waitFor((evs) => evs.filter((e) => e.conversation_id === conversationId && e.type === 'call.dtmf').length === 2, 30_000)
  const res = await fetch(`http://127.0.0.1:${rig.httpPort}/conversations/${conversationId}`, { method: 'DELETE', headers: { authorization: `Bearer ${HTTP_TOKEN}` } })
  t.equal(res.status, 204, 'DELETE answers 204')
  const { own, byRole } = await finishedConversation(rig, conversationId)
  t.equal(own[1].data.reason, 'stopped', 'conversation.ended says stopped')
  checkLeg(t, rig, byRole.get('caller')!, 'caller', rig.callerAudio, '5')
  checkLeg(t, rig, byRole.get('agent')!, 'agent', rig.agentAudio, '7')
  t.same(await tapObjectsGone(rig), [], 'the tap channels and bridges are gone')
  const rest = ari(rig)
  t.teardown(() => rest.close())
  const tapped = await rest.getChannel(own[0].data.channel.id)
  t.ok(tapped, 'the call itself is still up')
  const again = await fetch(`http://127.0.0.1:${rig.httpPort}/conversations/${conversationId}`, { method: 'DELETE', headers: { authorization: `Bearer ${HTTP_TOKEN}` } })
  t.equal(again.status, 404, 'a second DELETE: 404')
  await rig.ast.rx('channel request hangup all')
})

t.test('the server ends one stream first: that leg ends, the other goes on to the end of the call', { skip: missing ?? false }, async (t) => {
  const rig = await startConversationRig(t)
  const callNum = rig.call({ tapVariable: '1', waitReady: true, callerHold: 0.5 })
  const conversationId = await startedConversation(rig)
  await tapUp(rig, conversationId)
  const started = await rig.h.receiver.waitFor((evs) => evs.filter((e) => e.conversation_id === conversationId && e.type === 'call.started').length === 2, 30_000)
  const agentLeg = started.find((e) => e.conversation_id === conversationId && e.type === 'call.started' && e.role === 'agent').call_id
  // The agent's stream is ended by the server (as a protocol violation or a shutdown of that call would) before anyone speaks.
  const calls = [...((rig.h.app.server as any).calls as Set<any>)]
  await calls.find((c) => c.callId === agentLeg).shutdown()
  await rig.ready(callNum)
  const { own, byRole } = await finishedConversation(rig, conversationId)
  const agentEnded = byRole.get('agent')!.find((e: any) => e.type === 'call.ended')
  t.equal(agentEnded.data.reason, 'shutdown', "the agent leg ended by the server's hand")
  t.equal(agentEnded.data.audio_ms < 1000, true, 'before the agent spoke')
  checkLeg(t, rig, byRole.get('caller')!, 'caller', rig.callerAudio, '5')
  t.equal(own[1].data.reason, 'hangup', 'the conversation ended with the call')
  t.same(await tapObjectsGone(rig), [], 'no tap channel or bridge is left')
})

t.test('Soniox fails on one leg: the other leg is untouched', { skip: missing ?? false }, async (t) => {
  const rig = await startConversationRig(t)
  // The first session to start (one of the two legs) is refused for good; the other is served.
  rig.h.soniox.rejectNextSessions(1, { code: 400, type: 'invalid_request', message: 'Invalid request.' })
  const conversationId = await tappedCall(rig, { tapVariable: '1' })
  const { own, byRole } = await finishedConversation(rig, conversationId)
  const ends = ['caller', 'agent'].map((role) => byRole.get(role)!.find((e: any) => e.type === 'call.ended'))
  const failed = ends.filter((e) => e.data.error !== null)
  t.equal(failed.length, 1, 'one leg reports the transcription failure')
  const healthy = ends.find((e) => e.data.error === null)
  const role = healthy.role as 'caller' | 'agent'
  checkLeg(t, rig, byRole.get(role)!, role, role === 'caller' ? rig.callerAudio : rig.agentAudio, role === 'caller' ? '5' : '7')
  t.equal(own[1].data.reason, 'hangup', 'conversation.ended: the call hung up')
  t.match(own[1].data.legs.find((l: any) => l.call_id === failed[0].call_id), { error: { code: /^ERR_SONIOX/ } }, 'and names the failed leg')
})

t.test('shutdown (drain, then stop): the legs end with reason shutdown, every tap object is removed, the call goes on', { skip: missing ?? false }, async (t) => {
  const rig = await startConversationRig(t)
  const conversationId = await tappedCall(rig, { tapVariable: '1', callerHold: 60, agentHold: 60 })
  await rig.h.receiver.waitFor((evs) => evs.filter((e) => e.conversation_id === conversationId && e.type === 'call.dtmf').length === 2, 30_000)
  t.equal(await rig.h.app.drain(50), false, 'drain: the tapped legs are live calls, still going')
  const events = rig.h.receiver.events
  await rig.stop()
  const own = events.filter((e) => e.call_id === conversationId)
  t.same(own.map((e) => e.type), ['conversation.started', 'conversation.ended'], 'conversation.ended was delivered before the server stopped')
  t.equal(own[1].data.reason, 'shutdown', 'reason shutdown')
  const legEnds = events.filter((e) => e.conversation_id === conversationId && e.type === 'call.ended')
  t.same(legEnds.map((e) => e.data.reason).sort(), ['shutdown', 'shutdown'], 'both legs ended with reason shutdown')
  t.same(await tapObjectsGone(rig), [], 'no tap channel or bridge is left in Asterisk')
  const rest = ari(rig)
  t.teardown(() => rest.close())
  t.ok(await rest.getChannel(own[0].data.channel.id), 'the call itself is still up')
  await rig.ast.rx('channel request hangup all')
})

t.test('ARI drops mid-conversation: the tap goes on, the events socket comes back, orphans are removed (at start and at reconnect)', { skip: missing ?? false }, async (t) => {
  const orphanAtStart = `audiosocket-soniox-${randomUUID()}-in-bridge`
  const rig = await startConversationRig(t, {
    ariProxy: true,
    beforeServer: async (url) => {
      const rest = new AriRest({ url, username: ARI_USER, password: ARI_PASSWORD })
      await rest.createBridge({ bridgeId: orphanAtStart, type: 'mixing' })
      rest.close()
    },
  })
  t.same(await tapObjectsGone(rig), [], `a bridge a previous run left (${orphanAtStart}) is removed at start`)
  const conversationId = await tappedCall(rig, { tapVariable: '1', callerHold: 2 })
  await rig.h.receiver.waitFor((evs) => evs.some((e) => e.conversation_id === conversationId && e.role === 'caller' && e.type === 'transcript.final'), 30_000)
  const conversations = rig.h.app.conversations!
  rig.cutAri()
  await waitUntil(() => conversations.eventsState !== 'connected', 'the events socket noticed the cut', 10_000)
  // While the server is away from ARI, a tap bridge nobody owns appears (as a crashed run would leave it).
  const orphan = `audiosocket-soniox-${randomUUID()}-out-bridge`
  const rest = ari(rig)
  t.teardown(() => rest.close())
  await rest.createBridge({ bridgeId: orphan, type: 'mixing' })
  await conversations.connected()
  t.pass('the events socket reconnected')
  const { own, byRole } = await finishedConversation(rig, conversationId)
  checkLeg(t, rig, byRole.get('caller')!, 'caller', rig.callerAudio, undefined)
  checkLeg(t, rig, byRole.get('agent')!, 'agent', rig.agentAudio, undefined)
  t.equal(own[1].data.reason, 'hangup', 'the conversation ended with the call')
  t.same(await tapObjectsGone(rig), [], `the orphan ${orphan} and the tap's own objects are gone`)
})

t.test('10 concurrent tapped calls, 5 times: exact legs, and every hangup completes (no Asterisk stall)', { skip: missing ?? false }, async (t) => {
  const rig = await startConversationRig(t)
  for (let round = 1; round <= 5; round++) {
    const calls = Array.from({ length: 10 }, () => rig.call({ byCurl: true }))
    const events = await rig.h.receiver.waitFor(
      (evs) => evs.filter((e) => e.type === 'conversation.ended' && calls.includes(String(e.data.metadata?.callnum))).length === calls.length,
      120_000,
    )
    const ids = events.filter((e) => e.type === 'conversation.ended' && calls.includes(String(e.data.metadata?.callnum))).map((e) => e.conversation_id)
    let exact = 0
    for (const id of ids) {
      const { own, byRole } = await finishedConversation(rig, id)
      const legsExact = (['caller', 'agent'] as const).every((role) => {
        const leg = byRole.get(role)
        const session = leg && sessionOf(rig, leg[0].call_id)[0]
        const ended = leg?.find((e: any) => e.type === 'call.ended')
        return session !== undefined && withoutSilentFrames(session.audio).equals(role === 'caller' ? rig.callerAudio : rig.agentAudio) && ended?.data.transcript === expectedTranscript(session.audio, RATE).transcript
      })
      if (legsExact && own[1].data.reason === 'hangup') exact++
      else {
        t.comment(`conversation ${id}: ${JSON.stringify(own[1].data.legs)} reason ${own[1].data.reason}`)
        for (const [role, leg] of byRole) {
          const session = sessionOf(rig, leg[0].call_id)[0]
          t.comment(`${role}: sessions ${sessionOf(rig, leg[0].call_id).length}, audio ${session?.audio.length}, voiced ${session && withoutSilentFrames(session.audio).length}`)
        }
      }
    }
    t.equal(exact, 10, `round ${round}: 10 conversations, both legs exact, ended by hangup`)
    // A stalled channel container (asterisk#2089) would leave channels behind and block hangups.
    let channels = await rig.ast.rx('core show channels count')
    for (let i = 0; i < 200 && !/^0 active channels/m.test(channels); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      channels = await rig.ast.rx('core show channels count')
    }
    t.match(channels, /^0 active channels/m, `round ${round}: every channel hung up`)
  }
  t.same(await tapObjectsGone(rig), [], 'no tap channel or bridge is left')
})

t.test('a blind transfer: the caller is moved to a second agent; the snoop stays, the out leg now carries the new party', { skip: missing ?? false }, async (t) => {
  const rig = await startConversationRig(t)
  // The first agent says nothing: after 3 s (the caller has spoken and pressed 5) it blind-transfers the caller to 600.
  const conversationId = await tappedCall(rig, { tapVariable: '1', agentTransfers: true, agentDelay: 3, callerHold: 60 })
  const { own, byRole } = await finishedConversation(rig, conversationId).catch(async (err) => {
    t.comment(await rig.ast.diagnostics())
    throw err
  })
  t.equal(rig.h.receiver.events.filter((e) => e.type === 'conversation.started').length, 1, 'still one conversation: the new bridge is not tapped again')
  checkLeg(t, rig, byRole.get('caller')!, 'caller', rig.callerAudio, '5')
  // The out leg: the first agent was silent, so its audio is the second agent's file alone.
  const agentLeg = byRole.get('agent')!
  checkLeg(t, rig, agentLeg, 'agent', rig.agent2Audio, undefined)
  const digits = agentLeg.filter((e: any) => e.type === 'call.dtmf').map((e: any) => e.data.digit)
  t.equal(digits.at(-1), '8', `the second agent's digit is on the agent leg, last (before it: the first agent's transfer keys ${digits.slice(0, -1).join('')})`)
  t.equal(own[1].data.reason, 'hangup', 'the second agent hung up: the call and the conversation ended')
  t.same(await tapObjectsGone(rig), [], 'no tap channel or bridge is left')
})
