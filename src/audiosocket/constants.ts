/**
 * The AudioSocket wire format, named once.
 *
 * Every message is `[kind: uint8][length: uint16 BIG-endian][payload: length bytes]`.
 * The length counts the payload only, not the 3-byte header, so a payload is at most 65535 bytes.
 * Audio payloads are signed 16-bit LITTLE-endian mono PCM (Asterisk writes host order, and every
 * Asterisk host is x86 or ARM). The two endiannesses differ on purpose: do not "fix" either one.
 */

/** kind (1 byte) + payload length (2 bytes, big-endian). */
export const HEADER_LENGTH = 3

/** The length field is a uint16, so nothing larger can be expressed on the wire. */
export const MAX_PAYLOAD_LENGTH = 0xffff

/** A UUID travels as its 16 raw bytes in RFC 4122 (network) order, not as text. */
export const UUID_PAYLOAD_LENGTH = 16

/** A DTMF message carries one ASCII byte: the digit. */
export const DTMF_PAYLOAD_LENGTH = 1

/** The digits Asterisk can put in a DTMF message (one per digit, sent when the digit ends). */
export const DTMF_DIGITS = '0123456789*#ABCD'

/** slin is 16-bit PCM. */
export const BYTES_PER_SAMPLE = 2

/**
 * Message kinds (`enum ast_audiosocket_msg_kind` in Asterisk's `res_audiosocket.h`).
 * Kinds not listed here exist in the wild (0x02 in the Go library and forks); they are skipped by
 * length, never treated as errors, because the kind set keeps growing.
 */
export const Kind = {
  /** 0x00: server -> Asterisk only. Asterisk ignores the payload; send length 0. */
  Hangup: 0x00,
  /** 0x01: Asterisk -> server, exactly once and first: the 16 raw UUID bytes. */
  Uuid: 0x01,
  /** 0x03: Asterisk -> server only (20.14+/21.9+/22.4+): one ASCII digit, sent at digit end. */
  Dtmf: 0x03,
  /** 0x10: slin 8 kHz. Also Asterisk's label for ANY non-slin codec (ulaw, alaw, opus, ...). */
  Slin8: 0x10,
  /** 0x11: slin 12 kHz (0x11-0x18 since 20.17/21.12/22.7/23.1; older versions label all of it 0x10). */
  Slin12: 0x11,
  /** 0x12: slin 16 kHz. */
  Slin16: 0x12,
  /** 0x13: slin 24 kHz. */
  Slin24: 0x13,
  /** 0x14: slin 32 kHz. */
  Slin32: 0x14,
  /** 0x15: slin 44.1 kHz (44100 Hz, not 44000). */
  Slin44: 0x15,
  /** 0x16: slin 48 kHz. */
  Slin48: 0x16,
  /** 0x17: slin 96 kHz. */
  Slin96: 0x17,
  /** 0x18: slin 192 kHz. */
  Slin192: 0x18,
  /** 0xff: documented with an optional 1-byte code, but no Asterisk version ever sends it. */
  Error: 0xff,
} as const

export type KnownKind = (typeof Kind)[keyof typeof Kind]

// Indexed by `kind - Kind.Slin8`: the audio kinds are contiguous, so a lookup is one subtraction.
const AUDIO_SAMPLE_RATES: readonly number[] = [8000, 12000, 16000, 24000, 32000, 44100, 48000, 96000, 192000]

export function isAudioKind(kind: number): boolean {
  return kind >= Kind.Slin8 && kind <= Kind.Slin192 && Number.isInteger(kind)
}

/**
 * The sample rate an audio kind announces, or `undefined` for non-audio kinds.
 * For 0x10 this is nominal: Asterisk before 20.17/21.12/22.7/23.1 labels every rate 0x10, and the
 * channel driver labels non-slin codecs 0x10 too, so the real format may have to come from config.
 */
export function sampleRateOfKind(kind: number): number | undefined {
  return isAudioKind(kind) ? AUDIO_SAMPLE_RATES[kind - Kind.Slin8] : undefined
}

/** The audio kind for a slin sample rate in Hz, or `undefined` if AudioSocket has none. */
export function audioKindForSampleRate(sampleRate: number): number | undefined {
  const index = AUDIO_SAMPLE_RATES.indexOf(sampleRate)
  return index === -1 ? undefined : Kind.Slin8 + index
}

/**
 * Bytes of mono slin per millisecond at `sampleRate` Hz (16 at 8 kHz, so a 20 ms frame is 320).
 * Fractional at 44.1 kHz (88.2), so round at the call site if a whole byte count is needed.
 */
export function bytesPerMs(sampleRate: number): number {
  return (sampleRate * BYTES_PER_SAMPLE) / 1000
}
