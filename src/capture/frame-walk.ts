/**
 * Every frame of a complete recorded byte stream, with its stream offset, decoded by the protocol
 * module's own `decodeFrame` (per-kind validation lives there, once).
 *
 * Why not FrameParser: it is built for a live socket, so it dies at the first violation (the
 * stream can no longer be trusted) and does not report offsets. A recorded stream is analysed after
 * the fact: a bad DTMF byte or a wrong-length UUID leaves the framing in sync (the length field
 * still says where the next frame starts), so the walk notes the violation and carries on, and
 * `inspect` can list every violation with its offset.
 */
import { HEADER_LENGTH, decodeFrame, type Frame } from '../audiosocket/index.js'
import { AppError } from '../shared/errors.js'

export interface WalkedFrame {
  /** Stream offset of the frame's first header byte. */
  offset: number
  kind: number
  /** Payload length from the header. */
  length: number
  /** View of the payload in the stream. */
  payload: Buffer
  /** The decoded frame, or undefined when its payload violates the kind's rules (see `error`). */
  frame: Frame | undefined
  error: AppError | undefined
}

export interface FrameWalk {
  frames: WalkedFrame[]
  /** An unfinished frame at the end of the stream: where it starts and how many bytes it lacks. */
  trailing: { offset: number; present: number; missing: number } | undefined
}

export function walkFrames(stream: Buffer): FrameWalk {
  const frames: WalkedFrame[] = []
  let offset = 0
  while (stream.length - offset >= HEADER_LENGTH) {
    const kind = stream.readUInt8(offset)
    const length = stream.readUInt16BE(offset + 1) // big-endian, as on the wire
    const end = offset + HEADER_LENGTH + length
    if (end > stream.length) break
    const payload = stream.subarray(offset + HEADER_LENGTH, end)
    let frame: Frame | undefined
    let error: AppError | undefined
    try {
      frame = decodeFrame(kind, payload)
    } catch (err) {
      if (!(err instanceof AppError)) throw err
      error = err
    }
    frames.push({ offset, kind, length, payload, frame, error })
    offset = end
  }
  if (offset === stream.length) return { frames, trailing: undefined }
  const present = stream.length - offset
  const missing = present < HEADER_LENGTH ? HEADER_LENGTH - present : HEADER_LENGTH + stream.readUInt16BE(offset + 1) - present
  return { frames, trailing: { offset, present, missing } }
}

/**
 * Index from stream offsets to record times: `timeAt(offset)` is when the byte at `offset` arrived
 * (the time of the read that carried it).
 */
export function offsetTimeIndex(reads: ReadonlyArray<{ offset: number; length: number; atUs: number }>): (offset: number) => number {
  return (offset) => {
    let lo = 0
    let hi = reads.length - 1
    if (hi < 0) return 0
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if ((reads[mid] as { offset: number }).offset <= offset) lo = mid
      else hi = mid - 1
    }
    return (reads[lo] as { atUs: number }).atUs
  }
}
