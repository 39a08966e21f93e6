/**
 * One conversation: the legs of a tapped bridged call (one stream per party, each an ordinary
 * CallSession with its own call_id and seq) joined into one. It publishes its own two events on a
 * stream of its own (call_id = the conversation id, seq from 0): conversation.started as the tap
 * is built, conversation.ended once every leg has ended, with the merged transcript.
 *
 *   open --every leg ended (or never came)--> ended
 *
 * The shared timeline: Asterisk starts both streams at the snoops' creation and sends zeros while a
 * party is silent, so a leg's audio time runs with the wall clock from its first frame. Time 0 of
 * the conversation is the earliest first frame of its legs; a leg whose first frame came `d` ms
 * later has its utterances shifted by `d` (TCP setup differs by a few ms between the two streams).
 */
import type { Clock } from '../shared/clock.js'
import type { Logger } from '../shared/logger.js'
import type { Utterance } from '../soniox/index.js'
import { CallEventFactory } from '../events/call-event-factory.js'
import type { EventSink } from '../events/envelope.js'
import type { ConversationLeg, LegControl, LegEnded, LegObserver } from './conversation-leg.js'

export type ConversationEndReason = 'hangup' | 'stopped' | 'shutdown' | 'error'

/** The tapped channel as Asterisk reported it when the tap started. */
export interface ConversationChannel {
  id: string
  name: string
  caller: { name: string; number: string }
  connected: { name: string; number: string }
}

export interface ConversationSettings {
  conversationId: string
  /** The legs by call_id (the UUID Asterisk sends first on the leg's stream) with their roles. */
  legs: ReadonlyArray<{ callId: string; role: string }>
  channel: ConversationChannel
  metadata: Readonly<Record<string, unknown>> | null
  sink: EventSink
  clock: Clock
  logger: Logger
  /** Called when a leg's call has ended (before conversation.ended, if it was the last). */
  onLegEnded?: (callId: string) => void
  /** Called once, after conversation.ended is published. */
  onEnded?: (conversation: Conversation) => void
}

/** One utterance of the merged transcript: on the conversation's timeline. */
export interface MergedUtterance {
  role: string
  call_id: string
  start_ms: number | null
  end_ms: number | null
  text: string
}

interface LegState {
  readonly callId: string
  readonly role: string
  control: LegControl | undefined
  /** Clock time of the leg's first audio frame. */
  audioStartedAt: number | undefined
  readonly utterances: Utterance[]
  ended: (LegEnded & { missing?: boolean }) | undefined
}

export class Conversation implements LegObserver {
  private stateValue: 'open' | 'ended' = 'open'
  private readonly legs = new Map<string, LegState>()
  private readonly events: CallEventFactory
  private readonly startedAt: number
  private endReason: ConversationEndReason | undefined
  private readonly log: Logger

  constructor(private readonly settings: ConversationSettings) {
    for (const leg of settings.legs) this.legs.set(leg.callId, { callId: leg.callId, role: leg.role, control: undefined, audioStartedAt: undefined, utterances: [], ended: undefined })
    this.events = new CallEventFactory(settings.conversationId, () => settings.clock.now(), { conversationId: settings.conversationId })
    this.startedAt = settings.clock.now()
    this.log = settings.logger.child({ conversationId: settings.conversationId })
  }

  get id(): string {
    return this.settings.conversationId
  }

  get state(): 'open' | 'ended' {
    return this.stateValue
  }

  /** What a leg's call is given at admission, for the leg with this call_id. */
  legOf(callId: string): ConversationLeg | undefined {
    const leg = this.legs.get(callId)
    return leg === undefined ? undefined : { conversationId: this.id, role: leg.role, observer: this }
  }

  /** Publishes conversation.started: the tap is being built (its legs name the streams to come). */
  announce(): void {
    const { channel } = this.settings
    this.settings.sink.publish(
      this.events.create('conversation.started', {
        channel: { id: channel.id, name: channel.name },
        caller: { ...channel.caller },
        connected: { ...channel.connected },
        legs: [...this.legs.values()].map((leg) => ({ call_id: leg.callId, role: leg.role })),
        metadata: this.settings.metadata,
      }),
    )
    this.log.info({ channel: channel.name, legs: this.legs.size }, 'conversation started')
  }

  /** Why the conversation is ending, when the server ends it; the first reason wins. Default: hangup. */
  ending(reason: ConversationEndReason): void {
    this.endReason ??= reason
  }

  /** A digit pressed by the party of `role` (seen by ARI): published on that leg, if it is live. */
  dtmf(role: string, digit: string): void {
    for (const leg of this.legs.values()) {
      if (leg.role === role && leg.ended === undefined) leg.control?.dtmf(digit)
    }
  }

  /** The leg's stream never arrived (or its call could not start): it counts as ended, with this error. */
  legMissing(callId: string, errorCode: string): void {
    const leg = this.legs.get(callId)
    if (leg === undefined || leg.ended !== undefined) return
    leg.ended = { reason: 'error', audioMs: 0, errorCode, missing: true }
    this.log.warn({ callId, role: leg.role, errorCode }, 'conversation leg never streamed')
    this.maybeEnd()
  }

  /** Legs whose calls have not ended yet. */
  get liveLegs(): string[] {
    return [...this.legs.values()].filter((leg) => leg.ended === undefined).map((leg) => leg.callId)
  }

  // ---- LegObserver: called by the legs' CallSessions ---------------------------------------------

  legStarted(callId: string, control: LegControl): void {
    const leg = this.legs.get(callId)
    if (leg !== undefined) leg.control = control
  }

  audioStarted(callId: string, at: number): void {
    const leg = this.legs.get(callId)
    if (leg !== undefined) leg.audioStartedAt ??= at
  }

  utterance(callId: string, utterance: Utterance): void {
    this.legs.get(callId)?.utterances.push(utterance)
  }

  legEnded(callId: string, ended: LegEnded): void {
    const leg = this.legs.get(callId)
    if (leg === undefined || leg.ended !== undefined) return
    leg.ended = ended
    leg.control = undefined
    this.settings.onLegEnded?.(callId)
    this.maybeEnd()
  }

  // ---- the end -------------------------------------------------------------------------------------

  private maybeEnd(): void {
    if (this.stateValue !== 'open') return
    if ([...this.legs.values()].some((leg) => leg.ended === undefined)) return
    this.stateValue = 'ended'
    const legs = [...this.legs.values()]
    const anyError = legs.some((leg) => leg.ended?.errorCode !== undefined)
    const reason = this.endReason ?? (anyError ? 'error' : 'hangup')
    const offsets = legOffsets(legs)
    const transcript = mergeTranscripts(legs, offsets)
    this.settings.sink.publish(
      this.events.create('conversation.ended', {
        reason,
        duration_ms: this.settings.clock.now() - this.startedAt,
        legs: legs.map((leg) => ({
          call_id: leg.callId,
          role: leg.role,
          reason: leg.ended?.reason ?? null,
          audio_ms: leg.ended?.audioMs ?? 0,
          offset_ms: offsets.get(leg.callId) ?? 0,
          utterances: leg.utterances.length,
          error: leg.ended?.errorCode === undefined ? null : { code: leg.ended.errorCode },
        })),
        transcript,
        metadata: this.settings.metadata,
      }),
    )
    this.log.info({ reason, utterances: transcript.length }, 'conversation ended')
    this.settings.onEnded?.(this)
  }
}

/** How much later than the conversation's time 0 (the earliest first frame) each leg's audio started; 0 without audio. */
export function legOffsets(legs: ReadonlyArray<Pick<LegState, 'callId' | 'audioStartedAt'>>): Map<string, number> {
  const zero = Math.min(...legs.map((leg) => leg.audioStartedAt ?? Infinity))
  return new Map(legs.map((leg) => [leg.callId, leg.audioStartedAt === undefined ? 0 : Math.round(leg.audioStartedAt - zero)]))
}

/**
 * Both parties' utterances on the shared timeline (each leg's times shifted by its offset), in time
 * order; ties keep leg order. An utterance without times keeps its place after the previous one of
 * its leg.
 */
export function mergeTranscripts(legs: ReadonlyArray<Pick<LegState, 'callId' | 'role' | 'utterances'>>, offsets: ReadonlyMap<string, number>): MergedUtterance[] {
  const all: Array<MergedUtterance & { sortKey: number; legIndex: number; index: number }> = []
  legs.forEach((leg, legIndex) => {
    const offset = offsets.get(leg.callId) ?? 0
    const shift = (ms: number | null): number | null => (ms === null ? null : ms + offset)
    let lastKey = offset
    leg.utterances.forEach((u, index) => {
      const start = shift(u.start_ms)
      const sortKey = start ?? lastKey
      lastKey = sortKey
      all.push({ role: leg.role, call_id: leg.callId, start_ms: start, end_ms: shift(u.end_ms), text: u.text, sortKey, legIndex, index })
    })
  })
  all.sort((a, b) => a.sortKey - b.sortKey || a.legIndex - b.legIndex || a.index - b.index)
  return all.map(({ role, call_id, start_ms, end_ms, text }) => ({ role, call_id, start_ms, end_ms, text }))
}
