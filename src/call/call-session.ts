/**
 * One Asterisk call = one TCP connection = one CallSession. It owns the call's state machine,
 * wires the frame parser to the transcriber (call/transcriber.ts) and the silence keeper, publishes
 * the call's events (call.ended from its CallReport), and logs the call's outcome once.
 *
 *   awaiting-uuid --UUID frame--> streaming --EOF / reset / hangup / violation / shutdown--> ending --> closed
 *        \--first-frame timeout, wrong first bytes, socket error--------------------------> ending --> closed
 *
 * Invariants:
 * - The Asterisk socket is read at all times, whatever Soniox or the webhook do: Asterisk writes
 *   without blocking and drops the call when its write would block. Nothing here pauses it.
 * - Asterisk never sends hangup; EOF or ECONNRESET is the normal end of a call.
 * - When the server ends a call itself it sends `00 00 00` first (old Asterisk ignores a bare
 *   FIN and leaves the caller in a silent call), then half-closes and waits for Asterisk's close.
 * - A protocol violation ends this call only; nothing here throws into the event loop.
 * - Timestamps in events are call audio time (samples received), not wall-clock time.
 *
 * Over 400 lines because every transition of the call's one state machine is kept in one place;
 * what it is given (call-session-deps.ts), reports (call-report.ts) and uses (transcriber.ts,
 * silence-keeper.ts) live beside it.
 */
import { DTMF_PAYLOAD_LENGTH, FrameParser, Kind, UUID_PAYLOAD_LENGTH, audioKindForSampleRate, encodeHangup, type AudioFrame, type Frame, type FrameHandler } from '../audiosocket/index.js'
import { AppError, isErrnoException } from '../shared/errors.js'
import { guardedClock, systemClock, type Clock, type ClockTimer } from '../shared/clock.js'
import { createGuard, type Guard } from '../shared/guard.js'
import { LogThrottle } from '../shared/log-throttle.js'
import type { Logger } from '../shared/logger.js'
import type { AudioFormat, TranscriptPartial, TranscriptionFailure, Utterance } from '../soniox/index.js'
import { MislabelledG711Detector } from './g711-detector.js'
import { CallEventFactory } from '../events/call-event-factory.js'
import { CallReport, type CallEndReason, type ReportedError } from './call-report.js'
import type { CallAdmission, CallMetrics, CallSessionDeps, CallSettings, CallSocket } from './call-session-deps.js'
import { SilenceKeeper, silenceFrame } from './silence-keeper.js'
import type { Transcriber, TranscriberHandlers } from './transcriber.js'
import type { ConversationLeg, LegEnded } from './conversation-leg.js'

export type { CallEndReason } from './call-report.js'
export type { CallAdmission, CallMetrics, CallOptions, CallSessionDeps, CallSettings, CallSocket, WireTap } from './call-session-deps.js'
export type { CallRecognitionOptions, Transcriber, TranscriberFactory, TranscriberHandlers } from './transcriber.js'
export type { ConversationLeg, LegControl, LegEnded, LegObserver } from './conversation-leg.js'

/** Do not queue silence behind a peer that is not reading: it would only arrive late. */
const MAX_UNSENT_SILENCE_BYTES = 64 * 1024

export type CallState = 'awaiting-uuid' | 'streaming' | 'ending' | 'closed'

const NO_METRICS: CallMetrics = { callStarted() {}, callEnded() {}, callFaulted() {}, connectionFailed() {}, g711Suspected() {}, frameReceived() {}, frameSent() {} }
const ADMITTED: CallAdmission = { admitted: true }

export class CallSession {
  private stateValue: CallState = 'awaiting-uuid'
  private readonly socket: CallSocket
  private readonly parser: FrameParser
  /** Where the parser delivers this call's frames (audio as plain arguments: no object per frame). */
  private readonly frameHandler: FrameHandler
  private readonly settings: CallSettings
  /** The call's clock: its timers run inside the call's fault boundary. */
  private readonly clock: Clock
  private log: Logger
  private readonly startedAt: number
  private firstFrameTimer: ClockTimer | undefined
  private stallTimer: ClockTimer | undefined
  private graceTimer: ClockTimer | undefined

  private callIdValue: string | undefined
  private events: CallEventFactory | undefined
  private transcriber: Transcriber | undefined
  private silence: SilenceKeeper | undefined
  /** Set once: the call goes on untranscribed and call.ended reports it. */
  private transcriptionFailure: ReportedError | undefined
  private format: AudioFormat | undefined
  /** What a 0x10 frame carries, by the settings. */
  private readonly slinFormat: Required<AudioFormat>
  /** Watches the first second of 0x10 audio for G.711 labelled as slin; gone once it has decided. */
  private g711Detector: MislabelledG711Detector | undefined
  private readonly report = new CallReport()
  private lastPartialAt = -Infinity
  private lastPartialText = ''
  private endPromise: Promise<void> | undefined
  private readonly onceClosed: Array<() => void> = []
  private readonly metrics: CallMetrics
  private readonly connectionLogs: LogThrottle
  /** Every callback through which the event loop enters this call runs inside it. */
  private readonly guard: Guard
  /** From the call's pre-registration; echoed in call.started and call.ended. */
  private metadata: Readonly<Record<string, unknown>> | null = null
  /** Set when this call is one party's stream of a conversation (a tapped bridged call). */
  private conversation: ConversationLeg | undefined
  /** What the conversation hears of this leg's end, set just before close(). */
  private legEnded: LegEnded | undefined

  constructor(private readonly deps: CallSessionDeps) {
    this.socket = deps.socket
    this.settings = deps.settings
    this.guard = createGuard((err) => this.onFault(err))
    this.clock = guardedClock(deps.clock ?? systemClock, this.guard)
    this.metrics = deps.metrics ?? NO_METRICS
    this.connectionLogs = deps.connectionLogs ?? new LogThrottle(10_000)
    // 0x10 is 8 kHz slin on current Asterisk, but older versions label slin16 as 0x10 too, and a
    // channel driver without c(slin) sends G.711 under it: settings decide. Other kinds say their rate.
    const encoding = deps.settings.slinEncoding
    this.slinFormat = encoding === 'slin' ? { sampleRate: deps.settings.slinSampleRate, encoding: 'pcm_s16le' } : { sampleRate: 8000, encoding }
    this.startedAt = this.clock.now()
    this.log = deps.logger.child({ remote: `${this.socket.remoteAddress}:${this.socket.remotePort}` })
    // The parser judges Asterisk's first bytes (`01 00 10`) as they arrive: garbage is a named
    // violation at once, not a wait for a 17 KB "payload" until the first-frame timeout.
    this.parser = new FrameParser({ maxPayloadLength: deps.settings.maxPayloadBytes, expectUuidFirst: true })
    this.frameHandler = {
      onAudio: (kind, sampleRate, payload) => this.onAudioFrame(kind, sampleRate, payload),
      onFrame: (frame) => this.onControlFrame(frame),
    }

    this.socket.setNoDelay(true)
    this.socket.on('data', this.guard((chunk: Buffer) => this.onData(chunk)))
    this.socket.on('end', this.guard(() => this.onEnd()))
    this.socket.on('error', this.guard((err: Error) => this.onSocketError(err)))
    this.socket.on('close', this.guard(() => this.onSocketClose()))
    this.firstFrameTimer = this.clock.setTimeout(() => {
      void this.end(
        'timeout',
        new AppError('ERR_AUDIOSOCKET_FIRST_FRAME_TIMEOUT', `no UUID frame within ${this.settings.firstFrameTimeoutMs} ms`),
      )
    }, this.settings.firstFrameTimeoutMs)
  }

  get state(): CallState {
    return this.stateValue
  }

  get callId(): string | undefined {
    return this.callIdValue
  }

  /** Ends the call from the server side (process shutdown); resolves when it is closed. */
  shutdown(): Promise<void> {
    return this.end('shutdown')
  }

  /** Resolves when the call has closed (immediately if it already has). */
  closed(): Promise<void> {
    return this.endPromise ?? new Promise((resolve) => this.onceClosed.push(resolve))
  }

  // ---- inbound bytes --------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    this.deps.wireTap?.inbound(chunk)
    // Once the call is ending the bytes are read and dropped: never stop reading Asterisk.
    if (!this.receiving) return
    // Frames before a violation in the same chunk still count (the UUID often shares a chunk).
    this.parser.feed(chunk, this.frameHandler)
    if (!this.receiving) return
    if (this.parser.error !== null) {
      void this.end('error', this.parser.error)
      return
    }
    this.watchForStall()
  }

  /** Frames are acted on until the call starts ending; the rest of that chunk is read and dropped. */
  private get receiving(): boolean {
    return this.stateValue === 'awaiting-uuid' || this.stateValue === 'streaming'
  }

  /** A partial frame that is not completed in time means a broken peer, not a slow one. */
  private watchForStall(): void {
    if (this.parser.bufferedBytes === 0) {
      this.clock.clearTimeout(this.stallTimer)
      this.stallTimer = undefined
      return
    }
    if (this.stallTimer !== undefined) return
    this.stallTimer = this.clock.setTimeout(() => {
      this.stallTimer = undefined
      void this.end(
        'error',
        new AppError(
          'ERR_AUDIOSOCKET_STALLED',
          `${this.parser.bufferedBytes} bytes of an incomplete frame waited ${this.settings.stallTimeoutMs} ms for the rest`,
        ),
      )
    }, this.settings.stallTimeoutMs)
  }

  private onAudioFrame(kind: number, sampleRate: number, payload: Buffer): void {
    if (!this.receiving) return
    this.metrics.frameReceived('audio', payload.length)
    // The parser delivers nothing before the UUID frame (expectUuidFirst).
    this.onAudio(kind, sampleRate, payload)
  }

  private onControlFrame(frame: Exclude<Frame, AudioFrame>): void {
    if (!this.receiving) return
    this.metrics.frameReceived(frame.type, payloadBytes(frame))
    switch (frame.type) {
      case 'uuid':
        if (this.stateValue !== 'awaiting-uuid') {
          void this.end('error', new AppError('ERR_AUDIOSOCKET_DUPLICATE_UUID', `a second UUID frame (${frame.uuid}) arrived`))
          return
        }
        this.deps.wireTap?.callIdentified?.(frame.uuid)
        this.beginCall(frame.uuid)
        return
      case 'dtmf':
        this.publishDtmf(frame.digit)
        return
      case 'hangup':
        // Asterisk never sends this; a peer that does is ending the call.
        void this.end('hangup')
        return
      case 'error':
        this.report.frames.error++
        this.log.warn({ errorCode: frame.code }, 'AudioSocket error frame received (Asterisk never sends one: check what is connecting)')
        return
      case 'unknown':
        this.report.frames.unknown++
        if (this.report.frames.unknown === 1) {
          this.log.warn({ kind: `0x${hex(frame.kind)}`, bytes: frame.payload.length }, 'unknown AudioSocket frame kind skipped')
        }
        return
    }
  }

  private beginCall(uuid: string): void {
    const admission = this.deps.admit?.(uuid) ?? ADMITTED
    if (!admission.admitted) {
      // Before any event or Soniox session: a refused call is not a call. The hangup frame makes
      // Asterisk end AudioSocket() (current versions continue the dialplan, old ones hang up).
      const suppressed = this.connectionLogs.take(`refused: ${admission.reason}`)
      if (suppressed !== undefined) this.log.warn({ callId: uuid, suppressed }, `call refused: ${admission.reason}`)
      void this.end('server_hangup')
      return
    }
    this.metadata = admission.options?.metadata ?? null
    this.conversation = admission.options?.conversation
    this.stateValue = 'streaming'
    this.callIdValue = uuid
    this.log = this.deps.logger.child({ callId: uuid })
    this.clock.clearTimeout(this.firstFrameTimer)
    this.firstFrameTimer = undefined
    this.events = new CallEventFactory(uuid, () => this.clock.now(), this.conversation)
    this.metrics.callStarted()
    this.publish('call.started', {
      remote_address: this.socket.remoteAddress ?? null,
      remote_port: this.socket.remotePort ?? null,
      local_port: this.socket.localPort ?? null,
      metadata: this.metadata,
    })
    this.log.info({ remote: `${this.socket.remoteAddress}:${this.socket.remotePort}`, registered: admission.options !== undefined }, 'call started')
    const declaredKind = admission.options?.sampleRate === undefined ? undefined : audioKindForSampleRate(admission.options.sampleRate)
    const silenceMode = admission.options?.silenceMode ?? this.settings.silenceMode
    if (silenceMode !== 'off') {
      this.silence = new SilenceKeeper(
        {
          mode: silenceMode,
          afterMs: this.settings.silenceAfterMs,
          write: (frame) => this.writeSilence(frame),
          clock: this.clock,
        },
        silenceFrame(declaredKind ?? Kind.Slin8),
      )
    }
    const handlers: TranscriberHandlers = {
      onUtterance: this.guard((utterance: Utterance) => this.publishUtterance(utterance)),
      onError: this.guard((err: AppError, failure: TranscriptionFailure) => this.onTranscriptionError(err, failure)),
    }
    if (this.settings.partialEvents) handlers.onPartial = this.guard((partial: TranscriptPartial) => this.maybePublishPartial(partial))
    this.transcriber = this.deps.createTranscriber(uuid, handlers, this.log, admission.options?.recognition, this.guard)
    this.conversation?.observer.legStarted(uuid, { dtmf: this.guard((digit: string) => this.onOutOfBandDtmf(digit)) })
  }

  /** A digit reported outside the stream (ARI, for a conversation's leg): the same call.dtmf as a 0x03 frame. */
  private onOutOfBandDtmf(digit: string): void {
    if (this.stateValue !== 'streaming') return
    this.publishDtmf(digit)
  }

  private publishDtmf(digit: string): void {
    this.report.frames.dtmf++
    this.publish('call.dtmf', { digit, at_ms: this.report.audioMs })
    this.log.debug({ digit }, 'dtmf')
  }

  private onAudio(kind: number, kindRate: number, payload: Buffer): void {
    this.report.frames.audio++
    if (payload.length === 0) return
    this.silence?.onInboundAudio()
    const rate = kind === Kind.Slin8 ? this.slinFormat.sampleRate : kindRate
    if (this.format === undefined) {
      this.format = kind === Kind.Slin8 ? this.slinFormat : { sampleRate: kindRate, encoding: 'pcm_s16le' }
      this.report.setFormat(this.format)
      this.log.info({ kind: `0x${hex(kind)}`, sampleRate: this.format.sampleRate, encoding: this.format.encoding }, 'audio format')
      this.silence?.setFrame(silenceFrame(kind))
      if (kind === Kind.Slin8 && this.settings.slinEncoding === 'slin' && this.format.sampleRate === 8000) this.g711Detector = new MislabelledG711Detector()
      this.transcriber?.start(this.format)
      if (this.callIdValue !== undefined) this.conversation?.observer.audioStarted(this.callIdValue, this.clock.now())
    } else if (rate !== this.format.sampleRate) {
      void this.end(
        'error',
        new AppError('ERR_AUDIOSOCKET_RATE_CHANGED', `audio kind 0x${hex(kind)} (${rate} Hz) after ${this.format.sampleRate} Hz audio`),
      )
      return
    }
    this.report.addAudio(payload.length)
    if (this.g711Detector !== undefined) this.watchForG711(payload.length)
    // Any length goes: the transcriber keeps its own sample alignment.
    if (this.transcriptionFailure === undefined) this.transcriber?.sendAudio(payload)
  }

  private watchForG711(payloadBytes: number): void {
    const verdict = this.g711Detector?.push(payloadBytes, this.clock.now())
    if (verdict === undefined) return
    this.g711Detector = undefined
    if (verdict === 'clear') return
    this.report.suspectedG711 = true
    this.metrics.g711Suspected()
    this.log.warn(
      { kind: '0x10', frameBytes: payloadBytes },
      'the audio looks like G.711 labelled as slin (160-byte 0x10 frames every 20 ms): Soniox is sent noise. ' +
        'Add c(slin) to Dial(AudioSocket/host:port/uuid/c(slin)), or set AUDIOSOCKET_SLIN_ENCODING=mulaw (or alaw) if the dialplan cannot change',
    )
  }

  private writeSilence(frame: Buffer): void {
    if (this.stateValue !== 'streaming' || !this.socket.writable) return
    if (this.socket.writableLength > MAX_UNSENT_SILENCE_BYTES) return
    this.deps.wireTap?.outbound(frame)
    this.socket.write(frame)
    this.metrics.frameSent('silence')
  }

  // ---- transcripts -----------------------------------------------------------------------------

  /** transcript.partial: at most one per partialIntervalMs, and only when its text changed. */
  private maybePublishPartial(partial: TranscriptPartial): void {
    if (partial.text === this.lastPartialText) return
    const now = this.clock.now()
    if (now - this.lastPartialAt < this.settings.partialIntervalMs) return
    this.lastPartialAt = now
    this.lastPartialText = partial.text
    this.publish('transcript.partial', { index: partial.index, text: partial.text, start_ms: partial.start_ms })
  }

  private publishUtterance(u: Utterance): void {
    this.lastPartialText = ''
    this.report.addUtterance(u)
    this.publish('transcript.final', { ...u })
    if (this.callIdValue !== undefined) this.conversation?.observer.utterance(this.callIdValue, u)
    this.log.debug({ index: u.index, text: u.text }, 'utterance')
  }

  private onTranscriptionError(err: AppError, failure: TranscriptionFailure): void {
    if (this.transcriptionFailure !== undefined) return
    this.transcriptionFailure = { error: err, fields: failure.reportFields }
    // The caller is still on the line: keep reading (and counting) their audio, keep the call up,
    // and report the lost transcription in call.ended. Hanging up a caller because speech-to-text
    // failed would be worse than an incomplete transcript. A refused key, an empty balance or a
    // request Soniox refuses (400: the model, an option) hits every call alike and is logged at
    // error once per cause elsewhere (SonioxHealth), so warn here.
    const level = failure.accountProblem || failure.requestRefused === true ? 'warn' : 'error'
    this.log[level]({ err }, this.stateValue === 'streaming' ? 'transcription failed; the call continues untranscribed' : 'transcription failed at the end of the call')
  }

  // ---- ending ----------------------------------------------------------------------------------

  /**
   * An exception escaped one of this call's own callbacks: a bug, in this call's state only. It
   * ends this call (its transcriber is closed without waiting: its state is unknown) and nothing
   * else. Must not throw: it is the guard's last catch.
   */
  private onFault(err: unknown): void {
    this.metrics.callFaulted()
    this.log.error({ err }, 'exception in the call\'s handling: ending this call only')
    if (this.endPromise !== undefined) {
      // Already ending: close whatever is left rather than wait on a part that just threw.
      this.transcriber?.close()
      return
    }
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
    void this.end('error', new AppError('ERR_CALL_INTERNAL', `exception in the call's handling: ${message}`, { cause: err }))
  }

  private onEnd(): void {
    if (this.stateValue === 'ending' || this.stateValue === 'closed') return
    // Asterisk closed mid-frame: the call is over either way; name the violation once.
    const truncated = this.parser.end()
    if (truncated !== null) this.log.warn({ err: truncated }, 'connection ended inside a frame')
    void this.end('hangup')
  }

  private onSocketError(err: Error): void {
    if (this.stateValue === 'ending' || this.stateValue === 'closed') return
    // Asterisk close()s with unread data at hangup, which arrives as a reset: a normal end.
    if (isErrnoException(err) && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
      void this.end('hangup')
      return
    }
    void this.end('error', new AppError('ERR_AUDIOSOCKET_SOCKET', `socket error: ${err.message}`, { cause: err }))
  }

  private onSocketClose(): void {
    this.deps.wireTap?.close()
    this.clock.clearTimeout(this.graceTimer)
    this.graceTimer = undefined
    if (this.receiving) void this.end('hangup')
  }

  /** Idempotent: the first reason wins; later calls return the same promise. */
  private end(reason: CallEndReason, error?: AppError): Promise<void> {
    if (this.endPromise) return this.endPromise
    const serverSide = reason !== 'hangup'
    this.stateValue = 'ending'
    this.clearTimers()
    this.silence?.stop()
    if (serverSide) this.hangUpAsterisk()
    else this.socket.destroy()
    this.endPromise = this.finishCall(reason, error).catch((err: unknown) => {
      // Publishing call.ended itself threw: nothing more can be reported for this call.
      this.metrics.callFaulted()
      this.log.error({ err }, 'exception while ending the call; its call.ended may be missing')
      if (this.stateValue !== 'closed') this.close()
    })
    return this.endPromise
  }

  private hangUpAsterisk(): void {
    if (this.socket.destroyed || !this.socket.writable) return
    // One write of 00 00 00, then FIN; Asterisk closes its side when it reads the hangup.
    const hangup = encodeHangup()
    this.deps.wireTap?.outbound(hangup)
    this.socket.end(hangup)
    this.metrics.frameSent('hangup')
    this.graceTimer = this.clock.setTimeout(() => this.socket.destroy(), this.settings.hangupGraceMs)
    this.graceTimer.unref()
  }

  private async finishCall(reason: CallEndReason, error?: AppError): Promise<void> {
    if (this.callIdValue === undefined) {
      // No UUID, so no call to report. Anyone who can reach the port can cause this at will: the
      // line is short (the code, no stack: the cause is the peer) and throttled per code.
      if (error) {
        this.metrics.connectionFailed()
        const suppressed = this.connectionLogs.take(error.code)
        if (suppressed !== undefined) this.log.warn({ errorCode: error.code, reason, suppressed }, `connection closed before a call started: ${error.message}`)
      } else if (reason === 'hangup') {
        const suppressed = this.connectionLogs.take('no-uuid')
        if (suppressed !== undefined) this.log.info({ suppressed }, 'connection closed before sending a UUID frame')
      }
      this.close()
      return
    }
    // A protocol violation is the peer's, not ours: its code and message say all, a stack would not.
    if (error) this.log.warn({ errorCode: error.code }, `ending call: ${error.message}`)

    if (this.transcriber !== undefined && this.transcriptionFailure === undefined && error?.code !== 'ERR_CALL_INTERNAL') {
      // The last words are still in flight at Soniox: end the audio and wait (bounded) for them.
      await this.transcriber.finish()
    }
    // Words final but not yet closed into an utterance arrive (onUtterance) before close() returns.
    this.transcriber?.close()

    const endError: ReportedError | undefined = error === undefined ? this.transcriptionFailure : { error }
    const endReason: CallEndReason = error === undefined && this.transcriptionFailure !== undefined && reason === 'hangup' ? 'error' : reason
    const outcome = {
      reason: endReason,
      durationMs: this.clock.now() - this.startedAt,
      stats: this.transcriber?.stats(),
      silenceFrames: this.silence?.totalFrames,
      error: endError,
      metadata: this.metadata,
    }
    this.publish('call.ended', this.report.endedData(outcome))
    this.metrics.callEnded(endReason)
    this.log.info(this.report.logFields(outcome), 'call ended')
    this.legEnded = { reason: endReason, audioMs: this.report.audioMs, errorCode: endError?.error.code }
    this.close()
  }

  private close(): void {
    this.stateValue = 'closed'
    this.clearTimers()
    for (const resolve of this.onceClosed.splice(0)) resolve()
    this.deps.onClosed?.(this)
    // Also when ending threw before call.ended: the conversation must not wait for this leg forever.
    if (this.conversation !== undefined && this.callIdValue !== undefined) {
      this.conversation.observer.legEnded(this.callIdValue, this.legEnded ?? { reason: 'error', audioMs: this.report.audioMs, errorCode: 'ERR_CALL_INTERNAL' })
    }
  }

  private clearTimers(): void {
    this.clock.clearTimeout(this.firstFrameTimer)
    this.clock.clearTimeout(this.stallTimer)
    this.firstFrameTimer = undefined
    this.stallTimer = undefined
  }

  private publish(type: Parameters<CallEventFactory['create']>[0], data: Record<string, unknown>): void {
    if (this.events === undefined) return
    this.deps.sink.publish(this.events.create(type, data))
  }
}

/** Payload size of a decoded non-audio frame (the UUID and DTMF kinds have fixed sizes and no payload field). */
function payloadBytes(frame: Exclude<Frame, AudioFrame>): number {
  switch (frame.type) {
    case 'uuid':
      return UUID_PAYLOAD_LENGTH
    case 'dtmf':
      return DTMF_PAYLOAD_LENGTH
    case 'hangup':
      return 0
    default:
      return frame.payload.length
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0')
}
