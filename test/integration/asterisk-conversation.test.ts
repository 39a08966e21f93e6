/**
 * Both parties of a bridged call transcribed as one conversation, against a real Asterisk
 * (test/support/asterisk-conversation.ts): ARI snoops + externalMedia streams into the server,
 * two legs with roles, DTMF from ARI, the merged transcript, and each way a conversation ends.
 *
 * Skipped, with the reason, when there is no Asterisk at ASTERISK_PREFIX (default /opt/asterisk).
 */
import t, { type Test } from 'tap'
import { asteriskMissing } from '../support/asterisk.js'
import { conversationEvents, startConversationRig, withoutSilentFrames, RATE, type ConversationRig } from '../support/asterisk-conversation.js'
import { expectedTranscript } from '../support/fake-soniox.js'

const missing = asteriskMissing()

/** The Soniox session whose start message came from the leg (client_reference_id is the call id). */
function sessionOf(rig: ConversationRig, callId: string) {
  return rig.h.soniox.sessions.filter((s) => s.startMessage?.client_reference_id === callId)
}

/** Checks one leg end to end: its audio is exactly its party's file, its transcript the stand-in's words for it. */
function checkLeg(t: Test, rig: ConversationRig, leg: any[], role: string, audio: Buffer, digit: string) {
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
  t.ok(withoutSilentFrames(session.audio).equals(audio), `the ${role} leg carried exactly its party's file (${audio.length} bytes), the rest zeros`)
  const expected = expectedTranscript(session.audio, RATE).transcript
  t.ok(expected.trim().length > 0, `the stand-in heard words on the ${role} leg`)
  t.equal(ended.data.transcript, expected, `the ${role} leg's transcript is exactly the stand-in's words`)
  const finals = leg.filter((e) => e.type === 'transcript.final').map((e) => e.data.text).join('')
  t.equal(finals, expected, `the ${role} leg's transcript.final events add up to it`)
  t.same(leg.filter((e) => e.type === 'call.dtmf').map((e) => e.data.digit), [digit], `the ${role} party's digit is on the ${role} leg`)
  t.ok(ended.data.silence_frames_sent > 0, 'the server sent the tap stream silence all along')
  return { callId, ended, expected }
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
})
