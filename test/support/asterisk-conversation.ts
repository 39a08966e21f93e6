/**
 * A bridged two-party call on a real Asterisk, for the conversation (ARI tap) tests: a private
 * Asterisk with ARI on a loopback port, the server in process (startHarness) with ARI_URL pointing
 * at it, and calls between two Local channels whose parties play known slin16 files.
 *
 * The call: a call file originates `Local/caller@conv/n` (every channel slin16, so nothing is
 * transcoded). Its `;2` half runs the `caller` extension: optionally asks the server to tap it
 * (CURL, the line the README shows), then Dial(Local/agent@conv/n). The parties are `;1` of the
 * caller (extension `callerparty`) and `;2` of the agent (extension `agent`). Each party waits for
 * the global variable READY_<n> when the test asks it to (so the tap is up before anyone speaks),
 * plays its file, presses a digit, then waits or hangs up as the call's variables say.
 */
import { randomUUID } from 'node:crypto'
import net from 'node:net'
import type { Test } from 'tap'
import { startAsterisk, type Asterisk } from './asterisk.js'
import { freePort } from './free-port.js'
import { ARI_MODULES, ariConfigs } from './asterisk-ari.js'
import { startHarness, type Harness } from './harness.js'

export const ARI_USER = 'tester'
export const ARI_PASSWORD = 'tester-secret'
export const HTTP_TOKEN = 'conversation-test-token'
export const RATE = 16000

export const CONVERSATION_MODULES = [...ARI_MODULES, 'res_curl', 'func_curl', 'func_global', 'app_senddtmf', 'app_stack']

/**
 * The dialplan. Per call (call file variables, inherited by both parties with `__`):
 *   CALLNUM      the call's number (READY_<CALLNUM> gates the parties)
 *   TAP_BY_CURL  1: the caller's ;2 half POSTs /conversations for itself before dialling
 *   WAIT_READY   1: both parties wait for READY_<CALLNUM> before speaking
 *   CALLER_SOUND, AGENT_SOUND  the files the parties play
 *   CALLER_DTMF, AGENT_DTMF    a digit each party presses after speaking
 *   AGENT_DELAY  silence the agent plays before speaking
 *   CALLER_HOLD, AGENT_HOLD    silence each party plays after its digit, then hangs up (the first
 *                              to hang up ends the call)
 * Pauses are played silence, not Wait(): on a real line audio flows all the time (RTP), and a
 * snoop being hung up finishes only when the spied channel next passes a frame.
 */
export function conversationDialplan(httpPort: number): string {
  return [
    '[conv]',
    'exten => caller,1,NoOp(caller side ${CALLNUM})',
    ' same => n,GotoIf($["${TAP_BY_CURL}" != "1"]?dial)',
    ` same => n,Set(CURLOPT(httpheader)=Authorization: Bearer ${HTTP_TOKEN})`,
    ` same => n,Set(TAPPED=\${CURL(http://127.0.0.1:${httpPort}/conversations,channel=\${CHANNEL(uniqueid)}&roles=caller%2Cagent&metadata.callnum=\${CALLNUM})})`,
    ' same => n,Verbose(1,tap answer ${TAPPED})',
    ' same => n(dial),Dial(Local/${AGENT_EXTEN}@conv/n,,t)',
    ' same => n,Hangup()',
    '',
    'exten => callerparty,1,Answer()',
    ' same => n,Gosub(ready,s,1)',
    ' same => n,Playback(${CALLER_SOUND})',
    ' same => n,SendDTMF(${CALLER_DTMF})',
    ' same => n,Playback(${CALLER_HOLD})',
    ' same => n,Hangup()',
    '',
    'exten => agent,1,Answer()',
    ' same => n,Gosub(ready,s,1)',
    ' same => n,Playback(${AGENT_DELAY})',
    ' same => n,Playback(${AGENT_SOUND})',
    ' same => n,SendDTMF(${AGENT_DTMF})',
    ' same => n,Playback(${AGENT_HOLD})',
    ' same => n,Hangup()',
    '',
    // An agent who blind-transfers the caller (features.conf blindxfer #1) to extension 600 at once.
    'exten => agentxfer,1,Answer()',
    ' same => n,Gosub(ready,s,1)',
    ' same => n,Playback(${AGENT_DELAY})',
    ' same => n,SendDTMF(#1600,250)',
    ' same => n,Playback(${AGENT_HOLD})',
    ' same => n,Hangup()',
    '',
    // The transfer target: the caller's channel, sent here, dials the second agent (a new bridge).
    'exten => 600,1,Dial(Local/agent2@conv/n)',
    ' same => n,Hangup()',
    '',
    'exten => agent2,1,Answer()',
    ' same => n,Playback(${AGENT2_SOUND})',
    ' same => n,SendDTMF(8)',
    ' same => n,Playback(${AGENT2_HOLD})',
    ' same => n,Hangup()',
    '',
    '[ready]',
    'exten => s,1,GotoIf($["${WAIT_READY}" != "1"]?done)',
    ' same => n(loop),GotoIf($["${GLOBAL(READY_${CALLNUM})}" = "1"]?done)',
    ' same => n,Wait(0.05)',
    ' same => n,Goto(loop)',
    ' same => n(done),Return()',
    '',
  ].join('\n')
}

/**
 * A party's "speech": `ms` of loud pseudo-random noise (seeded, so each party's words differ),
 * every sample far from zero, so no 20 ms frame of it is all zeros and the stand-in hears a word
 * in every 400 ms window.
 */
export function speech(seed: number, ms: number): Buffer {
  const samples = (RATE * ms) / 1000
  const pcm = Buffer.alloc(samples * 2)
  let x = seed >>> 0 || 1
  for (let i = 0; i < samples; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    const magnitude = 2000 + (x % 6000)
    pcm.writeInt16LE(i % 2 === 0 ? magnitude : -magnitude, i * 2)
  }
  return pcm
}

/**
 * The stream without its zero samples: the silence before, between and after the party spoke, and
 * the odd run of zeros Asterisk inserts (a 20 ms frame, or part of one where a snoop's stream
 * crosses a change of bridge). A party's file has no zero sample (speech()), so what is left must
 * be the file itself, every sample in order, nothing else.
 */
export function withoutSilentFrames(audio: Buffer): Buffer {
  const kept = Buffer.alloc(audio.length)
  let length = 0
  for (let at = 0; at + 1 < audio.length; at += 2) {
    if (audio[at] === 0 && audio[at + 1] === 0) continue
    kept[length++] = audio[at]!
    kept[length++] = audio[at + 1]!
  }
  return kept.subarray(0, length)
}

export interface ConversationRig {
  h: Harness
  ast: Asterisk
  ariPort: number
  httpPort: number
  callerSound: string
  agentSound: string
  callerAudio: Buffer
  agentAudio: Buffer
  /** What the second agent (extension agent2, reached by a transfer) says. */
  agent2Audio: Buffer
  /** Originates call `n`; returns its CALLNUM. */
  call(options?: CallOptions): string
  /** Lets call `n`'s parties speak (they wait for it when WAIT_READY). */
  ready(callNum: string): Promise<void>
  /** Destroys every connection between the server and ARI (needs ariProxy); new ones are let through. */
  cutAri(): void
  stop(): Promise<void>
}

export interface CallOptions {
  byCurl?: boolean
  waitReady?: boolean
  /** Sets __AUDIOSOCKET_SONIOX_TAP on the caller (inherited by the agent's channel too). */
  tapVariable?: string
  callerHold?: number
  agentHold?: number
  /** The agent says nothing and blind-transfers the caller to extension 600 (the second agent) after agentDelay. */
  agentTransfers?: boolean
  /** Seconds the agent waits before speaking (default 2.5: after the caller's 2 s). */
  agentDelay?: number
  callerDtmf?: string
  agentDtmf?: string
}

export interface RigOptions {
  env?: Record<string, string>
  callerMs?: number
  agentMs?: number
  /** Put a TCP proxy between the server and ARI, so the test can cut the server's ARI connections (rig.cutAri()). */
  ariProxy?: boolean
  /** Runs once Asterisk is up, before the server starts (e.g. to leave objects a previous run would have left). */
  beforeServer?: (ariUrl: string) => Promise<void>
}

export async function startConversationRig(t: Test, options: RigOptions = {}): Promise<ConversationRig> {
  const ariPort = await freePort()
  const httpPort = await freePort()
  const ast = await startAsterisk(t, {
    extensions: conversationDialplan(httpPort),
    modules: CONVERSATION_MODULES,
    configs: { ...ariConfigs({ port: ariPort, username: ARI_USER, password: ARI_PASSWORD }), 'features.conf': '[general]\ntransferdigittimeout = 1\n\n[featuremap]\nblindxfer => #1\n' },
  })
  await options.beforeServer?.(`http://127.0.0.1:${ariPort}`)
  const proxy = options.ariProxy ? await startProxy(ariPort) : undefined
  if (proxy !== undefined) t.teardown(() => proxy.close())
  const h = await startHarness({
    env: {
      ARI_URL: `http://127.0.0.1:${proxy?.port ?? ariPort}`,
      ARI_USERNAME: ARI_USER,
      ARI_PASSWORD: ARI_PASSWORD,
      HTTP_PORT: String(httpPort),
      HTTP_HOST: '127.0.0.1',
      HTTP_TOKEN,
      ...options.env,
    },
  })
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    await h.stop()
  }
  t.teardown(stop)
  const callerAudio = speech(1, options.callerMs ?? 2000)
  const agentAudio = speech(2, options.agentMs ?? 1600)
  const callerSound = ast.writeSound('caller', callerAudio, 'sln16')
  const agentSound = ast.writeSound('agent', agentAudio, 'sln16')
  const agent2Audio = speech(3, 1200)
  const agent2Sound = ast.writeSound('agent2', agent2Audio, 'sln16')
  // The prompt a blind transfer plays to the transferring agent (no sound files are installed).
  ast.writeSound('pbx-transfer', Buffer.alloc(RATE / 10 * 2), 'sln16')
  await h.app.conversations?.connected()
  const silences = new Map<number, string>()
  /** A sound of `seconds` of silence (zeros), written once. */
  const silence = (seconds: number): string => {
    let sound = silences.get(seconds)
    if (sound === undefined) {
      sound = ast.writeSound(`silence-${String(seconds).replace('.', '_')}`, Buffer.alloc(Math.round(seconds * RATE) * 2), 'sln16')
      silences.set(seconds, sound)
    }
    return sound
  }
  let next = 0
  return {
    h,
    ast,
    ariPort,
    httpPort,
    callerSound,
    agentSound,
    callerAudio,
    agentAudio,
    agent2Audio,
    call(o: CallOptions = {}) {
      const callNum = String(++next)
      const vars = [
        `__CALLNUM=${callNum}`,
        `__TAP_BY_CURL=${o.byCurl ? 1 : 0}`,
        `__WAIT_READY=${o.waitReady ? 1 : 0}`,
        `__CALLER_SOUND=${callerSound}`,
        `__AGENT_SOUND=${agentSound}`,
        `__CALLER_DTMF=${o.callerDtmf ?? '5'}`,
        `__AGENT_DTMF=${o.agentDtmf ?? '7'}`,
        `__CALLER_HOLD=${silence(o.callerHold ?? 3)}`,
        `__AGENT_HOLD=${silence(o.agentHold ?? 30)}`,
        `__AGENT_DELAY=${silence(o.agentDelay ?? 2.5)}`,
        `__AGENT2_SOUND=${agent2Sound}`,
        `__AGENT_EXTEN=${o.agentTransfers ? 'agentxfer' : 'agent'}`,
        '__TRANSFER_CONTEXT=conv',
        `__AGENT2_HOLD=${silence(0.5)}`,
      ]
      if (o.tapVariable !== undefined) vars.push(`__AUDIOSOCKET_SONIOX_TAP=${o.tapVariable}`)
      ast.originate({ Channel: 'Local/caller@conv/n', Codecs: '!all,slin16', Context: 'conv', Extension: 'callerparty', Priority: 1, Setvar: vars }, `conv-${callNum}-${randomUUID()}.call`)
      return callNum
    },
    async ready(callNum: string) {
      await ast.rx(`dialplan set global READY_${callNum} 1`)
    },
    cutAri() {
      if (proxy === undefined) throw new Error('cutAri needs the rig started with ariProxy: true')
      proxy.cut()
    },
    stop,
  }
}

/** The webhook's events of one conversation: its own stream and both legs', once conversation.ended arrived. */
export async function conversationEvents(h: Harness, conversationId: string, timeoutMs = 60_000): Promise<{ own: any[]; legs: Map<string, any[]> }> {
  const events = await h.receiver.waitFor((evs) => evs.some((e) => e.type === 'conversation.ended' && e.conversation_id === conversationId), timeoutMs)
  const own = events.filter((e) => e.call_id === conversationId)
  const legs = new Map<string, any[]>()
  for (const e of events) {
    if (e.conversation_id !== conversationId || e.call_id === conversationId) continue
    legs.set(e.call_id, [...(legs.get(e.call_id) ?? []), e])
  }
  return { own, legs }
}

/** A plain TCP relay to 127.0.0.1:targetPort whose live connections can be cut at once. */
async function startProxy(targetPort: number): Promise<{ port: number; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1')
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(a)
      a.pipe(b)
      a.on('error', () => b.destroy())
      a.on('close', () => {
        sockets.delete(a)
        b.destroy()
      })
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      for (const socket of sockets) socket.destroy()
    },
    close() {
      for (const socket of sockets) socket.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}
