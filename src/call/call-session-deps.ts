/**
 * What a CallSession is given: its connection, settings, clock, event sink, transcriber factory,
 * admission (pre-registration), metrics and wire tap. Types only.
 */
import type { Frame } from '../audiosocket/index.js'
import type { Clock } from '../shared/clock.js'
import type { LogThrottle } from '../shared/log-throttle.js'
import type { Logger } from '../shared/logger.js'
import type { EventSink } from '../events/envelope.js'
import type { CallEndReason } from './call-report.js'
import type { CallSession } from './call-session.js'
import type { SilenceMode } from './silence-keeper.js'
import type { CallRecognitionOptions, TranscriberFactory } from './transcriber.js'
import type { ConversationLeg } from './conversation-leg.js'

/** What a pre-registration (POST /calls/{uuid}) gives one call. */
export interface CallOptions {
  recognition?: CallRecognitionOptions
  /** Echoed as `metadata` in call.started and call.ended. */
  metadata?: Readonly<Record<string, unknown>>
  /**
   * The sample rate the call's audio will have, when something declared it in advance: silence
   * sent before the first audio frame then has the call's own kind, not 8 kHz 0x10.
   */
  sampleRate?: number
  /** This call is one leg (one party's stream) of a conversation: a tapped bridged call. */
  conversation?: ConversationLeg
  /**
   * Overrides AUDIOSOCKET_SILENCE_MODE for this call: a tap stream (ARI externalMedia) gets
   * `continuous`, because an externalMedia channel that never hears from its server can stall
   * Asterisk's hangups (asterisk#2089).
   */
  silenceMode?: SilenceMode
}

/** Whether a call whose UUID just arrived is served, and with which options. */
export type CallAdmission = { admitted: true; options?: CallOptions | undefined } | { admitted: false; reason: string }

/**
 * Counts what calls do (Prometheus in production). `frameReceived` runs for every inbound frame:
 * an implementation must be plain additions on pre-resolved series, no lookups by label.
 */
export interface CallMetrics {
  callStarted(): void
  callEnded(reason: CallEndReason): void
  /** An exception in the call's own handling ended it (ERR_CALL_INTERNAL). */
  callFaulted(): void
  /** A connection ended before its call started (not AudioSocket, no or a bad UUID frame). */
  connectionFailed(): void
  /** A call's 0x10 audio looks like G.711 labelled as slin (a dialplan without c(slin)). */
  g711Suspected(): void
  frameReceived(type: Frame['type'], payloadBytes: number): void
  frameSent(kind: 'silence' | 'hangup'): void
}


export interface CallSettings {
  firstFrameTimeoutMs: number
  /** Sample rate of kind 0x10 frames (8000, or 16000 for old Asterisk labelling slin16 as 0x10). */
  slinSampleRate: number
  /**
   * What kind 0x10 frames carry: slin, or G.711 (mulaw, alaw) from a channel driver dialled without
   * c(slin), which Asterisk labels 0x10 all the same. G.711 goes to Soniox as it is.
   */
  slinEncoding: 'slin' | 'mulaw' | 'alaw'
  maxPayloadBytes: number
  /** A partial frame left waiting this long ends the call (a peer that sends half a frame and stalls). */
  stallTimeoutMs: number
  hangupGraceMs: number
  partialEvents: boolean
  partialIntervalMs: number
  /** Silence towards Asterisk so its 2 s inactivity timeout never ends a quiet call. */
  silenceMode: SilenceMode
  silenceAfterMs: number
}

/**
 * Sees every byte of the connection exactly as it crossed the socket (before parsing, and as
 * written), e.g. to record the call. Must not throw and must not hold the event loop.
 */
export interface WireTap {
  inbound(chunk: Buffer): void
  outbound(bytes: Buffer): void
  /**
   * The call's UUID, as soon as its UUID frame is parsed (before admission, so a refused call is
   * named too); at most once. The tap has already seen that frame's bytes through `inbound`.
   */
  callIdentified?(uuid: string): void
  /** The connection is gone; called once. */
  close(): void
}

/**
 * What a call uses of its connection: a net.Socket in production, an in-memory one in the unit
 * tests. Events: 'data' (chunks), 'end' (the peer's FIN), 'error', 'close'.
 */
export interface CallSocket {
  readonly remoteAddress?: string | undefined
  readonly remotePort?: number | undefined
  readonly localPort?: number | undefined
  readonly writable: boolean
  /** Bytes written and not yet handed to the kernel. */
  readonly writableLength: number
  readonly destroyed: boolean
  setNoDelay(noDelay?: boolean): unknown
  on(event: 'data', listener: (chunk: Buffer) => void): unknown
  on(event: 'end' | 'close', listener: () => void): unknown
  on(event: 'error', listener: (err: Error) => void): unknown
  write(bytes: Buffer): unknown
  /** Writes the last bytes, then half-closes (FIN). */
  end(bytes: Buffer): unknown
  destroy(): unknown
}

export interface CallSessionDeps {
  socket: CallSocket
  /** Optional recorder of the raw byte stream in both directions. */
  wireTap?: WireTap
  logger: Logger
  sink: EventSink
  createTranscriber: TranscriberFactory
  settings: CallSettings
  /** Default systemClock. Every timer of the call (and of its silence keeper) runs inside its fault boundary. */
  clock?: Clock
  /** Called once, when the call has fully ended and its last event is published. */
  onClosed?: (call: CallSession) => void
  metrics?: CallMetrics
  /**
   * Lines a peer can trigger before a call exists (a refusal, a stream that is not AudioSocket) go
   * through this throttle: one per cause per interval, with the count held back. Default: a 10 s one
   * of this session's own, which throttles nothing across connections.
   */
  connectionLogs?: LogThrottle
  /**
   * Decides, once the UUID is known, whether the call is served (pre-registration). A refused call
   * gets a hangup frame and nothing else: no event, no Soniox session. Default: every call is served.
   */
  admit?: (callId: string) => CallAdmission
}
