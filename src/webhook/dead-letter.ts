/**
 * The dead-letter file, `<SPOOL_DIR>/dead-letter.jsonl`: events the webhook will not get without a
 * human, one JSON object per line, for operators to read (`audiosocket-soniox dead-letters list`)
 * and to send again (`... dead-letters redeliver`).
 *
 * Format version 1, two kinds of line:
 *
 *   {"v":1,"kind":"dead_letter","id":"evt_...","call_id":"...","seq":3,"type":"transcript.final",
 *    "reason":"rejected"|"expired","status":400|null,"body_excerpt":"..."|null,
 *    "error":{"code":"ERR_WEBHOOK_REJECTED","message":"..."},"attempts":1,
 *    "first_attempt_at":"<ISO>","last_attempt_at":"<ISO>","dead_lettered_at":"<ISO>","event":{...envelope...}}
 *   {"v":1,"kind":"redelivered","id":"evt_...","status":204,"at":"<ISO>"}
 *
 * A `redelivered` line cancels the dead letters before it with the same id. Why tombstones instead
 * of deleting lines: the server appends dead letters while the CLI redelivers, possibly at the same
 * moment. Appends by two processes to one O_APPEND file never overwrite each other, whereas a
 * rewrite by one would drop what the other appended meanwhile. Rewriting (compactDeadLetters) is
 * done only by the holder of the spool lock, at server start or by the CLI while the server is down.
 *
 * A torn last line (a crash mid-append) is skipped by readers, and the next append starts with a
 * newline so it cannot glue itself to the fragment.
 */
import { chown, open, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { isErrnoException } from '../shared/errors.js'

export const DEAD_LETTER_FILE = 'dead-letter.jsonl'
export const DEAD_LETTER_VERSION = 1

export type DeadLetterReason = 'rejected' | 'expired'

/** What the sink knows about an event when it gives up on it. */
export interface DeadLetterInfo {
  id: string
  callId: string
  seq: number
  type: string
  /** The envelope exactly as POSTed. */
  bodyText: string
  reason: DeadLetterReason
  /** The last HTTP status, or null when no response ever arrived. */
  status: number | null
  /** The start of the last response body (at most BODY_EXCERPT_BYTES), or null. */
  bodyExcerpt: string | null
  error: { code: string; message: string }
  attempts: number
  firstAttemptAtMs: number
  lastAttemptAtMs: number
  deadLetteredAtMs: number
}

/** One live (not redelivered) dead letter as read back. */
export interface DeadLetterEntry {
  id: string
  callId: string
  seq: number
  type: string
  reason: string
  status: number | null
  bodyExcerpt: string | null
  error: { code: string; message: string } | null
  attempts: number
  firstAttemptAt: string
  lastAttemptAt: string
  deadLetteredAt: string
  /** The envelope, serialised again from the line (the same bytes as first POSTed). */
  bodyText: string
  /** The line as stored (without its newline), kept verbatim by compaction. */
  line: string
}

export interface DeadLetterContents {
  entries: DeadLetterEntry[]
  /** `redelivered` lines seen. */
  redelivered: number
  /** Lines that are not valid JSON of either kind (a torn last line after a crash, or damage). */
  damaged: number
}

/** The dead letter as one line (newline included). The envelope is spliced in unparsed. */
export function formatDeadLetter(info: DeadLetterInfo): string {
  const meta = JSON.stringify({
    v: DEAD_LETTER_VERSION,
    kind: 'dead_letter',
    id: info.id,
    call_id: info.callId,
    seq: info.seq,
    type: info.type,
    reason: info.reason,
    status: info.status,
    body_excerpt: info.bodyExcerpt,
    error: info.error,
    attempts: info.attempts,
    first_attempt_at: new Date(info.firstAttemptAtMs).toISOString(),
    last_attempt_at: new Date(info.lastAttemptAtMs).toISOString(),
    dead_lettered_at: new Date(info.deadLetteredAtMs).toISOString(),
  })
  return `${meta.slice(0, -1)},"event":${info.bodyText}}\n`
}

export function formatRedelivered(id: string, status: number, atMs: number): string {
  return `${JSON.stringify({ v: DEAD_LETTER_VERSION, kind: 'redelivered', id, status, at: new Date(atMs).toISOString() })}\n`
}

export class DeadLetterFile {
  /** The last append of this process: appends run one after another, so lines keep their order. */
  private tail: Promise<void> = Promise.resolve()

  constructor(readonly path: string) {}

  /** Appends a dead letter; resolves once the kernel has it. Rejects on any file error. */
  append(info: DeadLetterInfo): Promise<void> {
    return this.serially(formatDeadLetter(info))
  }

  /** Records that an event was delivered again, cancelling its dead letter. */
  appendRedelivered(id: string, status: number, atMs: number): Promise<void> {
    return this.serially(formatRedelivered(id, status, atMs))
  }

  private serially(line: string): Promise<void> {
    const done = this.tail.then(() => appendLine(this.path, line))
    this.tail = done.catch(() => {})
    return done
  }

  /** The live dead letters in file order; a missing file is an empty one. */
  async read(): Promise<DeadLetterContents> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      if (isErrnoException(err) && err.code === 'ENOENT') return { entries: [], redelivered: 0, damaged: 0 }
      throw err
    }
    return parseDeadLetters(text)
  }

  /**
   * Rewrites the file with only the live dead letters (no tombstones, no damaged lines), through a
   * temporary file and a rename so a crash leaves either the old or the new file. Only the holder of
   * the spool lock may call this (see the module comment). Returns the lines dropped.
   *
   * The new file keeps the old one's owner: `sudo audiosocket-soniox dead-letters redeliver` runs as
   * root in a spool that the service's (dynamic) user owns, and a root-owned 0600 file there would
   * refuse the service's next dead letter.
   */
  async compact(): Promise<number> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      if (isErrnoException(err) && err.code === 'ENOENT') return 0
      throw err
    }
    const contents = parseDeadLetters(text)
    if (contents.redelivered === 0 && contents.damaged === 0) return 0
    const kept = contents.entries.map((e) => `${e.line}\n`).join('')
    const tmp = `${this.path}.tmp`
    await writeFile(tmp, kept, { mode: 0o600 })
    if (process.getuid?.() === 0) {
      const owner = await stat(this.path)
      await chown(tmp, owner.uid, owner.gid)
    }
    await rename(tmp, this.path)
    return countLines(text) - contents.entries.length
  }
}

function countLines(text: string): number {
  return text.split('\n').filter((l) => l.trim() !== '').length
}

export function parseDeadLetters(text: string): DeadLetterContents {
  const live = new Map<string, DeadLetterEntry>()
  let redelivered = 0
  let damaged = 0
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch {
      damaged++
      continue
    }
    const record = value as Record<string, unknown> | null
    if (record === null || typeof record !== 'object' || typeof record.id !== 'string') {
      damaged++
      continue
    }
    if (record.kind === 'redelivered') {
      redelivered++
      live.delete(record.id)
      continue
    }
    if (record.kind !== 'dead_letter' || typeof record.event !== 'object' || record.event === null) {
      damaged++
      continue
    }
    // A later dead letter of the same id (redelivered, then dead again) replaces the earlier one.
    live.delete(record.id)
    live.set(record.id, {
      id: record.id,
      callId: String(record.call_id ?? ''),
      seq: typeof record.seq === 'number' ? record.seq : -1,
      type: String(record.type ?? ''),
      reason: String(record.reason ?? ''),
      status: typeof record.status === 'number' ? record.status : null,
      bodyExcerpt: typeof record.body_excerpt === 'string' ? record.body_excerpt : null,
      error: isErrorField(record.error) ? record.error : null,
      attempts: typeof record.attempts === 'number' ? record.attempts : 0,
      firstAttemptAt: String(record.first_attempt_at ?? ''),
      lastAttemptAt: String(record.last_attempt_at ?? ''),
      deadLetteredAt: String(record.dead_lettered_at ?? ''),
      bodyText: JSON.stringify(record.event),
      line,
    })
  }
  return { entries: [...live.values()], redelivered, damaged }
}

function isErrorField(value: unknown): value is { code: string; message: string } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'string' &&
    typeof (value as { message?: unknown }).message === 'string'
  )
}

/**
 * Appends one line. If the file does not end with a newline (a torn line left by a crash), a
 * newline goes first so the new line stays whole. Dead letters are rare: an open per line is fine.
 */
async function appendLine(filePath: string, line: string): Promise<void> {
  const handle = await open(filePath, 'a+', 0o600)
  try {
    const { size } = await handle.stat()
    let text = line
    if (size > 0) {
      const last = Buffer.alloc(1)
      await handle.read(last, 0, 1, size - 1)
      if (last[0] !== 0x0a) text = `\n${line}`
    }
    await handle.write(text)
  } finally {
    await handle.close()
  }
}
