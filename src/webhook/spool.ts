/**
 * The durable delivery spool: every webhook event is written here before its first delivery attempt
 * and marked done (acknowledged) after a 2xx or after it went to the dead-letter file, so a crash or
 * restart loses nothing that was spooled. It knows event ids, call ids and seq numbers, nothing of calls.
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
 *   <crc> a <event id as a JSON string>\n              that event is done (delivered or dead-lettered)
 *
 * `<crc>` is the CRC-32 (IEEE, as zlib) of the UTF-8 bytes after the space that follows it, up to
 * the newline, as 8 lowercase hex digits. JSON.stringify never emits a raw newline, so a newline
 * always ends a record. `enqueuedAtMs` is the wall-clock time the event was first published (epoch ms):
 * WEBHOOK_MAX_AGE counts from it, across restarts.
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
 *
 * DURABILITY: a write is complete when the kernel has it (page cache), not when it reaches the disk
 * (no fsync). That survives the process being killed (SIGKILL, OOM, a crash) but not a power loss
 * or a kernel panic: an fsync per event would cost a disk flush per event on the PBX host, and the
 * threat we defend against is the process dying, not the host.
 *
 * CONCURRENCY: every file operation goes through SpoolIo: asynchronous (libuv's pool) by default, so
 * never on the event loop; synchronous (syncSpoolIo) in the delivery worker, whose loop is its own. Each
 * segment has a single writer: records queued while a write is in flight go out together in the
 * next writev, so a burst of events costs one system call, and records of one file keep their order.
 */
import fs from 'node:fs'
import { mkdir, readFile, readdir, unlink } from 'node:fs/promises'
import path from 'node:path'
import zlib from 'node:zlib'
import type { Logger } from 'pino'
import { AppError, isErrnoException } from '../shared/errors.js'
import { acquireSpoolLock, type SpoolLockOptions } from './spool-lock.js'

export { acquireSpoolLock, SPOOL_LOCK_FILE } from './spool-lock.js'

export const SPOOL_FORMAT_VERSION = 1
export const SPOOL_MAGIC = 'audiosocket-soniox-spool'
/** Roll over to a new segment past this size, unless the spool is small (see segmentBytes). */
export const DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024

const HEADER_LINE = `${SPOOL_MAGIC} ${SPOOL_FORMAT_VERSION}`
const HEADER = Buffer.from(`${HEADER_LINE}\n`, 'latin1')
const NEWLINE = Buffer.from('\n', 'latin1')
const SEGMENT_NAME = /^segment-(\d{12})\.log$/
const CRC_HEX = /^[0-9a-f]{8}$/
const EVENT_PREFIX = /^e (\d{1,16}) /

export function segmentFileName(segmentNumber: number): string {
  return `segment-${String(segmentNumber).padStart(12, '0')}.log`
}

// ---------------------------------------------------------------------------------------------
// CRC-32. zlib.crc32 is native from Node 20.15/22.2; the table version keeps Node 20.10+ working.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** CRC-32 (IEEE 802.3, the zlib/PNG one) in plain JavaScript. Exported for the test that pins it to zlib's. */
export function crc32Portable(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (let i = 0; i < bytes.length; i++) c = (CRC_TABLE[(c ^ (bytes[i] ?? 0)) & 0xff] ?? 0) ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

const nativeCrc32: ((data: Uint8Array) => number) | undefined = typeof zlib.crc32 === 'function' ? (data) => zlib.crc32(data) : undefined

export function crc32(bytes: Uint8Array): number {
  return nativeCrc32 ? nativeCrc32(bytes) : crc32Portable(bytes)
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

export function eventRecord(enqueuedAtMs: number, bodyText: string): Buffer {
  return encodeRecord(`e ${Math.max(0, Math.floor(enqueuedAtMs))} ${bodyText}`)
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
    if (!prefix) return undefined
    const bodyText = body.slice(prefix[0].length)
    const envelope: unknown = JSON.parse(bodyText)
    if (typeof envelope !== 'object' || envelope === null) return undefined
    const { id, call_id: callId, seq, type } = envelope as { id?: unknown; call_id?: unknown; seq?: unknown; type?: unknown }
    if (typeof id !== 'string' || typeof callId !== 'string' || typeof seq !== 'number' || !Number.isInteger(seq)) return undefined
    return { id, callId, seq, type: typeof type === 'string' ? type : 'unknown', enqueuedAtMs: Number(prefix[1]), bodyText }
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------
// The spool

/** File operations the writer uses, injectable so tests can fail writes (disk full) deterministically. */
export interface SpoolIo {
  /** Opens (creating if missing) for appending; resolves with a file descriptor. */
  open(filePath: string): Promise<number>
  /** Writes the buffers in order at the end of the file; resolves with the bytes written (may be short). */
  writev(fd: number, buffers: Buffer[]): Promise<number>
  close(fd: number): Promise<void>
}

export const nodeSpoolIo: SpoolIo = {
  open: (filePath) =>
    new Promise((resolve, reject) => fs.open(filePath, 'a', 0o600, (err, fd) => (err ? reject(err) : resolve(fd)))),
  writev: (fd, buffers) =>
    new Promise((resolve, reject) => fs.writev(fd, buffers, (err, written) => (err ? reject(err) : resolve(written)))),
  close: (fd) => new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve()))),
}

/**
 * The same operations done synchronously (wrapped in settled promises). Only for a thread that
 * does nothing else: the webhook delivery worker (delivery-worker.ts) uses it so that an event's
 * record is in the kernel within the same turn that received it, with no threadpool round trip
 * before its POST. On the main thread it would stall every call while the filesystem is slow.
 */
export const syncSpoolIo: SpoolIo = {
  open: (filePath) => attempt(() => fs.openSync(filePath, 'a', 0o600)),
  writev: (fd, buffers) => attempt(() => fs.writevSync(fd, buffers)),
  close: (fd) => attempt(() => fs.closeSync(fd)),
}

function attempt<T>(operation: () => T): Promise<T> {
  try {
    return Promise.resolve(operation())
  } catch (err) {
    return Promise.reject(err)
  }
}

export interface SpoolOptions {
  /** The directory (SPOOL_DIR), created if missing. */
  dir: string
  /** Bound on the bytes of all segments (SPOOL_MAX_BYTES); an event that would pass it is not spooled. */
  maxBytes: number
  logger: Logger
  /** Size past which the active segment is retired. Default maxBytes / 4, within 1 KiB..8 MiB. */
  segmentBytes?: number
  io?: SpoolIo
  /** The directory lock's clock, identity and refresh timer; tests inject them. Its log goes to `logger`. */
  lock?: Omit<SpoolLockOptions, 'log'>
}

/** Where an event was written; handed back to ack(). Opaque to callers. */
export interface SpoolRef {
  readonly segmentNumber: number
}

export interface RecoveredEvent extends SpooledEventRecord {
  ref: SpoolRef
}

export interface SpoolStats {
  /** Bytes in the segments this process manages (written and queued). */
  bytes: number
  segments: number
  /** Events written and not yet acknowledged. */
  liveEvents: number
  /** Records (events and acks) whose write failed. */
  writeFailures: number
  /** Events refused because the spool was at SPOOL_MAX_BYTES. */
  rejectedFull: number
  /** At open: records skipped because they were torn or damaged. */
  skippedRecords: number
}

interface PendingWrite {
  readonly line: Buffer
  /** Called once with null (written) or the error. */
  readonly done: (err: AppError | null) => void
}

/** `open` takes writes; `deleting` waits for its in-flight write, then is closed and unlinked. */
type SegmentState = 'open' | 'deleting' | 'deleted'

class Segment implements SpoolRef {
  state: SegmentState = 'open'
  fd: number | undefined
  /** Bytes in the file plus bytes queued for it. */
  size = 0
  /** Events written or being written to this file and not acknowledged yet. */
  live = 0
  /** No new events: a newer segment is active. */
  sealed = false
  /** The file does not exist yet: the header goes first. */
  needsHeader: boolean
  /** The file may end inside a record: start the next write with a newline. */
  needsSeparator = false
  /** A failed header write: nothing more may be appended to this file. */
  unusable = false
  queue: PendingWrite[] = []
  /** Acknowledgements not yet queued: they ride along with the next batch (see Spool.ack). */
  deferredAcks: PendingWrite[] = []
  writing = false

  constructor(
    readonly segmentNumber: number,
    readonly filePath: string,
    isNew: boolean,
  ) {
    this.needsHeader = isNew
  }
}

type SpoolState = 'new' | 'opening' | 'open' | 'closing' | 'closed'

/** Longest an acknowledgement waits to be written when no event write comes along to carry it. */
const ACK_FLUSH_MS = 100

export class Spool {
  private state: SpoolState = 'new'
  private ackFlushTimer: NodeJS.Timeout | undefined
  private readonly dir: string
  private readonly maxBytes: number
  private readonly segmentBytes: number
  private readonly logger: Logger
  private readonly io: SpoolIo
  private readonly lockOptions: Omit<SpoolLockOptions, 'log'>
  private readonly segments = new Set<Segment>()
  private active: Segment | undefined
  private nextNumber = 1
  private totalBytes = 0
  private releaseLock: (() => Promise<void>) | undefined
  /** Writes and deletions in flight; close() waits for them. */
  private readonly busy = new Set<Promise<void>>()
  private full = false
  private failing = false
  private readonly counts = { writeFailures: 0, rejectedFull: 0, skippedRecords: 0 }

  constructor(options: SpoolOptions) {
    if (!(options.maxBytes > 0)) throw new AppError('ERR_CONFIG_INVALID', `SPOOL_MAX_BYTES must be > 0, got ${options.maxBytes}`)
    this.dir = options.dir
    this.maxBytes = options.maxBytes
    // A quarter of the bound: a full spool then spans several segments, so delivering the oldest
    // events frees whole files (space is only ever reclaimed a file at a time).
    this.segmentBytes = options.segmentBytes ?? Math.min(DEFAULT_SEGMENT_BYTES, Math.max(1024, Math.floor(options.maxBytes / 4)))
    this.logger = options.logger
    this.io = options.io ?? nodeSpoolIo
    this.lockOptions = options.lock ?? {}
  }

  get directory(): string {
    return this.dir
  }

  /**
   * Creates the directory, takes the lock, and reads every segment. Resolves with the events not yet
   * acknowledged, in file order (segments oldest first). Throws ERR_SPOOL_OPEN / ERR_SPOOL_LOCKED.
   */
  async open(): Promise<RecoveredEvent[]> {
    if (this.state !== 'new') throw new Error('Spool.open() called twice')
    this.state = 'opening'
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 })
    } catch (cause) {
      throw new AppError('ERR_SPOOL_OPEN', `cannot create the spool directory ${this.dir} (SPOOL_DIR)`, { cause })
    }
    this.releaseLock = await acquireSpoolLock(this.dir, {
      ...this.lockOptions,
      log: (level, message) => this.logger[level]({ dir: this.dir }, message),
    })

    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (cause) {
      await this.releaseLock()
      throw new AppError('ERR_SPOOL_OPEN', `cannot read the spool directory ${this.dir} (SPOOL_DIR)`, { cause })
    }
    const numbered = names
      .map((name) => ({ name, match: SEGMENT_NAME.exec(name) }))
      .filter((x): x is { name: string; match: RegExpExecArray } => x.match !== null)
      .map(({ name, match }) => ({ name, segmentNumber: Number(match[1]) }))
      .sort((a, b) => a.segmentNumber - b.segmentNumber)

    const found: Array<{ segment: Segment; events: SpooledEventRecord[]; bytes: number }> = []
    const acked = new Set<string>()
    let torn = 0
    let damaged = 0
    for (const { name, segmentNumber } of numbered) {
      this.nextNumber = Math.max(this.nextNumber, segmentNumber + 1)
      const filePath = path.join(this.dir, name)
      let bytes: Buffer
      try {
        bytes = await readFile(filePath)
      } catch (cause) {
        await this.releaseLock()
        throw new AppError('ERR_SPOOL_OPEN', `cannot read the spool segment ${filePath}`, { cause })
      }
      const content = parseSegment(bytes)
      if (content.status === 'empty') {
        await unlink(filePath).catch(() => {})
        continue
      }
      if (content.status === 'unsupported') {
        this.logger.error(
          { file: filePath, header: content.header },
          `spool segment is not format ${SPOOL_FORMAT_VERSION} (written by another version?); left untouched and not delivered`,
        )
        continue
      }
      if (content.tornTail) torn++
      damaged += content.damaged
      for (const id of content.acks) acked.add(id)
      const segment = new Segment(segmentNumber, filePath, false)
      segment.sealed = true
      segment.size = bytes.length
      segment.needsSeparator = content.tornTail
      found.push({ segment, events: content.events, bytes: bytes.length })
    }

    const recovered: RecoveredEvent[] = []
    const seen = new Set<string>()
    for (const { segment, events } of found) {
      for (const event of events) {
        if (acked.has(event.id) || seen.has(event.id)) continue
        seen.add(event.id)
        segment.live++
        recovered.push({ ...event, ref: segment })
      }
      if (segment.live === 0) {
        await unlink(segment.filePath).catch(() => {})
      } else {
        this.segments.add(segment)
        this.totalBytes += segment.size
      }
    }
    this.counts.skippedRecords = torn + damaged
    if (torn > 0 || damaged > 0) {
      // Expected after a crash (a torn last record); damage in the middle of a file is not.
      this.logger.warn({ dir: this.dir, tornRecords: torn, damagedRecords: damaged }, 'spool records skipped at start (torn by a crash, or damaged)')
    }
    this.state = 'open'
    return recovered
  }

  /**
   * Appends an event. Resolves with its ref once the kernel has the bytes; rejects with
   * ERR_SPOOL_FULL (nothing written) or ERR_SPOOL_WRITE. Failures are logged here, once per change
   * of state (failing / working again, full / room again), never per event.
   */
  append(id: string, enqueuedAtMs: number, bodyText: string): Promise<SpoolRef> {
    if (this.state !== 'open') {
      return Promise.reject(new AppError('ERR_SPOOL_CLOSED', `the spool is ${this.state}; event ${id} not spooled`))
    }
    const line = eventRecord(enqueuedAtMs, bodyText)
    if (this.totalBytes + line.length > this.maxBytes && this.active && this.active.live === 0) {
      // Everything in the active segment is delivered, only its bytes remain: start afresh.
      this.active.sealed = true
      this.retireIfDone(this.active)
    }
    if (this.totalBytes + line.length > this.maxBytes) {
      this.counts.rejectedFull++
      const err = new AppError(
        'ERR_SPOOL_FULL',
        `the spool in ${this.dir} holds ${this.totalBytes} bytes and SPOOL_MAX_BYTES is ${this.maxBytes}; new events are delivered from memory only until it drains`,
      )
      if (!this.full) {
        this.full = true
        this.logger.error({ err, dir: this.dir, bytes: this.totalBytes, maxBytes: this.maxBytes }, 'spool full')
      }
      return Promise.reject(err)
    }
    if (this.full) {
      this.full = false
      this.logger.info({ dir: this.dir, bytes: this.totalBytes, rejected: this.counts.rejectedFull }, 'spool has room again')
    }

    const segment = this.activeSegment()
    segment.live++
    return new Promise<SpoolRef>((resolve, reject) => {
      this.enqueue(segment, {
        line,
        done: (err) => {
          if (err === null) {
            resolve(segment)
            return
          }
          // Not in this file after all: it must not hold the segment open.
          segment.live--
          this.retireIfDone(segment)
          reject(err)
        },
      })
    })
  }

  /**
   * Marks an event done. Never throws and is not awaited: a lost ack only means the event is
   * delivered once more after a restart, with the same id (at least once).
   */
  ack(ref: SpoolRef, id: string): void {
    if (!(ref instanceof Segment) || ref.state !== 'open' || this.state === 'closed') return
    ref.live--
    if (this.retireIfDone(ref)) return
    // Acks are not urgent (a lost one costs a redelivery with the same id) but event records are:
    // an event is POSTed only once its record is written. So acks do not get a write of their own
    // in front of the next event; they go out with the next batch, or by a flush within ACK_FLUSH_MS.
    const line = ackRecord(id)
    this.account(ref, line.length)
    ref.deferredAcks.push({ line, done: () => {} })
    this.ackFlushTimer ??= setTimeout(() => this.flushAcks(), ACK_FLUSH_MS)
  }

  private flushAcks(): void {
    this.ackFlushTimer = undefined
    for (const segment of this.segments) {
      if (segment.deferredAcks.length === 0 || segment.state !== 'open') continue
      segment.queue.push(...segment.deferredAcks)
      segment.deferredAcks = []
      if (!segment.writing) this.track(this.drain(segment))
    }
  }

  stats(): SpoolStats {
    let liveEvents = 0
    for (const segment of this.segments) liveEvents += segment.live
    return { bytes: this.totalBytes, segments: this.segments.size, liveEvents, ...this.counts }
  }

  /** Waits for queued writes to reach the kernel, closes the files and releases the lock. Idempotent. */
  async close(): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') return
    const wasOpen = this.state === 'open'
    if (this.ackFlushTimer !== undefined) clearTimeout(this.ackFlushTimer)
    this.flushAcks()
    this.state = 'closing'
    while (this.busy.size > 0) await Promise.allSettled([...this.busy])
    for (const segment of this.segments) {
      if (segment.fd !== undefined) await this.io.close(segment.fd).catch(() => {})
      segment.fd = undefined
    }
    this.state = 'closed'
    if (wasOpen) await this.releaseLock?.()
  }

  // -------------------------------------------------------------------------------------------

  private activeSegment(): Segment {
    const current = this.active
    if (current && !current.unusable && current.size < this.segmentBytes) return current
    if (current) {
      current.sealed = true
      this.retireIfDone(current)
    }
    const segment = new Segment(this.nextNumber, path.join(this.dir, segmentFileName(this.nextNumber)), true)
    this.nextNumber++
    this.segments.add(segment)
    this.active = segment
    return segment
  }

  /**
   * Size accounting: a record counts from the moment it is queued; a segment stops counting the
   * moment it is retired (its deletion is only a matter of time), so the bound frees up at once.
   */
  private account(segment: Segment, bytes: number): void {
    segment.size += bytes
    if (segment.state === 'open') this.totalBytes += bytes
  }

  private enqueue(segment: Segment, write: PendingWrite): void {
    this.account(segment, write.line.length)
    segment.queue.push(write)
    if (!segment.writing) this.track(this.drain(segment))
  }

  private track(work: Promise<void>): void {
    this.busy.add(work)
    void work.finally(() => this.busy.delete(work))
  }

  /** The single writer of a segment: writes what is queued, in batches, until the queue is empty. */
  private async drain(segment: Segment): Promise<void> {
    segment.writing = true
    while (segment.queue.length > 0 && segment.state === 'open') {
      const batch = segment.queue
      segment.queue = []
      // Pending acks ride along: no extra system call for them.
      if (segment.deferredAcks.length > 0) {
        batch.push(...segment.deferredAcks)
        segment.deferredAcks = []
      }
      await this.writeBatch(segment, batch)
    }
    segment.writing = false
    if (segment.state === 'deleting') await this.remove(segment)
  }

  private async writeBatch(segment: Segment, batch: PendingWrite[]): Promise<void> {
    if (segment.unusable) {
      this.fail(segment, batch, 0, new AppError('ERR_SPOOL_WRITE', `spool segment ${segment.filePath} is unusable after a failed header write`))
      return
    }
    const buffers: Buffer[] = []
    let prefixBytes = 0
    if (segment.needsHeader) buffers.push(HEADER)
    else if (segment.needsSeparator) buffers.push(NEWLINE)
    for (const b of buffers) prefixBytes += b.length
    for (const write of batch) buffers.push(write.line)

    let written = 0
    let error: unknown
    try {
      if (segment.fd === undefined) segment.fd = await this.io.open(segment.filePath)
      written = await this.io.writev(segment.fd, buffers)
    } catch (err) {
      error = err
    }
    const expected = prefixBytes + batch.reduce((n, w) => n + w.line.length, 0)
    // The records' bytes were counted when queued; the header or separator counts as far as it got.
    this.account(segment, Math.min(written, prefixBytes))
    if (error === undefined && written >= expected) {
      segment.needsHeader = false
      segment.needsSeparator = false
      if (this.failing) {
        this.failing = false
        this.logger.info({ dir: this.dir, writeFailures: this.counts.writeFailures }, 'spool writes succeed again')
      }
      for (const write of batch) write.done(null)
      return
    }

    // Partly written or not at all. Whatever reached the file is a complete prefix of `buffers`.
    if (segment.needsHeader && written < prefixBytes) {
      // A partial header cannot be repaired by appending: retire the file (recovery deletes or skips it).
      if (written > 0) segment.unusable = true
    } else if (segment.needsHeader) {
      segment.needsHeader = false
    }
    if (written < expected) segment.needsSeparator = true
    const err = new AppError(
      'ERR_SPOOL_WRITE',
      `spool write to ${segment.filePath} failed (${written} of ${expected} bytes written)`,
      error === undefined ? undefined : { cause: error },
    )
    this.fail(segment, batch, Math.max(0, written - prefixBytes), err)
  }

  /** Completes a failed batch: records entirely within the first `writtenRecordBytes` bytes did make it. */
  private fail(segment: Segment, batch: PendingWrite[], writtenRecordBytes: number, err: AppError): void {
    let offset = 0
    let failed = 0
    const outcomes: Array<[PendingWrite, AppError | null]> = []
    for (const write of batch) {
      const end = offset + write.line.length
      if (end <= writtenRecordBytes) {
        outcomes.push([write, null])
      } else {
        // Unwritten bytes leave the accounting; the torn part of a record stays (it is on disk).
        this.account(segment, -(end - Math.max(offset, writtenRecordBytes)))
        failed++
        outcomes.push([write, err])
      }
      offset = end
    }
    this.counts.writeFailures += failed
    if (!this.failing && failed > 0) {
      this.failing = true
      this.logger.error({ err, dir: this.dir }, 'spool write failed; events are delivered from memory only until writes succeed again')
    }
    for (const [write, outcome] of outcomes) write.done(outcome)
  }

  /** Deletes a segment that is sealed (or unusable) and has no live events. Returns true if it did. */
  private retireIfDone(segment: Segment): boolean {
    if (segment.state !== 'open' || segment.live > 0) return false
    const retired = segment.sealed || segment.unusable || (segment === this.active && segment.size >= this.segmentBytes)
    if (!retired) return false
    if (segment === this.active) this.active = undefined
    this.totalBytes -= segment.size
    segment.state = 'deleting'
    // Its queued acks are moot once the file is gone.
    for (const write of segment.queue) write.done(null)
    segment.queue = []
    segment.deferredAcks = []
    if (!segment.writing) this.track(this.remove(segment))
    return true
  }

  private async remove(segment: Segment): Promise<void> {
    if (segment.state === 'deleted') return
    segment.state = 'deleted'
    this.segments.delete(segment)
    if (segment.fd !== undefined) await this.io.close(segment.fd).catch(() => {})
    segment.fd = undefined
    await unlink(segment.filePath).catch((err: unknown) => {
      if (isErrnoException(err) && err.code === 'ENOENT') return
      this.logger.warn({ err, file: segment.filePath }, 'could not delete a delivered spool segment')
    })
  }
}
