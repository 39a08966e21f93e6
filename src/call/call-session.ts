/**
 * One Asterisk call = one TCP connection = one CallSession. It owns the call's state machine,
 * wires the frame parser to the Soniox session and the transcript assembler, publishes the call's
 * events, and logs the call's outcome once.
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
 */
import type { Socket } from 'node:net'
import { DTMF_PAYLOAD_LENGTH, FrameParser, HEADER_LENGTH, Kind, UUID_PAYLOAD_LENGTH, audioKindForSampleRate, encodeAudio, encodeHangup, sampleRateOfKind, type AudioFrame, type Frame, type FrameHandler } from '../audiosocket/index.js'
import { AppError, isErrnoException } from '../shared/errors.js'
import { createGuard, type Guard } from '../shared/guard.js'
import { LogThrottle } from '../shared/log-throttle.js'
import { clearLongTimeout, setLongTimeout, type LongTimeout } from '../shared/long-timer.js'
import type { Logger } from '../logger.js'
import type { EventSink } from '../events/envelope.js'
import type { SonioxResult } from '../soniox/messages.js'
import type { SonioxError, SonioxSessionHandlers } from '../soniox/soniox-session.js'
import { TranscriptAssembler, type Utterance } from '../soniox/transcript-assembler.js'
import type { TranscriberStats } from '../soniox/resilient-transcriber.js'
import { isAccountProblem } from '../soniox/soniox-health.js'
import { bytesPerSample, type AudioFormat, type RecognitionOptions } from '../soniox/start-message.js'
import { MislabelledG711Detector } from './g711-detector.js'
import { CallEventFactory } from '../events/call-event-factory.js'
import { SILENCE_FRAME_MS, SilenceKeeper, type SilenceMode } from './silence-keeper.js'

/**
 * Asterisk reads a 0x10 frame as 8 kHz slin whatever it sends us (older versions label every
 * rate 0x10), so 0x10 silence is always 8 kHz; the wideband kinds exist only where Asterisk
 * also accepts them back.
 */
function silenceFrame(kind: number): Buffer {
  const rate = kind === Kind.Slin8 ? 8000 : sampleRateOfKind(kind)
  if (rate === undefined) return silenceFrame(Kind.Slin8)
  return encodeAudio(kind, Buffer.alloc(((rate * SILENCE_FRAME_MS) / 1000) * 2))
}

/** Do not queue silence behind a peer that is not reading: it would only arrive late. */
const MAX_UNSENT_SILENCE_BYTES = 64 * 1024

export type CallState = 'awaiting-uuid' | 'streaming' | 'ending' | 'closed'

export type CallEndReason = 'hangup' | 'server_hangup' | 'error' | 'shutdown' | 'timeout'

/** What the call needs from a transcriber; ResilientTranscriber is the real one. */
export interface Transcriber {
  start(format: AudioFormat): void
  sendAudio(chunk: Buffer): void
  finish(): Promise<void>
  close(): void
  stats(): TranscriberStats
}

/**
 * Builds the call's transcriber; `log` is the call's logger (it carries callId); `recognition`
 * holds this call's own options (from its pre-registration), to be laid over the configured ones;
 * `guard` is the call's fault boundary, to wrap every event and timer callback the transcriber
 * registers (an exception there ends this call, not the process).
 */
export type TranscriberFactory = (
  callId: string,
  handlers: SonioxSessionHandlers,
  log: Logger,
  recognition: CallRecognitionOptions | undefined,
  guard: Guard,
) => Transcriber

export type CallRecognitionOptions = Partial<Pick<RecognitionOptions, 'languageHints' | 'languageHintsStrict' | 'context'>>

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

const NO_METRICS: CallMetrics = { callStarted() {}, callEnded() {}, callFaulted() {}, connectionFailed() {}, g711Suspected() {}, frameReceived() {}, frameSent() {} }
const ADMITTED: CallAdmission = { admitted: true }

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

export interface CallSessionDeps {
  socket: Socket
  /** Optional recorder of the raw byte stream in both directions. */
  wireTap?: WireTap
  logger: Logger
  sink: EventSink
  createTranscriber: TranscriberFactory
  settings: CallSettings
  now?: () => number
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

export class CallSession {
  private stateValue: CallState = 'awaiting-uuid'
  private readonly socket: Socket
  private readonly parser: FrameParser
  /** Where the parser delivers this call's frames (audio as plain arguments: no object per frame). */
  private readonly frameHandler: FrameHandler
  private readonly settings: CallSettings
  private readonly now: () => number
  private log: Logger
  private readonly startedAt: number
  /** The first three bytes, until they have been checked against the UUID frame header. */
  private readonly firstHeader: number[] = []
  private firstFrameTimer: LongTimeout | undefined
  private stallTimer: LongTimeout | undefined
  private graceTimer: LongTimeout | undefined

  private callIdValue: string | undefined
  private events: CallEventFactory | undefined
  private transcriber: Transcriber | undefined
  private silence: SilenceKeeper | undefined
  private transcriptionError: AppError | undefined
  private readonly assembler = new TranscriptAssembler()
  private format: AudioFormat | undefined
  /** What a 0x10 frame carries, by the settings. */
  private readonly slinFormat: Required<AudioFormat>
  private audioBytes = 0
  /** Watches the first second of 0x10 audio for G.711 labelled as slin; gone once it has decided. */
  private g711Detector: MislabelledG711Detector | undefined
  private suspectedG711 = false
  /** The last byte of an odd-length slin payload, waiting for its pair. */
  private oddByte: Buffer | undefined
  private readonly frameCounts = { audio: 0, dtmf: 0, unknown: 0, error: 0 }
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

  constructor(private readonly deps: CallSessionDeps) {
    this.socket = deps.socket
    this.settings = deps.settings
    this.now = deps.now ?? Date.now
    this.metrics = deps.metrics ?? NO_METRICS
    this.connectionLogs = deps.connectionLogs ?? new LogThrottle(10_000)
    // 0x10 is 8 kHz slin on current Asterisk, but older versions label slin16 as 0x10 too, and a
    // channel driver without c(slin) sends G.711 under it: settings decide. Other kinds say their rate.
    const encoding = deps.settings.slinEncoding
    this.slinFormat = encoding === 'slin' ? { sampleRate: deps.settings.slinSampleRate, encoding: 'pcm_s16le' } : { sampleRate: 8000, encoding }
    this.startedAt = this.now()
    this.log = deps.logger.child({ remote: `${this.socket.remoteAddress}:${this.socket.remotePort}` })
    this.guard = createGuard((err) => this.onFault(err))
    this.parser = new FrameParser({ maxPayloadLength: deps.settings.maxPayloadBytes })
    this.frameHandler = {
      onAudio: (kind, sampleRate, payload) => this.onAudioFrame(kind, sampleRate, payload),
      onFrame: (frame) => this.onControlFrame(frame),
    }

    this.socket.setNoDelay(true)
    this.socket.on('data', this.guard((chunk: Buffer) => this.onData(chunk)))
    this.socket.on('end', this.guard(() => this.onEnd()))
    this.socket.on('error', this.guard((err: Error) => this.onSocketError(err)))
    this.socket.on('close', this.guard(() => this.onSocketClose()))
    this.firstFrameTimer = this.setTimer(() => {
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
    if (this.firstHeader.length < HEADER_LENGTH && !this.checkFirstBytes(chunk)) return

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

  /**
   * Asterisk's first bytes are always `01 00 10`. Checking them as they arrive turns garbage (an
   * HTTP request, a port scanner, a misrouted SIP stream) into an immediate, named error instead
   * of a parser waiting for a 17 KB "payload" until the first-frame timeout.
   */
  private checkFirstBytes(chunk: Buffer): boolean {
    for (let i = 0; i < chunk.length && this.firstHeader.length < HEADER_LENGTH; i++) {
      this.firstHeader.push(chunk[i] as number)
    }
    const [kind, lengthHigh, lengthLow] = this.firstHeader
    let error: AppError | undefined
    if (kind !== undefined && kind !== Kind.Uuid) {
      error = new AppError('ERR_AUDIOSOCKET_FIRST_FRAME', `the first frame has kind 0x${hex(kind)}, not the UUID frame 0x01 (is this an AudioSocket peer?)`)
    } else if (lengthHigh !== undefined && lengthLow !== undefined && (lengthHigh << 8) + lengthLow !== 16) {
      error = new AppError('ERR_AUDIOSOCKET_BAD_UUID', `the UUID frame announces ${(lengthHigh << 8) + lengthLow} bytes; a UUID is 16`)
    }
    if (error) void this.end('error', error)
    return error === undefined
  }

  /** A partial frame that is not completed in time means a broken peer, not a slow one. */
  private watchForStall(): void {
    if (this.parser.bufferedBytes === 0) {
      clearLongTimeout(this.stallTimer)
      this.stallTimer = undefined
      return
    }
    if (this.stallTimer !== undefined) return
    this.stallTimer = this.setTimer(() => {
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
    if (this.stateValue === 'awaiting-uuid') {
      void this.end('error', new AppError('ERR_AUDIOSOCKET_FIRST_FRAME', 'the first frame is audio, not the UUID'))
      return
    }
    this.onAudio(kind, sampleRate, payload)
  }

  private onControlFrame(frame: Exclude<Frame, AudioFrame>): void {
    if (!this.receiving) return
    this.metrics.frameReceived(frame.type, payloadBytes(frame))
    if (this.stateValue === 'awaiting-uuid' && frame.type !== 'uuid') {
      void this.end('error', new AppError('ERR_AUDIOSOCKET_FIRST_FRAME', `the first frame is ${frame.type}, not the UUID`))
      return
    }
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
        this.frameCounts.dtmf++
        this.publish('call.dtmf', { digit: frame.digit, at_ms: this.audioMs() })
        this.log.debug({ digit: frame.digit }, 'dtmf')
        return
      case 'hangup':
        // Asterisk never sends this; a peer that does is ending the call.
        void this.end('hangup')
        return
      case 'error':
        this.frameCounts.error++
        this.log.warn({ errorCode: frame.code }, 'AudioSocket error frame received (Asterisk never sends one: check what is connecting)')
        return
      case 'unknown':
        this.frameCounts.unknown++
        if (this.frameCounts.unknown === 1) {
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
    this.stateValue = 'streaming'
    this.callIdValue = uuid
    this.log = this.deps.logger.child({ callId: uuid })
    clearLongTimeout(this.firstFrameTimer)
    this.firstFrameTimer = undefined
    this.events = new CallEventFactory(uuid, this.now)
    this.metrics.callStarted()
    this.publish('call.started', {
      remote_address: this.socket.remoteAddress ?? null,
      remote_port: this.socket.remotePort ?? null,
      local_port: this.socket.localPort ?? null,
      metadata: this.metadata,
    })
    this.log.info({ remote: `${this.socket.remoteAddress}:${this.socket.remotePort}`, registered: admission.options !== undefined }, 'call started')
    const declaredKind = admission.options?.sampleRate === undefined ? undefined : audioKindForSampleRate(admission.options.sampleRate)
    if (this.settings.silenceMode !== 'off') {
      this.silence = new SilenceKeeper(
        {
          mode: this.settings.silenceMode,
          afterMs: this.settings.silenceAfterMs,
          write: (frame) => this.writeSilence(frame),
          now: this.now,
          setTimer: (fn, ms) => setTimeout(this.guard(fn), ms),
        },
        silenceFrame(declaredKind ?? Kind.Slin8),
      )
    }
    const handlers: SonioxSessionHandlers = {
      onResult: this.guard((result: SonioxResult) => this.onTranscriptResult(result)),
      onError: this.guard((err: AppError) => this.onTranscriptionError(err)),
      onFinished: () => {},
    }
    this.transcriber = this.deps.createTranscriber(uuid, handlers, this.log, admission.options?.recognition, this.guard)
  }

  private onAudio(kind: number, kindRate: number, payload: Buffer): void {
    this.frameCounts.audio++
    if (payload.length === 0) return
    this.silence?.onInboundAudio()
    const rate = kind === Kind.Slin8 ? this.slinFormat.sampleRate : kindRate
    if (this.format === undefined) {
      this.format = kind === Kind.Slin8 ? this.slinFormat : { sampleRate: kindRate, encoding: 'pcm_s16le' }
      this.log.info({ kind: `0x${hex(kind)}`, sampleRate: this.format.sampleRate, encoding: this.format.encoding }, 'audio format')
      this.silence?.setFrame(silenceFrame(kind))
      if (kind === Kind.Slin8 && this.settings.slinEncoding === 'slin' && this.format.sampleRate === 8000) this.g711Detector = new MislabelledG711Detector()
      this.transcriber?.start(this.format)
    } else if (rate !== this.format.sampleRate) {
      void this.end(
        'error',
        new AppError('ERR_AUDIOSOCKET_RATE_CHANGED', `audio kind 0x${hex(kind)} (${rate} Hz) after ${this.format.sampleRate} Hz audio`),
      )
      return
    }
    this.audioBytes += payload.length
    if (this.g711Detector !== undefined) this.watchForG711(payload.length)

    let pcm = payload
    if (this.format.encoding === 'pcm_s16le') {
      // Keeps 16-bit sample alignment when a payload has an odd length (it happens: CNG, codecs).
      if (this.oddByte !== undefined) {
        pcm = Buffer.concat([this.oddByte, payload])
        this.oddByte = undefined
      }
      if (pcm.length % 2 === 1) {
        this.oddByte = Buffer.from(pcm.subarray(pcm.length - 1))
        pcm = pcm.subarray(0, pcm.length - 1)
      }
    }
    if (this.transcriptionError === undefined) this.transcriber?.sendAudio(pcm)
  }

  private watchForG711(payloadBytes: number): void {
    const verdict = this.g711Detector?.push(payloadBytes, this.now())
    if (verdict === undefined) return
    this.g711Detector = undefined
    if (verdict === 'clear') return
    this.suspectedG711 = true
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

  private audioMs(): number {
    if (this.format === undefined) return 0
    return Math.round((this.audioBytes / bytesPerSample(this.format) / this.format.sampleRate) * 1000)
  }

  // ---- transcripts -----------------------------------------------------------------------------

  private onTranscriptResult(result: SonioxResult): void {
    for (const utterance of this.assembler.push(result)) this.publishUtterance(utterance)
    if (this.settings.partialEvents) this.maybePublishPartial()
  }

  private maybePublishPartial(): void {
    const partial = this.assembler.partial()
    if (partial === undefined || partial.text === this.lastPartialText) return
    const now = this.now()
    if (now - this.lastPartialAt < this.settings.partialIntervalMs) return
    this.lastPartialAt = now
    this.lastPartialText = partial.text
    this.publish('transcript.partial', { index: this.assembler.utteranceCount, text: partial.text, start_ms: partial.start_ms })
  }

  private publishUtterance(u: Utterance): void {
    this.lastPartialText = ''
    this.publish('transcript.final', { ...u })
    this.log.debug({ index: u.index, text: u.text }, 'utterance')
  }

  private onTranscriptionError(err: AppError): void {
    if (this.transcriptionError !== undefined) return
    this.transcriptionError = err
    // The caller is still on the line: keep reading (and counting) their audio, keep the call up,
    // and report the lost transcription in call.ended. Hanging up a caller because speech-to-text
    // failed would be worse than an incomplete transcript. A refused key or an empty balance hits
    // every call alike and is logged at error once per cause by SonioxHealth, so warn here.
    const level = isAccountProblem(err) ? 'warn' : 'error'
    this.log[level]({ err }, this.stateValue === 'streaming' ? 'transcription failed; the call continues untranscribed' : 'transcription failed at the end of the call')
    const last = this.assembler.flush('call_end')
    if (last) this.publishUtterance(last)
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

  /** The call's own timers: inside its fault boundary, and any delay a setting may give. */
  private setTimer(fn: () => void, ms: number): LongTimeout {
    return setLongTimeout(this.guard(fn), ms)
  }

  private onEnd(): void {
    if (this.stateValue === 'ending' || this.stateValue === 'closed') return
    try {
      this.parser.end()
    } catch (err) {
      // Asterisk closed mid-frame: the call is over either way; name the violation once.
      this.log.warn({ err }, 'connection ended inside a frame')
    }
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
    clearLongTimeout(this.graceTimer)
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
    this.graceTimer = this.setTimer(() => this.socket.destroy(), this.settings.hangupGraceMs)
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

    if (this.transcriber !== undefined && this.transcriptionError === undefined && error?.code !== 'ERR_CALL_INTERNAL') {
      // The last words are still in flight at Soniox: end the audio and wait (bounded) for them.
      await this.transcriber.finish()
    }
    this.transcriber?.close()
    const last = this.assembler.flush('call_end')
    if (last) this.publishUtterance(last)

    const endError = error ?? this.transcriptionError
    const endReason: CallEndReason = error === undefined && this.transcriptionError !== undefined && reason === 'hangup' ? 'error' : reason
    const transcript = this.assembler.transcript
    const durationMs = this.now() - this.startedAt
    const stats = this.transcriber?.stats()
    this.publish('call.ended', {
      reason: endReason,
      duration_ms: durationMs,
      audio_ms: this.audioMs(),
      sample_rate: this.format?.sampleRate ?? null,
      audio_encoding: this.format?.encoding ?? null,
      suspected_g711: this.suspectedG711,
      transcript,
      utterances: this.assembler.utteranceCount,
      soniox: {
        sessions: stats?.sessions ?? 0,
        reconnects: stats?.reconnects ?? 0,
        audio_resent_ms: stats?.audioResentMs ?? 0,
        audio_dropped_ms: stats?.audioDroppedMs ?? 0,
      },
      frames: { ...this.frameCounts },
      silence_frames_sent: this.silence?.totalFrames ?? 0,
      error: endError ? describeError(endError) : null,
      metadata: this.metadata,
    })
    this.metrics.callEnded(endReason)
    this.log.info(
      {
        reason: endReason,
        durationMs,
        audioMs: this.audioMs(),
        sampleRate: this.format?.sampleRate,
        frames: this.frameCounts.audio,
        dtmf: this.frameCounts.dtmf,
        utterances: this.assembler.utteranceCount,
        words: countWords(transcript),
        sonioxSessions: stats?.sessions,
        reconnects: stats?.reconnects,
        audioDroppedMs: stats?.audioDroppedMs,
        silenceFrames: this.silence?.totalFrames,
        errorCode: endError?.code,
      },
      'call ended',
    )
    this.close()
  }

  private close(): void {
    this.stateValue = 'closed'
    this.clearTimers()
    for (const resolve of this.onceClosed.splice(0)) resolve()
    this.deps.onClosed?.(this)
  }

  private clearTimers(): void {
    clearLongTimeout(this.firstFrameTimer)
    clearLongTimeout(this.stallTimer)
    this.firstFrameTimer = undefined
    this.stallTimer = undefined
  }

  private publish(type: Parameters<CallEventFactory['create']>[0], data: Record<string, unknown>): void {
    if (this.events === undefined) return
    this.deps.sink.publish(this.events.create(type, data))
  }
}

function describeError(err: AppError): Record<string, unknown> {
  const out: Record<string, unknown> = { code: err.code, message: err.message }
  const soniox = err as SonioxError
  if (soniox.sonioxCode !== undefined) out.soniox_code = soniox.sonioxCode
  if (soniox.sonioxType !== undefined) out.soniox_type = soniox.sonioxType
  if (soniox.requestId !== undefined) out.request_id = soniox.requestId
  return out
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

function countWords(text: string): number {
  const trimmed = text.trim()
  return trimmed === '' ? 0 : trimmed.split(/\s+/).length
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0')
}
