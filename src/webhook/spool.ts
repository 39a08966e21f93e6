/**
 * (Over 400 lines: about a quarter is this comment; recovery, size bound, write failures and
 * segment retirement share one segment set. The byte format is in spool-format.ts.)
 *
 * The durable delivery spool: every webhook event is written here before its first delivery attempt
 * and marked done (acknowledged) after a 2xx or after it went to the dead-letter file, so a crash or
 * restart loses nothing that was spooled. It knows event ids, call ids and seq numbers, nothing of calls.
 *
 * The bytes of its files are in spool-format.ts; the directory lock in spool-lock.ts.
 *
 * DURABILITY: a write is complete when the kernel has it (page cache), not when it reaches the disk
 * (no fsync). That survives the process being killed (SIGKILL, OOM, a crash) but not a power loss
 * or a kernel panic: an fsync per event would cost a disk flush per event on the PBX host, and the
 * threat we defend against is the process dying, not the host.
 *
 * CONCURRENCY: the spool runs only in the webhook delivery worker (delivery-worker.ts), a thread whose
 * loop does nothing else, so every write is synchronous: an event's record is in the kernel when
 * append() returns, with no threadpool round trip before its POST (on the main thread the same write
 * would stall every call while the filesystem is slow). Acknowledgements are not urgent (a lost one
 * costs a redelivery with the same id): they wait and ride along with the next event's write, or are
 * written within ACK_FLUSH_MS, so a burst of deliveries costs few system calls.
 */
import fs from 'node:fs'
import { mkdir, readFile, readdir, unlink } from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from 'pino'
import { systemClock, type Clock, type ClockTimer } from '../shared/clock.js'
import { AppError, isErrnoException } from '../shared/errors.js'
import { eventRecord, HEADER, NEWLINE, parseSegment, SEGMENT_NAME, segmentFileName, SPOOL_FORMAT_VERSION, type SpooledEventRecord, type EventFields, ackRecord } from './spool-format.js'
import { acquireSpoolLock, type SpoolLockOptions } from './spool-lock.js'

/** Roll over to a new segment past this size, unless the spool is small (see segmentBytes). */
export const DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024

/** Longest an acknowledgement waits to be written when no event write comes along to carry it. */
const ACK_FLUSH_MS = 100

/** The file operations the writer uses, synchronous (see CONCURRENCY above); injectable so tests can fail writes. */
export interface SpoolIo {
  /** Opens (creating if missing) for appending; returns a file descriptor. */
  open(filePath: string): number
  /** Writes the buffers in order at the end of the file; returns the bytes written (may be short). */
  writev(fd: number, buffers: Buffer[]): number
  close(fd: number): void
}

export const fileSpoolIo: SpoolIo = {
  open: (filePath) => fs.openSync(filePath, 'a', 0o600),
  writev: (fd, buffers) => fs.writevSync(fd, buffers),
  close: (fd) => fs.closeSync(fd),
}

export interface SpoolOptions {
  /** The directory (SPOOL_DIR), created if missing. */
  dir: string
  /** Bound on the bytes of all segments (SPOOL_MAX_BYTES); an event that would pass it is not spooled. */
  maxBytes: number
  logger: Logger
  /** Size past which the active segment is retired. Default maxBytes / 4, within 1 KiB..8 MiB. */
  segmentBytes?: number
  /** Default fileSpoolIo; tests inject failing writes. */
  io?: SpoolIo
  /** The directory lock's identity; tests inject it. Its log goes to `logger`, its time and refresh timer are `clock`'s. */
  lock?: Omit<SpoolLockOptions, 'log' | 'clock'>
  /** The ack flush timer, and the lock's wall clock (lock ages, refresh times) and refresh timer. Default systemClock. */
  clock?: Clock
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

/**
 * What a segment takes: `active`: new events and acks (at most one segment, Spool.active);
 * `sealed`: acks only (recovered, or a newer one is active); `unusable`: nothing (its header write
 * was cut short, so appending would damage the file); `deleted`: its file is gone.
 */
type SegmentState = 'active' | 'sealed' | 'unusable' | 'deleted'

/**
 * How the file ends, which decides what the next write starts with: `none`: not written yet, the
 * header; `record`: after a whole record, nothing; `torn`: maybe inside a record, a newline.
 */
type SegmentEnd = 'none' | 'record' | 'torn'

class Segment implements SpoolRef {
  state: SegmentState
  end: SegmentEnd
  fd: number | undefined
  /** Bytes in the file plus acks waiting to be written to it. */
  size = 0
  /** Events written to this file and not acknowledged yet. */
  live = 0
  /** Acknowledgement records waiting to ride along with the next write (see Spool.ack). */
  deferredAcks: Buffer[] = []

  constructor(
    readonly segmentNumber: number,
    readonly filePath: string,
    state: 'active' | 'sealed',
    end: SegmentEnd,
  ) {
    this.state = state
    this.end = end
  }
}

/** `opening`: creating the directory, taking the lock, reading the segments; only `open` takes writes. */
type SpoolState = 'new' | 'opening' | 'open' | 'closed'

export class Spool {
  private state: SpoolState = 'new'
  private ackFlushTimer: ClockTimer | undefined
  private readonly dir: string
  private readonly maxBytes: number
  private readonly segmentBytes: number
  private readonly logger: Logger
  private readonly io: SpoolIo
  private readonly lockOptions: Omit<SpoolLockOptions, 'log' | 'clock'>
  private readonly clock: Clock
  private readonly segments = new Set<Segment>()
  private active: Segment | undefined
  private nextNumber = 1
  private totalBytes = 0
  private releaseLock: (() => Promise<void>) | undefined
  /**
   * Episodes, each logged once when it begins and once when it ends. Two flags, not one state:
   * the spool can be full and failing writes at the same time, and each ends on its own.
   */
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
    this.io = options.io ?? fileSpoolIo
    this.lockOptions = options.lock ?? {}
    this.clock = options.clock ?? systemClock
  }

  get directory(): string {
    return this.dir
  }

  /**
   * Creates the directory, takes the lock, and reads every segment. Resolves with the events not yet
   * acknowledged, in file order (segments oldest first). Throws ERR_SPOOL_OPEN / ERR_SPOOL_LOCKED.
   */
  async open(): Promise<RecoveredEvent[]> {
    if (this.state !== 'new') throw new AppError('ERR_SPOOL_OPEN', 'Spool.open() called twice')
    this.state = 'opening'
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 })
    } catch (cause) {
      throw new AppError('ERR_SPOOL_OPEN', `cannot create the spool directory ${this.dir} (SPOOL_DIR)`, { cause })
    }
    this.releaseLock = await acquireSpoolLock(this.dir, {
      ...this.lockOptions,
      clock: this.clock,
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
      const segment = new Segment(segmentNumber, filePath, 'sealed', content.tornTail ? 'torn' : 'record')
      segment.size = bytes.length
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
   * Appends an event; `fields` for a body that does not carry its id, call_id and seq (an AVR body).
   * Returns its ref once the kernel has the bytes; throws ERR_SPOOL_FULL (nothing
   * written), ERR_SPOOL_WRITE or ERR_SPOOL_CLOSED. Failures are logged here, once per change of
   * state (failing / working again, full / room again), never per event.
   */
  append(id: string, enqueuedAtMs: number, bodyText: string, fields?: EventFields): SpoolRef {
    if (this.state !== 'open') {
      throw new AppError('ERR_SPOOL_CLOSED', `the spool is ${this.state}; event ${id} not spooled`)
    }
    const line = eventRecord(enqueuedAtMs, bodyText, fields === undefined ? undefined : { id, callId: fields.callId, seq: fields.seq, type: fields.type })
    if (this.totalBytes + line.length > this.maxBytes && this.active && this.active.live === 0) {
      // Everything in the active segment is delivered, only its bytes remain: start afresh.
      this.seal(this.active)
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
      throw err
    }
    if (this.full) {
      this.full = false
      this.logger.info({ dir: this.dir, bytes: this.totalBytes, rejected: this.counts.rejectedFull }, 'spool has room again')
    }

    const segment = this.activeSegment()
    this.account(segment, line.length)
    const err = this.write(segment, line)
    if (err !== undefined) {
      // Not in this file after all: a segment made unusable by it goes at once.
      this.retireIfDone(segment)
      throw err
    }
    segment.live++
    return segment
  }

  /**
   * Marks an event done. Never throws: a lost ack only means the event is delivered once more after
   * a restart, with the same id (at least once).
   */
  ack(ref: SpoolRef, id: string): void {
    if (!(ref instanceof Segment) || ref.state === 'deleted' || ref.state === 'unusable' || this.state === 'closed') return
    ref.live--
    if (this.retireIfDone(ref)) return
    // Acks are not urgent but event records are (an event is POSTed only once its record is
    // written), so an ack gets no write of its own: it goes with the next event, or by a flush.
    const line = ackRecord(id)
    this.account(ref, line.length)
    ref.deferredAcks.push(line)
    this.ackFlushTimer ??= this.clock.setTimeout(() => this.flushAcks(), ACK_FLUSH_MS)
  }

  stats(): SpoolStats {
    let liveEvents = 0
    for (const segment of this.segments) liveEvents += segment.live
    return { bytes: this.totalBytes, segments: this.segments.size, liveEvents, ...this.counts }
  }

  /** Writes the acks still waiting, closes the files and releases the lock. Idempotent. */
  async close(): Promise<void> {
    if (this.state === 'closed') return
    const wasOpen = this.state === 'open'
    this.clock.clearTimeout(this.ackFlushTimer)
    this.flushAcks()
    for (const segment of this.segments) this.closeFile(segment)
    this.state = 'closed'
    if (wasOpen) await this.releaseLock?.()
  }

  // -------------------------------------------------------------------------------------------

  private flushAcks(): void {
    this.ackFlushTimer = undefined
    for (const segment of this.segments) {
      if (segment.deferredAcks.length > 0) this.write(segment, undefined)
    }
  }

  private activeSegment(): Segment {
    const current = this.active
    if (current && current.size < this.segmentBytes) return current
    if (current) this.seal(current)
    const segment = new Segment(this.nextNumber, path.join(this.dir, segmentFileName(this.nextNumber)), 'active', 'none')
    this.nextNumber++
    this.segments.add(segment)
    this.active = segment
    return segment
  }

  /** No more events for this segment; deleted now if none of its events is live. */
  private seal(segment: Segment): void {
    if (segment.state === 'active') segment.state = 'sealed'
    if (this.active === segment) this.active = undefined
    this.retireIfDone(segment)
  }

  /**
   * Size accounting: a record counts from the moment it is handed to the writer (or deferred, for an
   * ack); a segment stops counting the moment it is retired, so the bound frees up at once.
   */
  private account(segment: Segment, bytes: number): void {
    segment.size += bytes
    if (segment.state !== 'deleted') this.totalBytes += bytes
  }

  /**
   * Writes the segment's deferred acks, then `event` if given, in one writev. Returns undefined when
   * the event (or, without one, every ack) made it, else the error; failures are counted and logged.
   */
  private write(segment: Segment, event: Buffer | undefined): AppError | undefined {
    const records = segment.deferredAcks
    segment.deferredAcks = []
    if (event !== undefined) records.push(event)
    if (records.length === 0) return undefined
    const recordBytes = records.reduce((n, r) => n + r.length, 0)
    if (segment.state === 'unusable') {
      return this.fail(segment, records, 0, new AppError('ERR_SPOOL_WRITE', `spool segment ${segment.filePath} is unusable after a failed header write`))
    }
    const prefix = segment.end === 'none' ? HEADER : segment.end === 'torn' ? NEWLINE : undefined
    const prefixBytes = prefix?.length ?? 0
    const expected = prefixBytes + recordBytes
    let written = 0
    let error: unknown
    try {
      segment.fd ??= this.io.open(segment.filePath)
      written = this.io.writev(segment.fd, prefix === undefined ? records : [prefix, ...records])
    } catch (err) {
      error = err
    }
    // The records' bytes were counted when handed over; the header or separator counts as far as it got.
    this.account(segment, Math.min(written, prefixBytes))
    if (error === undefined && written >= expected) {
      segment.end = 'record'
      if (this.failing) {
        this.failing = false
        this.logger.info({ dir: this.dir, writeFailures: this.counts.writeFailures }, 'spool writes succeed again')
      }
      return undefined
    }

    // Partly written or not at all. Whatever reached the file is a complete prefix of the buffers.
    if (segment.end === 'none' && written < prefixBytes) {
      // A partial header cannot be repaired by appending: retire the file (recovery deletes or skips it).
      if (written > 0) {
        segment.state = 'unusable'
        if (this.active === segment) this.active = undefined
      }
    } else {
      segment.end = 'torn'
    }
    const err = new AppError(
      'ERR_SPOOL_WRITE',
      `spool write to ${segment.filePath} failed (${written} of ${expected} bytes written)`,
      error === undefined ? undefined : { cause: error },
    )
    return this.fail(segment, records, Math.max(0, written - prefixBytes), err)
  }

  /**
   * Accounts for a failed write: records entirely within the first `writtenRecordBytes` bytes did
   * make it. Returns `err` if the last record (the event, when there is one) did not.
   */
  private fail(segment: Segment, records: Buffer[], writtenRecordBytes: number, err: AppError): AppError | undefined {
    let offset = 0
    let failed = 0
    for (const record of records) {
      const end = offset + record.length
      if (end > writtenRecordBytes) {
        // Unwritten bytes leave the accounting; the torn part of a record stays (it is on disk).
        this.account(segment, -(end - Math.max(offset, writtenRecordBytes)))
        failed++
      }
      offset = end
    }
    this.counts.writeFailures += failed
    if (!this.failing && failed > 0) {
      this.failing = true
      this.logger.error({ err, dir: this.dir }, 'spool write failed; events are delivered from memory only until writes succeed again')
    }
    return offset > writtenRecordBytes ? err : undefined
  }

  /** Deletes a segment that takes no new events and has no live ones. Returns true if it did. */
  private retireIfDone(segment: Segment): boolean {
    if (segment.state === 'deleted' || segment.live > 0) return false
    const retired = segment.state !== 'active' || segment.size >= this.segmentBytes
    if (!retired) return false
    if (segment === this.active) this.active = undefined
    this.totalBytes -= segment.size
    segment.state = 'deleted'
    // Its waiting acks are moot once the file is gone.
    segment.deferredAcks = []
    this.segments.delete(segment)
    this.closeFile(segment)
    try {
      fs.unlinkSync(segment.filePath)
    } catch (err) {
      if (!(isErrnoException(err) && err.code === 'ENOENT')) this.logger.warn({ err, file: segment.filePath }, 'could not delete a delivered spool segment')
    }
    return true
  }

  private closeFile(segment: Segment): void {
    if (segment.fd === undefined) return
    try {
      this.io.close(segment.fd)
    } catch {
      // Nothing is left to write to it; a failed close loses nothing.
    }
    segment.fd = undefined
  }
}
