/**
 * The spool's files, as bytes: what Spool (spool.ts) writes and reads back, and nothing else. Pure
 * functions, no I/O, so the unit tests feed them torn and damaged bytes directly.
 *
 * ON-DISK FORMAT, version 1 (a directory, SPOOL_DIR):
 *
 *   spool.lock                 who uses the directory: pid, process start time, boot id, host (see spool-lock.ts)
 *   segment-000000000001.log   append-only segment files, numbered in creation order (12 digits)
 *   segment-000000000002.log
 *   dead-letter.jsonl          see dead-letter.ts
 *
 * A segment is text, one record per line:
 *
 *   audiosocket-soniox-spool 1\n                       header: magic and format version
 *   <crc> e <enqueuedAtMs> <envelope JSON>\n           an event, exactly the bytes POSTed
 *   <crc> f <enqueuedAtMs> <fields JSON>\t<body>\n      an event whose body does not carry its id, call_id
 *                                                      and seq (WEBHOOK_FORMAT=avr): {"id","call_id","seq",
 *                                                      "type"}, a tab, then exactly the bytes POSTed
 *   <crc> a <event id as a JSON string>\n              that event is done (delivered or dead-lettered)
 *
 * `<crc>` is the CRC-32 (IEEE, as zlib) of the UTF-8 bytes after the space that follows it, up to
 * the newline, as 8 lowercase hex digits. JSON.stringify never emits a raw newline, so a newline
 * always ends a record, and never a raw tab, so the first tab of an `f` record ends its fields.
 * `enqueuedAtMs` is the wall-clock time the event was first published (epoch ms): WEBHOOK_MAX_AGE
 * counts from it, across restarts. (`f` records came with WEBHOOK_FORMAT=avr; a server older than
 * that counts them as damaged records and skips them.)
 *
 * Rules that keep recovery simple:
 * - An event is written once, to one segment, and its ack goes to the same segment. A segment is
 *   therefore self-contained: when every event in it is acknowledged, the file is deleted whole.
 *   That is the only compaction, and it needs no rewriting.
 * - New events go to the newest (active) segment; once it passes `segmentBytes` a new one is started,
 *   and the old one stays only while some of its events are undelivered.
 * - A torn record (a write cut short by a crash, SIGKILL included: Linux can return a short write
 *   when a fatal signal arrives between pages, or by a full disk) is a line without its newline or
 *   with a wrong checksum: it is ignored. Because the next append would otherwise continue that
 *   partial line and damage a good record, a segment whose last write failed or whose tail is torn
 *   gets a bare newline before its next record; readers skip empty lines.
 * - Recovery never appends to a partial header and never rewrites a file; empty files and files
 *   whose events are all acknowledged are deleted; files of another format version are left alone.
 */
import zlib from 'node:zlib'

export const SPOOL_FORMAT_VERSION = 1
export const SPOOL_MAGIC = 'audiosocket-soniox-spool'

const HEADER_LINE = `${SPOOL_MAGIC} ${SPOOL_FORMAT_VERSION}`
export const HEADER = Buffer.from(`${HEADER_LINE}\n`, 'latin1')
export const NEWLINE = Buffer.from('\n', 'latin1')
export const SEGMENT_NAME = /^segment-(\d{12})\.log$/
const CRC_HEX = /^[0-9a-f]{8}$/
const EVENT_PREFIX = /^e (\d{1,16}) /
const FIELDS_EVENT_PREFIX = /^f (\d{1,16}) /

export function segmentFileName(segmentNumber: number): string {
  return `segment-${String(segmentNumber).padStart(12, '0')}.log`
}

// ---------------------------------------------------------------------------------------------
// CRC-32 (IEEE 802.3, the zlib/PNG one): zlib.crc32, native since Node 20.15 (package.json engines).

export function crc32(bytes: Uint8Array): number {
  return zlib.crc32(bytes)
}

// ---------------------------------------------------------------------------------------------
// Records

/** `<crc> <body>\n` as bytes, encoded in one allocation (this runs once per event and once per ack). */
export function encodeRecord(body: string): Buffer {
  const bodyBytes = Buffer.byteLength(body, 'utf8')
  const line = Buffer.allocUnsafe(bodyBytes + 10)
  line.write(body, 9, 'utf8')
  const crc = crc32(line.subarray(9, 9 + bodyBytes))
  line.write(crc.toString(16).padStart(8, '0'), 0, 'latin1')
  line[8] = 0x20
  line[9 + bodyBytes] = 0x0a
  return line
}

/** The fields of an event whose body does not carry them (an AVR body): written beside it. */
export interface EventFields {
  readonly callId: string
  readonly seq: number
  readonly type: string
}

/** An `e` record, or with `fields` (a body that does not carry its id, call_id and seq) an `f` record. */
export function eventRecord(enqueuedAtMs: number, bodyText: string, fields?: EventFields & { readonly id: string }): Buffer {
  const at = Math.max(0, Math.floor(enqueuedAtMs))
  if (fields === undefined) return encodeRecord(`e ${at} ${bodyText}`)
  const head = JSON.stringify({ id: fields.id, call_id: fields.callId, seq: fields.seq, type: fields.type })
  return encodeRecord(`f ${at} ${head}\t${bodyText}`)
}

export function ackRecord(eventId: string): Buffer {
  return encodeRecord(`a ${JSON.stringify(eventId)}`)
}

/** The header every segment starts with. */
export function segmentHeader(): Buffer {
  return Buffer.from(HEADER)
}

export interface SpooledEventRecord {
  id: string
  callId: string
  seq: number
  /** The envelope's `type` (for logs). */
  type: string
  enqueuedAtMs: number
  /** The envelope exactly as it was written, and as it is POSTed. */
  bodyText: string
}

export type SegmentContent =
  | {
      status: 'ok'
      events: SpooledEventRecord[]
      acks: string[]
      /** Complete lines that fail their checksum or do not parse: damage, or a torn record followed by later ones. */
      damaged: number
      /** The file ends inside a record (no final newline): the last write was cut short. */
      tornTail: boolean
    }
  /** No complete header: created and never written, or the header write itself was cut short. */
  | { status: 'empty' }
  /** Not a version-1 segment (a newer format, or not ours): never touched. */
  | { status: 'unsupported'; header: string }

/** Parses a whole segment file. Pure: the unit tests feed it torn and damaged bytes directly. */
export function parseSegment(bytes: Buffer): SegmentContent {
  const headerEnd = bytes.indexOf(0x0a)
  if (headerEnd === -1) {
    return HEADER.subarray(0, bytes.length).equals(bytes)
      ? { status: 'empty' }
      : { status: 'unsupported', header: bytes.toString('latin1', 0, Math.min(bytes.length, 64)) }
  }
  const header = bytes.toString('latin1', 0, headerEnd)
  if (header !== HEADER_LINE) return { status: 'unsupported', header: header.slice(0, 64) }

  const events: SpooledEventRecord[] = []
  const acks: string[] = []
  let damaged = 0
  let tornTail = false
  let pos = headerEnd + 1
  while (pos < bytes.length) {
    const end = bytes.indexOf(0x0a, pos)
    if (end === -1) {
      tornTail = true
      break
    }
    // An empty line is the separator written after a failed write (see the module comment).
    if (end > pos) {
      const record = parseRecord(bytes, pos, end)
      if (record === undefined) damaged++
      else if (typeof record === 'string') acks.push(record)
      else events.push(record)
    }
    pos = end + 1
  }
  return { status: 'ok', events, acks, damaged, tornTail }
}

/** One line (without its newline): an event, an ack (the id), or undefined when damaged. */
function parseRecord(bytes: Buffer, start: number, end: number): SpooledEventRecord | string | undefined {
  if (end - start < 11 || bytes[start + 8] !== 0x20) return undefined
  const hex = bytes.toString('latin1', start, start + 8)
  if (!CRC_HEX.test(hex) || crc32(bytes.subarray(start + 9, end)) !== Number.parseInt(hex, 16)) return undefined
  const body = bytes.toString('utf8', start + 9, end)
  try {
    if (body.startsWith('a ')) {
      const id: unknown = JSON.parse(body.slice(2))
      return typeof id === 'string' ? id : undefined
    }
    const prefix = EVENT_PREFIX.exec(body)
    if (prefix) {
      const bodyText = body.slice(prefix[0].length)
      return eventFrom(JSON.parse(bodyText), Number(prefix[1]), bodyText)
    }
    const apart = FIELDS_EVENT_PREFIX.exec(body)
    if (!apart) return undefined
    const tab = body.indexOf('\t', apart[0].length)
    if (tab === -1) return undefined
    const bodyText = body.slice(tab + 1)
    const posted: unknown = JSON.parse(bodyText)
    if (typeof posted !== 'object' || posted === null) return undefined
    return eventFrom(JSON.parse(body.slice(apart[0].length, tab)), Number(apart[1]), bodyText)
  } catch {
    return undefined
  }
}

/** The event of a record from its fields (the envelope itself, or an `f` record's fields), or undefined. */
function eventFrom(fields: unknown, enqueuedAtMs: number, bodyText: string): SpooledEventRecord | undefined {
  if (typeof fields !== 'object' || fields === null) return undefined
  const { id, call_id: callId, seq, type } = fields as { id?: unknown; call_id?: unknown; seq?: unknown; type?: unknown }
  if (typeof id !== 'string' || typeof callId !== 'string' || typeof seq !== 'number' || !Number.isInteger(seq)) return undefined
  return { id, callId, seq, type: typeof type === 'string' ? type : 'unknown', enqueuedAtMs, bodyText }
}
