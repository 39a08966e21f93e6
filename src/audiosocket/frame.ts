import { AppError } from '../shared/errors.js'
import { DTMF_DIGITS, DTMF_PAYLOAD_LENGTH, Kind, UUID_PAYLOAD_LENGTH, sampleRateOfKind } from './constants.js'

/** Canonical lowercase 8-4-4-4-12 form; the 16 wire bytes are in the same order as the hex digits. */
export interface UuidFrame {
  readonly type: 'uuid'
  readonly uuid: string
}

/**
 * `payload` is s16le PCM labelled with `kind` (0x10-0x18). Any length is a valid frame, including 0
 * and odd lengths: whether such audio is usable is the consumer's call, not a framing error.
 */
export interface AudioFrame {
  readonly type: 'audio'
  readonly kind: number
  readonly sampleRate: number
  readonly payload: Buffer
}

export interface DtmfFrame {
  readonly type: 'dtmf'
  readonly digit: string
}

export interface HangupFrame {
  readonly type: 'hangup'
}

/** 0xff: `code` is the first payload byte (bit flags in the Go library), `undefined` if empty. */
export interface ErrorFrame {
  readonly type: 'error'
  readonly code: number | undefined
  readonly payload: Buffer
}

/** A kind this module does not know; its payload was skipped by length, which keeps framing in sync. */
export interface UnknownFrame {
  readonly type: 'unknown'
  readonly kind: number
  readonly payload: Buffer
}

/**
 * One decoded AudioSocket message. Payload buffers may be views into memory the caller passed in
 * (see FrameParser): copy one before keeping it past the current tick.
 */
export type Frame = UuidFrame | AudioFrame | DtmfFrame | HangupFrame | ErrorFrame | UnknownFrame

// A hangup carries nothing, so one frozen instance serves every connection without allocating.
const HANGUP_FRAME: HangupFrame = Object.freeze({ type: 'hangup' })

function hexByte(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`
}

/**
 * Turns one message (kind + exact payload) into a Frame, enforcing the per-kind payload lengths.
 * Throws AppError ERR_AUDIOSOCKET_BAD_UUID / ERR_AUDIOSOCKET_BAD_DTMF for structural violations.
 * The returned payload is `payload` itself, not a copy.
 */
export function decodeFrame(kind: number, payload: Buffer): Frame {
  // Audio is ~50 messages a second per call and everything else is rare, so test it first.
  const sampleRate = sampleRateOfKind(kind)
  if (sampleRate !== undefined) {
    return { type: 'audio', kind, sampleRate, payload }
  }
  switch (kind) {
    case Kind.Uuid:
      if (payload.length !== UUID_PAYLOAD_LENGTH) {
        throw new AppError(
          'ERR_AUDIOSOCKET_BAD_UUID',
          `UUID frame carries ${payload.length} bytes, expected ${UUID_PAYLOAD_LENGTH}`,
        )
      }
      return { type: 'uuid', uuid: uuidToString(payload) }
    case Kind.Dtmf:
      return { type: 'dtmf', digit: decodeDtmfDigit(payload) }
    case Kind.Hangup:
      return HANGUP_FRAME
    case Kind.Error:
      return { type: 'error', code: payload.length > 0 ? payload[0] : undefined, payload }
    default:
      return { type: 'unknown', kind, payload }
  }
}

function decodeDtmfDigit(payload: Buffer): string {
  if (payload.length !== DTMF_PAYLOAD_LENGTH) {
    throw new AppError(
      'ERR_AUDIOSOCKET_BAD_DTMF',
      `DTMF frame carries ${payload.length} bytes, expected ${DTMF_PAYLOAD_LENGTH}`,
    )
  }
  const byte = payload[0] as number
  const digit = String.fromCharCode(byte)
  if (!DTMF_DIGITS.includes(digit)) {
    throw new AppError(
      'ERR_AUDIOSOCKET_BAD_DTMF',
      `DTMF frame carries byte ${hexByte(byte)}, which is not one of 0-9 * # A-D`,
    )
  }
  return digit
}

/**
 * The canonical lowercase string of 16 UUID bytes. The bytes are in network order (libuuid
 * `uuid_pack`), so this is plain hex with hyphens: no .NET-style mixed-endian swapping.
 */
export function uuidToString(bytes: Uint8Array): string {
  if (bytes.length !== UUID_PAYLOAD_LENGTH) {
    throw new RangeError(`a UUID is ${UUID_PAYLOAD_LENGTH} bytes, got ${bytes.length}`)
  }
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

function isHexDigit(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) || // 0-9
    (code >= 0x41 && code <= 0x46) || // A-F
    (code >= 0x61 && code <= 0x66) // a-f
  )
}

/**
 * The 16 wire bytes of a UUID string. Accepts exactly what Asterisk's `uuid_parse()` (libuuid)
 * accepts, so anything this rejects is also a string Asterisk would refuse in the dialplan:
 * 36 characters, `-` at 8, 13, 18 and 23, hex digits of either case elsewhere. Version and variant
 * bits are not checked (the nil UUID is fine). Throws TypeError otherwise.
 */
export function uuidToBytes(uuid: string): Buffer {
  if (uuid.length !== 36) {
    throw new TypeError(`invalid UUID ${JSON.stringify(uuid)}: expected 36 characters (8-4-4-4-12), got ${uuid.length}`)
  }
  for (let i = 0; i < 36; i++) {
    const code = uuid.charCodeAt(i)
    const wantHyphen = i === 8 || i === 13 || i === 18 || i === 23
    if (wantHyphen ? code !== 0x2d : !isHexDigit(code)) {
      throw new TypeError(
        `invalid UUID ${JSON.stringify(uuid)}: expected ${wantHyphen ? "'-'" : 'a hex digit'} at position ${i}`,
      )
    }
  }
  // Safe only after the check above: Buffer.from(…, 'hex') silently stops at the first non-hex pair.
  return Buffer.from(uuid.replaceAll('-', ''), 'hex')
}
