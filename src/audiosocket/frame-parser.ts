import { AppError } from '../shared/errors.js'
import { HEADER_LENGTH, Kind, MAX_PAYLOAD_LENGTH, UUID_PAYLOAD_LENGTH, sampleRateOfKind } from './constants.js'
import { decodeFrame, type AudioFrame, type Frame } from './frame.js'

export interface FrameParserOptions {
  /**
   * Largest payload accepted, in bytes (0-65535, default 65535). A header announcing more fails
   * the parser at once, before any of that payload is buffered, so a peer cannot make one
   * connection hold more than HEADER_LENGTH + maxPayloadLength bytes.
   */
  maxPayloadLength?: number
  /**
   * The stream must open with the UUID frame, as Asterisk's always does (`01 00 10`). Each of those
   * three bytes is checked as it arrives, so garbage (an HTTP request, a port scanner, a misrouted
   * SIP stream) is a named violation at once, not a wait for a 17 KB "payload". Default false.
   */
  expectUuidFirst?: boolean
}

/**
 * Receives what FrameParser.feed decodes, in stream order. Payloads follow the parser's memory
 * contract. Handlers must not throw: an exception propagates out of `feed` with the rest of the
 * chunk unread (CallSession's handlers never throw; they end the call instead).
 */
export interface FrameHandler {
  /**
   * An audio frame (kinds 0x10-0x18), about 50 a second per call: delivered as plain arguments so
   * that the hot path allocates no Frame object and no array.
   */
  onAudio(kind: number, sampleRate: number, payload: Buffer): void
  /**
   * Any other frame: UUID, DTMF, hangup, error, or an unknown kind (skipped by length). `payload`
   * is the frame's raw payload, under the same memory contract.
   */
  onFrame(frame: Exclude<Frame, AudioFrame>, payload: Buffer): void
  /**
   * Optional: a frame whose payload breaks its kind's rules (a UUID frame that is not 16 bytes, a
   * DTMF byte that is not a digit). Without this handler such a frame kills the parser like any
   * violation: a live call cannot trust the peer. With it, the frame is reported here and parsing
   * goes on, because its length field still said where the next frame starts (framing is in sync):
   * for analysing a recorded stream, where every violation is worth listing.
   */
  onInvalidFrame?(kind: number, payload: Buffer, error: AppError): void
}

const EMPTY = Buffer.alloc(0)

/** Collects frames as objects, for `push` (tools and tests; the server uses `feed`). */
class FrameCollector implements FrameHandler {
  readonly frames: Frame[] = []

  onAudio(kind: number, _sampleRate: number, payload: Buffer): void {
    // The one place that shapes a Frame; it cannot throw for an audio kind.
    this.frames.push(decodeFrame(kind, payload))
  }

  onFrame(frame: Exclude<Frame, AudioFrame>, _payload: Buffer): void {
    this.frames.push(frame)
  }
}

function hexByte(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`
}

/**
 * Incremental AudioSocket decoder: feed it socket chunks, get whole frames back. TCP splits and
 * coalesces messages anywhere, so a chunk may hold many frames, part of one, or both. Two ways in:
 * `feed(chunk, handler)` calls a handler per frame and allocates nothing for audio (the server's
 * way: every frame of every call goes through it); `push(chunk)` returns Frame objects.
 *
 * Memory contract:
 * - A frame that lies entirely inside one chunk is decoded in place: its payload is a
 *   `subarray` view of that chunk. If the consumer keeps a payload past the current tick while
 *   whoever owns the chunk may reuse it (e.g. a socket with `onread` buffer reuse), it must copy.
 * - The parser never retains a chunk. The unfinished tail is copied into memory the parser owns,
 *   and a payload assembled there is handed out exactly once and never written again (a fresh
 *   buffer is allocated for the next straddling frame), so later pushes cannot change it.
 *
 * A framing violation is returned, never thrown: the frames decoded before it in the same chunk
 * are still delivered (TCP often coalesces the UUID frame with what follows, and losing it would
 * lose the call's identity), and the violation is left in `error` (and returned by `end`). From
 * then on the parser is dead: the byte stream can no longer be trusted to be in sync, so every
 * later `feed` or `push` delivers nothing.
 */
export class FrameParser {
  readonly #maxPayloadLength: number

  // Partial-frame state. #header is reused, which is safe because header bytes never leave the
  // parser; #payload is per frame because it is handed out.
  readonly #header = Buffer.alloc(HEADER_LENGTH)
  #headerFilled = 0
  #payload: Buffer | null = null
  #payloadFilled = 0

  #frameCount = 0
  #error: AppError | null = null
  /** Bytes of the stream's first header checked so far, when the UUID must come first. */
  #uuidHeaderChecked: number
  /** Those bytes (a copy: the header may straddle chunks). */
  readonly #uuidHeader = Buffer.alloc(HEADER_LENGTH)

  constructor(options: FrameParserOptions = {}) {
    const max = options.maxPayloadLength ?? MAX_PAYLOAD_LENGTH
    if (!Number.isInteger(max) || max < 0 || max > MAX_PAYLOAD_LENGTH) {
      throw new RangeError(`maxPayloadLength must be an integer from 0 to ${MAX_PAYLOAD_LENGTH}, got ${max}`)
    }
    this.#maxPayloadLength = max
    this.#uuidHeaderChecked = options.expectUuidFirst === true ? 0 : HEADER_LENGTH
  }

  /** Bytes of an unfinished frame held between pushes; never above HEADER_LENGTH + maxPayloadLength. */
  get bufferedBytes(): number {
    return this.#headerFilled + this.#payloadFilled
  }

  /** Frames decoded since construction (all kinds, including unknown ones). */
  get frameCount(): number {
    return this.#frameCount
  }

  /** The framing violation that killed the parser, or null while the stream is in sync. */
  get error(): AppError | null {
    return this.#error
  }

  /**
   * Hands every frame completed by `chunk` to `handler`, in order. On a framing violation it stops
   * there and sets `error`; check `error` after every feed. A dead parser delivers nothing.
   */
  feed(chunk: Buffer, handler: FrameHandler): void {
    if (this.#error !== null) return
    if (this.#uuidHeaderChecked < HEADER_LENGTH && !this.#checkUuidHeader(chunk)) return
    this.#parse(chunk, handler)
  }

  /** `feed`, with the frames returned as objects. */
  push(chunk: Buffer): Frame[] {
    const collector = new FrameCollector()
    this.feed(chunk, collector)
    return collector.frames
  }

  /**
   * Call when the peer has finished sending. Returns the stream's violation, or null if it ended
   * clean: ERR_AUDIOSOCKET_TRUNCATED if a frame was cut off (those bytes can never be completed),
   * or the violation that had already killed the parser.
   */
  end(): AppError | null {
    if (this.#error !== null || this.#headerFilled === 0) return this.#error
    const kind = hexByte(this.#header[0] as number)
    const message =
      this.#payload === null
        ? `connection ended inside the header of a kind ${kind} frame: ` +
          `${this.#headerFilled} of ${HEADER_LENGTH} header bytes received`
        : `connection ended inside the payload of a kind ${kind} frame: ` +
          `${this.#payloadFilled} of ${this.#payload.length} payload bytes received`
    this.#error = new AppError('ERR_AUDIOSOCKET_TRUNCATED', message)
    return this.#error
  }

  /**
   * False, with #error set, when the stream's first header is not the UUID frame's: its kind is
   * judged on the first byte, its length once both length bytes are in.
   */
  #checkUuidHeader(chunk: Buffer): boolean {
    const first = this.#uuidHeaderChecked === 0 ? chunk[0] : Kind.Uuid
    if (first !== undefined && first !== Kind.Uuid) {
      this.#error = new AppError('ERR_AUDIOSOCKET_FIRST_FRAME', `the first frame has kind ${hexByte(first)}, not the UUID frame 0x01 (is this an AudioSocket peer?)`)
      return false
    }
    const copied = chunk.copy(this.#uuidHeader, this.#uuidHeaderChecked, 0, HEADER_LENGTH - this.#uuidHeaderChecked)
    this.#uuidHeaderChecked += copied
    if (this.#uuidHeaderChecked < HEADER_LENGTH) return true
    const announced = this.#uuidHeader.readUInt16BE(1)
    if (announced === UUID_PAYLOAD_LENGTH) return true
    this.#error = new AppError('ERR_AUDIOSOCKET_BAD_UUID', `the UUID frame announces ${announced} bytes; a UUID is ${UUID_PAYLOAD_LENGTH}`)
    return false
  }

  // Decoding reports a violation by setting #error and returning false, never by throwing, so that
  // an exception out of feed() can only be a handler's.
  #parse(chunk: Buffer, handler: FrameHandler): void {
    const length = chunk.length
    let offset = 0

    if (this.#headerFilled > 0) {
      offset = this.#continuePartial(chunk, handler)
      if (offset < 0 || offset === length) return
    }

    // Fast path: whole frames straight out of the chunk, no copying.
    while (length - offset >= HEADER_LENGTH) {
      const kind = chunk[offset] as number
      const payloadLength = chunk.readUInt16BE(offset + 1)
      if (!this.#checkPayloadLength(kind, payloadLength)) return
      const start = offset + HEADER_LENGTH
      const end = start + payloadLength
      if (end > length) break
      if (!this.#deliver(kind, chunk.subarray(start, end), handler)) return
      offset = end
    }

    if (offset < length) this.#startPartial(chunk, offset)
  }

  /** Decodes one whole frame and hands it over; false (with #error set) if it violates its kind's rules. */
  #deliver(kind: number, payload: Buffer, handler: FrameHandler): boolean {
    // Audio is ~50 messages a second per call and everything else is rare, so test it first.
    const sampleRate = sampleRateOfKind(kind)
    if (sampleRate !== undefined) {
      this.#frameCount++
      handler.onAudio(kind, sampleRate, payload)
      return true
    }
    let frame: Frame
    try {
      frame = decodeFrame(kind, payload)
    } catch (err) {
      // decodeFrame throws AppErrors for violations only; anything else is a bug, rethrown as is.
      if (!(err instanceof AppError)) throw err
      if (handler.onInvalidFrame !== undefined) {
        handler.onInvalidFrame(kind, payload, err)
        return true
      }
      this.#error = err
      return false
    }
    this.#frameCount++
    handler.onFrame(frame as Exclude<Frame, AudioFrame>, payload)
    return true
  }

  /** Copies the unfinished frame at `offset` (the rest of the chunk) into parser-owned memory. */
  #startPartial(chunk: Buffer, offset: number): void {
    const available = chunk.length - offset
    if (available < HEADER_LENGTH) {
      chunk.copy(this.#header, 0, offset)
      this.#headerFilled = available
      return
    }
    // The fast loop only stops on a complete header whose payload is short (and already checked).
    chunk.copy(this.#header, 0, offset, offset + HEADER_LENGTH)
    this.#headerFilled = HEADER_LENGTH
    this.#payload = Buffer.allocUnsafe(this.#header.readUInt16BE(1))
    this.#payloadFilled = chunk.copy(this.#payload, 0, offset + HEADER_LENGTH)
  }

  /**
   * Feeds the start of `chunk` to the frame left unfinished by earlier pushes, copying only the
   * bytes that frame still needs. Returns how many bytes of `chunk` it used, or -1 on a violation.
   */
  #continuePartial(chunk: Buffer, handler: FrameHandler): number {
    let offset = 0
    if (this.#headerFilled < HEADER_LENGTH) {
      const copied = chunk.copy(this.#header, this.#headerFilled, 0, HEADER_LENGTH - this.#headerFilled)
      this.#headerFilled += copied
      offset = copied
      if (this.#headerFilled < HEADER_LENGTH) return offset
    }

    let payload = this.#payload
    if (payload === null) {
      const payloadLength = this.#header.readUInt16BE(1)
      if (!this.#checkPayloadLength(this.#header[0] as number, payloadLength)) return -1
      payload = payloadLength === 0 ? EMPTY : Buffer.allocUnsafe(payloadLength)
      this.#payload = payload
    }

    const copied = chunk.copy(payload, this.#payloadFilled, offset, offset + payload.length - this.#payloadFilled)
    this.#payloadFilled += copied
    offset += copied
    if (this.#payloadFilled < payload.length) return offset

    const kind = this.#header[0] as number
    // Reset before decoding so that a violation leaves no half state behind (it is fatal anyway).
    this.#headerFilled = 0
    this.#payload = null
    this.#payloadFilled = 0
    return this.#deliver(kind, payload, handler) ? offset : -1
  }

  /** False, with #error set, if a header announces more payload than this connection allows. */
  #checkPayloadLength(kind: number, payloadLength: number): boolean {
    if (payloadLength <= this.#maxPayloadLength) return true
    this.#error = new AppError(
      'ERR_AUDIOSOCKET_FRAME_TOO_LARGE',
      `kind ${hexByte(kind)} frame announces a ${payloadLength}-byte payload, ` +
        `above the ${this.#maxPayloadLength}-byte limit`,
    )
    return false
  }
}
