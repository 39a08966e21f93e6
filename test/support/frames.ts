/**
 * Test fixtures for the AudioSocket wire format.
 *
 * `frames.*` build raw messages byte by byte, deliberately NOT through src/audiosocket's encoder,
 * so parser tests do not trust the code they check, and so they can build messages the encoder
 * refuses (bad DTMF digits, zero-length audio, wrong-length UUIDs).
 *
 * `loadCapture(stem)` reads one of the real Asterisk recordings in fixtures/asterisk-22.10.1/
 * (see fixtures/README.md):
 *
 *   const { bytes, frames } = loadCapture('app-8k-speech')
 *   // bytes:  Buffer, everything Asterisk sent, in order
 *   // frames: [{ atMs: 0.843, kind: 0x01, length: 16 }, { atMs: 499.426, kind: 0x10, length: 320 }, ...]
 */
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

function header(kind: number, length: number): Buffer {
  const h = Buffer.alloc(3)
  h[0] = kind
  h[1] = length >> 8 // big-endian length
  h[2] = length & 0xff
  return h
}

export const frames = {
  /** Any message: kind byte, big-endian length, payload. `payload` may be bytes or byte values. */
  raw(kind: number, payload: Uint8Array | readonly number[] = []): Buffer {
    const body = Buffer.from(payload)
    return Buffer.concat([header(kind, body.length), body])
  },

  /** `01 00 10` + the 16 bytes of the hex digits in order. Does not validate `uuid`. */
  uuid(uuid: string): Buffer {
    return frames.raw(0x01, Buffer.from(uuid.replaceAll('-', ''), 'hex'))
  },

  /**
   * An audio message of `nBytes` payload bytes. `fill` is a byte value or a function of the byte
   * index; by default the bytes follow a pattern that differs per index and per kind, so a payload
   * read from the wrong place does not compare equal by accident.
   */
  audio(kind: number, nBytes: number, fill?: number | ((index: number) => number)): Buffer {
    const payload = Buffer.alloc(nBytes)
    for (let i = 0; i < nBytes; i++) {
      payload[i] = fill === undefined ? (i * 7 + kind) & 0xff : typeof fill === 'number' ? fill : fill(i) & 0xff
    }
    return frames.raw(kind, payload)
  },

  /** `03 00 01 <ascii>`. Does not validate `digit`, so `frames.dtmf('x')` builds a bad frame. */
  dtmf(digit: string): Buffer {
    return frames.raw(0x03, Buffer.from(digit, 'latin1'))
  },

  /** `00 00 00`. */
  hangup(): Buffer {
    return frames.raw(0x00)
  },
}

/** Splits `bytes` into chunks whose sizes come from `sizes` (repeated); the last chunk may be shorter. */
export function chunk(bytes: Buffer, sizes: () => number): Buffer[] {
  const out: Buffer[] = []
  for (let offset = 0; offset < bytes.length; ) {
    const size = Math.max(1, sizes())
    out.push(bytes.subarray(offset, offset + size))
    offset += size
  }
  return out
}

/** Small deterministic PRNG (mulberry32): same seed, same sequence, so failures reproduce. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

// ---------------------------------------------------------------------------------------------
// Real captures

export const CAPTURE_DIR = fileURLToPath(new URL('../../fixtures/asterisk-22.10.1/', import.meta.url))

/** One row of `<stem>.frames.tsv`: when the frame arrived, its kind byte and payload length. */
export interface CaptureFrame {
  atMs: number
  kind: number
  length: number
}

export interface Capture {
  /** Every byte Asterisk sent on the connection, start to end. */
  bytes: Buffer
  /** The frames in `bytes`, in order, as listed in `<stem>.frames.tsv`. */
  frames: CaptureFrame[]
}

/** The subset of `<stem>.json` tests use. */
export interface CaptureSummary {
  uuid: string
  bytesReceived: number
  frames: number
  dtmf: { atMs: number; digit: string }[]
}

/** The stems (file names without extension) of every `.bin` capture, sorted. */
export function captureStems(): string[] {
  return readdirSync(CAPTURE_DIR)
    .filter((name) => name.endsWith('.bin'))
    .map((name) => name.slice(0, -'.bin'.length))
    .sort()
}

/** Reads `<stem>.bin` and `<stem>.frames.tsv`. */
export function loadCapture(stem: string): Capture {
  const bytes = readFileSync(`${CAPTURE_DIR}${stem}.bin`)
  const [head, ...rows] = readFileSync(`${CAPTURE_DIR}${stem}.frames.tsv`, 'utf8').trimEnd().split('\n')
  if (head !== 'ms_since_accept\tkind\tlength') {
    throw new Error(`${stem}.frames.tsv: unexpected header ${JSON.stringify(head)}`)
  }
  const frames = rows.map((row, index) => {
    const [atMs, kind, length] = row.split('\t')
    const frame = { atMs: Number(atMs), kind: Number(kind), length: Number(length) }
    if (!Number.isFinite(frame.atMs) || !Number.isInteger(frame.kind) || !Number.isInteger(frame.length)) {
      throw new Error(`${stem}.frames.tsv line ${index + 2}: cannot parse ${JSON.stringify(row)}`)
    }
    return frame
  })
  return { bytes, frames }
}

/** Reads `<stem>.json`. */
export function loadCaptureSummary(stem: string): CaptureSummary {
  return JSON.parse(readFileSync(`${CAPTURE_DIR}${stem}.json`, 'utf8')) as CaptureSummary
}
