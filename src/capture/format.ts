/**
 * The capture file format (`.ascap`), version 1: one AudioSocket connection, both directions,
 * every byte exactly as it crossed the socket (one record per read or write, never re-framed), with
 * microsecond times, so a replay reproduces Asterisk's cadence and TCP chunking.
 *
 * All integers are big-endian.
 *
 *   offset  size  field
 *   0       8     magic "ASCAP\r\n\x1a"  (CR LF and ^Z make a text-mode transfer detectable, as in PNG)
 *   8       2     format version (uint16) = 1
 *   10      4     header length H (uint32)
 *   14      H     header: UTF-8 JSON object (CaptureHeader)
 *   14+H    ...   records, until and including the end record:
 *                   offset_us  8  uint64  microseconds since the connection was accepted; never decreases
 *                   type       1  'D' (0x44) data, 'F' (0x46) FIN: that direction's sender finished,
 *                                 'R' (0x52) connection reset, 'E' (0x45) end of capture (last record)
 *                   direction  1  'I' (0x49) Asterisk -> server, 'O' (0x4f) server -> Asterisk,
 *                                 '-' (0x2d) for 'E'
 *                   length     4  uint32  bytes that follow ('D' only; 0 for the others)
 *                   bytes      length  the raw bytes of one socket read or write
 *
 * A file without its end record was cut off (a crash, a full disk): readers reject it unless asked
 * to salvage. The ASCII type and direction letters keep a hex dump readable.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { AppError } from '../shared/errors.js'

export const CAPTURE_MAGIC = Buffer.from('ASCAP\r\n\x1a', 'latin1')
export const CAPTURE_FORMAT_VERSION = 1
/** The conventional file extension. */
export const CAPTURE_EXTENSION = '.ascap'

const PREAMBLE_LENGTH = CAPTURE_MAGIC.length + 2 + 4
const RECORD_HEADER_LENGTH = 8 + 1 + 1 + 4
/** Sanity bounds: a header is a few hundred bytes, a socket read at most a few hundred KB. */
const MAX_HEADER_LENGTH = 1 << 20
const MAX_RECORD_LENGTH = 64 << 20

const TYPE_BYTES = { data: 0x44, fin: 0x46, reset: 0x52, end: 0x45 } as const
const DIRECTION_BYTES = { in: 0x49, out: 0x4f } as const
const NO_DIRECTION = 0x2d

export type RecordType = 'data' | 'fin' | 'reset'
/** `in` is what Asterisk sent (the TCP client), `out` what the server sent back. */
export type Direction = 'in' | 'out'

export interface CaptureRecord {
  /** Microseconds since the connection was accepted. */
  readonly offsetUs: number
  readonly type: RecordType
  readonly direction: Direction
  /** The raw bytes of one read or write ('data'); empty for 'fin' and 'reset'. */
  readonly data: Buffer
}

export interface Endpoint {
  address: string
  port: number
}

/** How the capture came to be. */
export type CaptureMode = 'server' | 'listen' | 'tee' | 'import-pcap' | 'converted' | 'synthetic'

/**
 * The JSON header. Readers ignore fields they do not know, so a later tool can add optional
 * fields without a version bump; removing or retyping one needs a new version.
 */
export interface CaptureHeader {
  /** Wall-clock time the connection was accepted (ISO 8601, UTC), or null when unknown. */
  capturedAt: string | null
  /** What wrote the file, e.g. "audiosocket-soniox 0.1.0". */
  tool: string
  mode: CaptureMode
  /** The peer that sent the 'in' bytes (the TCP client: Asterisk), when known. */
  asterisk: Endpoint | null
  /** The side that accepted the connection, when known. */
  server: Endpoint | null
  /** Free text: where the bytes came from (a pcap file and connection, a fixture, ...). */
  source?: string
  /** Tee mode: the proxy's own listening address (Asterisk connected here). */
  proxy?: Endpoint | null
}

export interface Capture {
  header: CaptureHeader
  /** In file order, which is time order. */
  records: CaptureRecord[]
  /** Offset of the end record: when the connection closed (the last record's time if salvaged). */
  endUs: number
  /** Only with `allowTruncated`: the file was cut off and this is what could be read. */
  truncated?: { atByte: number; reason: string }
}

export interface DecodeOptions {
  /** Return what precedes a cut-off point instead of failing (the end record may be missing). */
  allowTruncated?: boolean
  /** Names the file in error messages. */
  name?: string
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Magic, version and header: the first bytes of every capture file. */
export function encodeCapturePreamble(header: CaptureHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  const out = Buffer.allocUnsafe(PREAMBLE_LENGTH + json.length)
  CAPTURE_MAGIC.copy(out, 0)
  out.writeUInt16BE(CAPTURE_FORMAT_VERSION, CAPTURE_MAGIC.length)
  out.writeUInt32BE(json.length, CAPTURE_MAGIC.length + 2)
  json.copy(out, PREAMBLE_LENGTH)
  return out
}

/** One record, header and bytes in one buffer (the bytes are copied). */
export function encodeRecord(offsetUs: number, type: RecordType | 'end', direction: Direction | null, data?: Uint8Array): Buffer {
  if (!Number.isSafeInteger(offsetUs) || offsetUs < 0) throw new RangeError(`offsetUs must be a non-negative integer, got ${offsetUs}`)
  const length = type === 'data' ? (data?.length ?? 0) : 0
  const out = Buffer.allocUnsafe(RECORD_HEADER_LENGTH + length)
  out.writeBigUInt64BE(BigInt(offsetUs), 0)
  out[8] = TYPE_BYTES[type]
  out[9] = direction === null ? NO_DIRECTION : DIRECTION_BYTES[direction]
  out.writeUInt32BE(length, 10)
  if (length > 0 && data) out.set(data, RECORD_HEADER_LENGTH)
  return out
}

/** A whole capture file in memory; the end record is written at `endUs`. */
export function encodeCapture(capture: Pick<Capture, 'header' | 'records' | 'endUs'>): Buffer {
  const parts = [encodeCapturePreamble(capture.header)]
  let last = 0
  for (const r of capture.records) {
    if (r.offsetUs < last) throw new RangeError(`record times must not decrease (${r.offsetUs} after ${last})`)
    last = r.offsetUs
    parts.push(encodeRecord(r.offsetUs, r.type, r.direction, r.data))
  }
  parts.push(encodeRecord(Math.max(last, capture.endUs), 'end', null))
  return Buffer.concat(parts)
}

export async function writeCaptureFile(path: string, capture: Pick<Capture, 'header' | 'records' | 'endUs'>): Promise<void> {
  await writeFile(path, encodeCapture(capture), { mode: 0o600 })
}

// ---------------------------------------------------------------------------------------------
// Decoding

const PCAP_MAGICS = new Set(['a1b2c3d4', 'd4c3b2a1', 'a1b23c4d', '4d3cb2a1', '0a0d0d0a'])

function notACapture(name: string, bytes: Buffer): AppError {
  const head = bytes.subarray(0, 4).toString('hex')
  const hint = PCAP_MAGICS.has(head)
    ? ' It is a packet capture (pcap/pcapng): convert it with "audiosocket-soniox import-pcap".'
    : head.startsWith('1f8b')
      ? ' It is gzip-compressed: decompress it first.'
      : ''
  return new AppError('ERR_CAPTURE_NOT_A_CAPTURE', `${name} is not an AudioSocket capture file (it does not start with "ASCAP").${hint}`)
}

/**
 * Parses a capture file held in memory. Record `data` are views of `bytes` (no copy).
 * Throws AppError ERR_CAPTURE_NOT_A_CAPTURE, ERR_CAPTURE_VERSION, ERR_CAPTURE_TRUNCATED or
 * ERR_CAPTURE_CORRUPT, each naming the byte offset where the problem is.
 */
export function decodeCapture(bytes: Buffer, options: DecodeOptions = {}): Capture {
  const name = options.name ?? 'the capture'
  if (bytes.length < CAPTURE_MAGIC.length || !bytes.subarray(0, CAPTURE_MAGIC.length).equals(CAPTURE_MAGIC)) {
    if (bytes.length < CAPTURE_MAGIC.length && CAPTURE_MAGIC.subarray(0, bytes.length).equals(bytes)) {
      throw new AppError('ERR_CAPTURE_TRUNCATED', `${name} is cut off after ${bytes.length} bytes, inside the magic number`)
    }
    throw notACapture(name, bytes)
  }
  if (bytes.length < PREAMBLE_LENGTH) {
    throw new AppError('ERR_CAPTURE_TRUNCATED', `${name} is cut off after ${bytes.length} bytes, inside the file preamble`)
  }
  const version = bytes.readUInt16BE(CAPTURE_MAGIC.length)
  if (version !== CAPTURE_FORMAT_VERSION) {
    throw new AppError(
      'ERR_CAPTURE_VERSION',
      `${name} uses capture format version ${version}; this tool reads version ${CAPTURE_FORMAT_VERSION}` +
        (version > CAPTURE_FORMAT_VERSION ? ' (written by a newer audiosocket-soniox: upgrade to read it)' : ''),
    )
  }
  const headerLength = bytes.readUInt32BE(CAPTURE_MAGIC.length + 2)
  if (headerLength > MAX_HEADER_LENGTH) {
    throw new AppError('ERR_CAPTURE_CORRUPT', `${name}: the header announces ${headerLength} bytes, more than any capture header holds`)
  }
  if (bytes.length < PREAMBLE_LENGTH + headerLength) {
    throw new AppError(
      'ERR_CAPTURE_TRUNCATED',
      `${name} is cut off inside its header: ${bytes.length - PREAMBLE_LENGTH} of ${headerLength} header bytes present`,
    )
  }
  const header = parseHeader(bytes.subarray(PREAMBLE_LENGTH, PREAMBLE_LENGTH + headerLength), name)

  const records: CaptureRecord[] = []
  let offset = PREAMBLE_LENGTH + headerLength
  let lastUs = 0
  const truncated = (reason: string): Capture => {
    if (!options.allowTruncated) {
      throw new AppError('ERR_CAPTURE_TRUNCATED', `${name} is cut off at byte ${offset}: ${reason} (the recording did not finish; --allow-truncated reads what is there)`)
    }
    return { header, records, endUs: lastUs, truncated: { atByte: offset, reason } }
  }

  for (;;) {
    if (offset === bytes.length) return truncated(`the end record is missing after ${records.length} records`)
    if (bytes.length - offset < RECORD_HEADER_LENGTH) {
      return truncated(`only ${bytes.length - offset} of a ${RECORD_HEADER_LENGTH}-byte record header are present`)
    }
    const offsetBig = bytes.readBigUInt64BE(offset)
    const typeByte = bytes[offset + 8] as number
    const directionByte = bytes[offset + 9] as number
    const length = bytes.readUInt32BE(offset + 10)
    const corrupt = (what: string): AppError => new AppError('ERR_CAPTURE_CORRUPT', `${name}: record ${records.length} at byte ${offset}: ${what}`)

    if (offsetBig > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`time offset ${offsetBig} us is out of range`)
    const offsetUs = Number(offsetBig)
    if (offsetUs < lastUs) throw corrupt(`time goes backwards (${offsetUs} us after ${lastUs} us)`)

    if (typeByte === TYPE_BYTES.end) {
      if (length !== 0) throw corrupt(`the end record carries ${length} bytes`)
      offset += RECORD_HEADER_LENGTH
      if (offset !== bytes.length) throw corrupt(`${bytes.length - offset} bytes follow the end record`)
      return { header, records, endUs: offsetUs }
    }
    const type = typeByte === TYPE_BYTES.data ? 'data' : typeByte === TYPE_BYTES.fin ? 'fin' : typeByte === TYPE_BYTES.reset ? 'reset' : undefined
    if (type === undefined) throw corrupt(`unknown record type 0x${typeByte.toString(16).padStart(2, '0')}`)
    const direction = directionByte === DIRECTION_BYTES.in ? 'in' : directionByte === DIRECTION_BYTES.out ? 'out' : undefined
    if (direction === undefined) throw corrupt(`unknown direction 0x${directionByte.toString(16).padStart(2, '0')}`)
    if (type !== 'data' && length !== 0) throw corrupt(`a ${type} record carries ${length} bytes`)
    if (length > MAX_RECORD_LENGTH) throw corrupt(`announces ${length} bytes, more than any socket read`)
    if (bytes.length - offset - RECORD_HEADER_LENGTH < length) {
      return truncated(`record ${records.length} announces ${length} bytes but only ${bytes.length - offset - RECORD_HEADER_LENGTH} remain`)
    }
    const start = offset + RECORD_HEADER_LENGTH
    records.push({ offsetUs, type, direction, data: bytes.subarray(start, start + length) })
    lastUs = offsetUs
    offset = start + length
  }
}

function isEndpoint(v: unknown): v is Endpoint {
  const e = v as Endpoint
  return typeof v === 'object' && v !== null && typeof e.address === 'string' && Number.isInteger(e.port)
}

function parseHeader(json: Buffer, name: string): CaptureHeader {
  let value: unknown
  try {
    value = JSON.parse(json.toString('utf8'))
  } catch {
    throw new AppError('ERR_CAPTURE_CORRUPT', `${name}: the header is not valid JSON`)
  }
  const h = value as Partial<CaptureHeader>
  const problems: string[] = []
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AppError('ERR_CAPTURE_CORRUPT', `${name}: the header is not a JSON object`)
  }
  if (h.capturedAt !== null && typeof h.capturedAt !== 'string') problems.push('capturedAt must be a string or null')
  if (typeof h.tool !== 'string') problems.push('tool must be a string')
  if (typeof h.mode !== 'string') problems.push('mode must be a string')
  if (h.asterisk !== null && !isEndpoint(h.asterisk)) problems.push('asterisk must be {address, port} or null')
  if (h.server !== null && !isEndpoint(h.server)) problems.push('server must be {address, port} or null')
  if (problems.length > 0) throw new AppError('ERR_CAPTURE_CORRUPT', `${name}: invalid header: ${problems.join('; ')}`)
  return value as CaptureHeader
}

export async function readCaptureFile(path: string, options: Omit<DecodeOptions, 'name'> = {}): Promise<Capture> {
  return decodeCapture(await readFile(path), { ...options, name: path })
}

// ---------------------------------------------------------------------------------------------
// Views

/** The bytes of one direction, concatenated, with where each record starts in that stream. */
export interface DirectionStream {
  bytes: Buffer
  /** For each data record of the direction: its stream offset and time. */
  reads: Array<{ offset: number; length: number; atUs: number }>
  /** When that side sent FIN or the connection was reset, if it did. */
  finUs: number | undefined
  resetUs: number | undefined
}

export function directionStream(capture: Capture, direction: Direction): DirectionStream {
  const parts: Buffer[] = []
  const reads: DirectionStream['reads'] = []
  let offset = 0
  let finUs: number | undefined
  let resetUs: number | undefined
  for (const r of capture.records) {
    if (r.type === 'reset') resetUs ??= r.offsetUs
    if (r.direction !== direction) continue
    if (r.type === 'fin') finUs ??= r.offsetUs
    if (r.type !== 'data' || r.data.length === 0) continue
    parts.push(r.data)
    reads.push({ offset, length: r.data.length, atUs: r.offsetUs })
    offset += r.data.length
  }
  return { bytes: parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts), reads, finUs, resetUs }
}

/** Index of the read in `reads` (ascending offsets) that carried the byte at stream `offset`; 0 if none. */
export function readIndexAt(reads: ReadonlyArray<{ offset: number }>, offset: number): number {
  let lo = 0
  let hi = reads.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if ((reads[mid] as { offset: number }).offset <= offset) lo = mid
    else hi = mid - 1
  }
  return lo
}

/**
 * Index from stream offsets to record times: `timeAt(offset)` is when the byte at `offset` arrived
 * (the time of the read that carried it), 0 for a stream without reads.
 */
export function offsetTimeIndex(reads: ReadonlyArray<{ offset: number; atUs: number }>): (offset: number) => number {
  return (offset) => reads[readIndexAt(reads, offset)]?.atUs ?? 0
}
