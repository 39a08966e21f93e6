/**
 * Every frame of a complete recorded byte stream, with its stream offset, read by the protocol
 * module's own FrameParser (framing and per-kind validation live there, once).
 *
 * A recorded stream is analysed after the fact, unlike a live socket: a bad DTMF byte or a
 * wrong-length UUID leaves the framing in sync (the length field still says where the next frame
 * starts), so the walk notes the violation (FrameHandler.onInvalidFrame) and carries on, and
 * `inspect` can list every violation with its offset.
 */
import { FrameParser, HEADER_LENGTH, type Frame } from '../audiosocket/index.js'
import type { AppError } from '../shared/errors.js'

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
  // The whole stream is one chunk, so by the parser's memory contract every complete frame is
  // decoded in place: each payload is a view of `stream`, and its position gives the frame's offset.
  const add = (payload: Buffer, frame: Frame | undefined, error: AppError | undefined): void => {
    const offset = payload.byteOffset - stream.byteOffset - HEADER_LENGTH
    frames.push({ offset, kind: stream[offset] as number, length: payload.length, payload, frame, error })
  }
  const parser = new FrameParser()
  parser.feed(stream, {
    onAudio: (kind, sampleRate, payload) => add(payload, { type: 'audio', kind, sampleRate, payload }, undefined),
    onFrame: (frame, payload) => add(payload, frame, undefined),
    onInvalidFrame: (_kind, payload, error) => add(payload, undefined, error),
  })
  // Only per-kind violations can occur at the default payload limit, and onInvalidFrame takes those.
  if (parser.error !== null) throw parser.error
  const present = parser.bufferedBytes
  if (present === 0) return { frames, trailing: undefined }
  const offset = stream.length - present
  const missing = present < HEADER_LENGTH ? HEADER_LENGTH - present : HEADER_LENGTH + stream.readUInt16BE(offset + 1) - present
  return { frames, trailing: { offset, present, missing } }
}
