/**
 * The seam between a call that is one leg of a conversation (a tapped bridged call: one stream per
 * party) and the conversation that joins the legs. The call reports what happens to it; the
 * conversation can hand it what Asterisk reports outside the stream (DTMF through ARI) and end it.
 * Types only.
 */
import type { Utterance } from '../soniox/index.js'
import type { CallEndReason } from './call-report.js'

/** What a leg's call is given at admission (with its CallOptions) when it belongs to a conversation. */
export interface ConversationLeg {
  readonly conversationId: string
  /** The party this stream carries ("caller", "agent"): on every event of the leg. */
  readonly role: string
  readonly observer: LegObserver
}

/** How a conversation reaches into one of its live legs. Each method runs inside the leg's fault boundary. */
export interface LegControl {
  /** A digit the leg's party pressed (seen by ARI, never on the stream): published as the leg's call.dtmf. */
  dtmf(digit: string): void
}

/** What a leg's call reports; every method must not throw (the call's own callbacks call them). */
export interface LegObserver {
  /** The leg's UUID arrived and its call started (call.started is published). */
  legStarted(callId: string, control: LegControl): void
  /** The leg's first audio frame, at `at` on the call's clock: where the leg's audio time 0 lies. */
  audioStarted(callId: string, at: number): void
  utterance(callId: string, utterance: Utterance): void
  /** The leg's call ended (call.ended is published); nothing follows. */
  legEnded(callId: string, ended: LegEnded): void
}

export interface LegEnded {
  reason: CallEndReason
  audioMs: number
  /** The code of the error call.ended reports, if any. */
  errorCode: string | undefined
}
