import { DTMF_DIGITS, HEADER_LENGTH, Kind, MAX_PAYLOAD_LENGTH, isAudioKind } from './constants.js'
import { uuidToBytes } from './frame.js'

/**
 * Header and payload in ONE buffer, so the caller can send a message with a single `write()`:
 * Asterisk gives the rest of a split message at most 5 ms (20.15+) and older versions drop the call
 * on any short read. The payload is copied, so the caller may reuse `payload` afterwards.
 * Throws RangeError for a kind outside 0-255 or a payload above 65535 bytes.
 */
export function encodeFrame(kind: number, payload: Uint8Array): Buffer {
  if (!Number.isInteger(kind) || kind < 0 || kind > 0xff) {
    throw new RangeError(`kind must be an integer from 0 to 255, got ${kind}`)
  }
  if (payload.length > MAX_PAYLOAD_LENGTH) {
    throw new RangeError(`payload of ${payload.length} bytes exceeds the ${MAX_PAYLOAD_LENGTH}-byte maximum`)
  }
  const message = Buffer.allocUnsafe(HEADER_LENGTH + payload.length)
  message.writeUInt8(kind, 0)
  message.writeUInt16BE(payload.length, 1)
  message.set(payload, HEADER_LENGTH)
  return message
}

/** `00 00 00`. A fresh buffer each time, so no caller can corrupt another's copy. */
export function encodeHangup(): Buffer {
  return Buffer.from([Kind.Hangup, 0, 0])
}

/**
 * An audio message (`kind` 0x10-0x18) carrying s16le PCM. An empty `pcm` is refused because
 * Asterisk 20.14+ tears the call down on a zero-length audio message; to build one deliberately
 * (tests), use `encodeFrame`. Throws RangeError.
 */
export function encodeAudio(kind: number, pcm: Uint8Array): Buffer {
  if (!isAudioKind(kind)) {
    throw new RangeError(`kind 0x${kind.toString(16)} is not an audio kind (0x10-0x18)`)
  }
  if (pcm.length === 0) {
    throw new RangeError('an audio message needs at least one byte of PCM')
  }
  return encodeFrame(kind, pcm)
}

/**
 * The UUID message Asterisk sends first (for tests and the replay tool; a server never sends it).
 * Throws TypeError for a string `uuid_parse()` would reject.
 */
export function encodeUuid(uuid: string): Buffer {
  return encodeFrame(Kind.Uuid, uuidToBytes(uuid))
}

/**
 * A DTMF message as Asterisk sends it (for tests and the replay tool; Asterisk refuses DTMF from
 * the server). Throws RangeError unless `digit` is exactly one of 0-9 * # A-D.
 */
export function encodeDtmf(digit: string): Buffer {
  if (digit.length !== 1 || !DTMF_DIGITS.includes(digit)) {
    throw new RangeError(`DTMF digit must be one of 0-9 * # A-D, got ${JSON.stringify(digit)}`)
  }
  return encodeFrame(Kind.Dtmf, Buffer.from(digit, 'latin1'))
}
