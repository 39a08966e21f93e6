/**
 * (Over 400 lines: half is the staleness rules below, written where they are enforced.)
 *
 * The spool directory lock: one process per SPOOL_DIR, because two servers sharing a spool would
 * each deliver (and delete) the other's events. Node has no flock(), and flock would not reach
 * across NFS or between containers anyway, so the lock is a file, `spool.lock`, created
 * exclusively ('wx'), that says who holds it:
 *
 *   {"pid":1,"startTime":46358,"bootId":"d2be…","pidNamespace":"pid:[4026531836]","host":"pbx1",
 *    "createdAt":"2026-11-20T22:00:00.000Z","token":"…"}
 *
 * `startTime` is field 22 of /proc/<pid>/stat (clock ticks since boot): with the pid it names one
 * process for the life of a boot, so a pid that was reused by another program is not mistaken for
 * the holder. `token` is random per acquisition: the holder recognises its own lock by it (to
 * refresh it, and to release only its own). Without /proc (a macOS dev box) the start time, boot id
 * and pid namespace are absent and the lock is judged by pid and host alone. Earlier versions wrote
 * a bare pid line; that is still read (see judgeLegacy).
 *
 * WHEN A LOCK FOUND ON DISK IS STALE (taken over) OR HELD (ERR_SPOOL_LOCKED):
 * - Written in our own pid space (same host, boot id and pid namespace): the holder is checked
 *   directly. Stale when no process has that pid, or the process with that pid has another start
 *   time (the pid was reused). Stale also when it names this very process: only a delivery worker
 *   that died without closing its spool leaves that behind (a process runs one spool per directory),
 *   and its replacement must take over; refusing would block it forever.
 * - Same host, another boot id, last refreshed before this boot: the machine rebooted, the holder is
 *   gone. (Refreshed after this boot means another machine that happens to bear our host name.)
 * - Anything else cannot be checked from here: another host (two machines or two containers sharing
 *   a volume), or another pid namespace on this host (two containers, where both servers are pid 1
 *   and, with host networking, both bear the host's name). The holder therefore keeps its lock
 *   fresh: it sets the file's modification time every LOCK_REFRESH_INTERVAL_MS, and such a lock is
 *   stale once it has not been refreshed for LOCK_STALE_AFTER_MS (which assumes the hosts' clocks
 *   agree to well within that bound). The price: a container restarted after a crash (new pid
 *   namespace) waits until its predecessor's lock is that old; a clean stop releases the lock, so
 *   only crashes pay it, and a start refused meanwhile says when it will succeed.
 * - Unreadable (empty: its writer is between create and write, or died there): stale by age too.
 *
 * TAKEOVER is safe against two processes racing for the same stale lock: the stale file is renamed
 * aside to a name of our own and judged again there; only if it is still stale is it deleted. If a
 * racer had replaced it in the meantime, what we moved is the racer's live lock, and it is linked
 * back (link never overwrites). Then the exclusive create decides who wins.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { link, open, readFile, readlink, rename, stat, unlink } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { systemClock, type Clock, type ClockTimer } from '../shared/clock.js'
import { AppError, isErrnoException } from '../shared/errors.js'

export const SPOOL_LOCK_FILE = 'spool.lock'
/** How often the holder marks its lock fresh (one utimes a tick: nothing). */
export const LOCK_REFRESH_INTERVAL_MS = 5_000
/**
 * A lock that cannot be checked directly (another host or container) is stale once unrefreshed this
 * long: four missed refreshes. Short, because a container restarted after a crash waits this long.
 */
export const LOCK_STALE_AFTER_MS = 20_000
/** The unit of /proc/<pid>/stat start times (USER_HZ): 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100
/** Tolerance when comparing a process start time with a file time: boot time has 1 s resolution, clocks get stepped. */
const CLOCK_MARGIN_MS = 5_000
/** Create attempts: each failed one follows a takeover, or a lock that vanished while we read it. */
const MAX_ROUNDS = 3

/** A process as the lock records it. Fields /proc cannot give are undefined. */
export interface LockHolder {
  pid: number
  /** Process start, clock ticks since boot: field 22 of /proc/<pid>/stat. */
  startTime?: number | undefined
  /** /proc/sys/kernel/random/boot_id: changes at every boot. */
  bootId?: string | undefined
  /** readlink /proc/self/ns/pid, e.g. `pid:[4026531836]`: differs between containers of one host. */
  pidNamespace?: string | undefined
  host: string
}

interface LockRecord extends LockHolder {
  createdAt: string
  token: string
}

/** What the lock needs to know about this process and machine; tests pass their own. */
export interface LockEnvironment {
  self: LockHolder
  /** Start time (ticks since boot) of a process in our pid namespace; undefined when /proc has no such entry. */
  startTimeOf(pid: number): Promise<number | undefined>
  /** Whether a process with this pid exists (signal 0; EPERM counts as existing). */
  isAlive(pid: number): boolean
  /** Wall-clock time of this boot (ms), from /proc/stat `btime`; undefined without /proc. */
  bootTimeMs: number | undefined
}

export type LockLogLevel = 'info' | 'warn' | 'error'

export interface SpoolLockOptions {
  /** Default: read from /proc (systemLockEnvironment()). */
  environment?: LockEnvironment
  /**
   * A wall clock (lock ages and the times written on the lock) and the refresh timer, which is
   * unref()ed: the lock never keeps a process alive. Default systemClock.
   */
  clock?: Clock
  refreshIntervalMs?: number
  staleAfterMs?: number
  /** Takeovers, a deleted lock re-created, a lock lost to another process. Default: nothing. */
  log?: (level: LockLogLevel, message: string) => void
}

/** Reads this process's identity and the machine's from /proc; without /proc, pid and host alone. */
export async function systemLockEnvironment(procRoot = '/proc'): Promise<LockEnvironment> {
  const [startTime, bootId, pidNamespace, bootTimeMs] = await Promise.all([
    readStartTime(path.join(procRoot, 'self', 'stat')),
    readFile(path.join(procRoot, 'sys', 'kernel', 'random', 'boot_id'), 'utf8').then(
      (text) => text.trim() || undefined,
      () => undefined,
    ),
    readlink(path.join(procRoot, 'self', 'ns', 'pid')).catch(() => undefined),
    readBootTimeMs(procRoot),
  ])
  return {
    self: { pid: process.pid, startTime, bootId, pidNamespace, host: os.hostname() },
    startTimeOf: (pid) => readStartTime(path.join(procRoot, String(pid), 'stat')),
    isAlive: isProcessAlive,
    bootTimeMs,
  }
}

/** Field 22 of a /proc/<pid>/stat file. The command name (field 2) may hold spaces and ')': skip past its last ')'. */
async function readStartTime(statPath: string): Promise<number | undefined> {
  let text: string
  try {
    text = await readFile(statPath, 'utf8')
  } catch {
    return undefined
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const value = Number(fields[22 - 3])
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined
}

async function readBootTimeMs(procRoot: string): Promise<number | undefined> {
  const text = await readFile(path.join(procRoot, 'stat'), 'utf8').catch(() => '')
  const match = /^btime (\d+)$/m.exec(text)
  return match ? Number(match[1]) * 1000 : undefined
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists but belongs to another user; ESRCH: gone.
    return isErrnoException(err) && err.code === 'EPERM'
  }
}

// ---------------------------------------------------------------------------------------------
// Reading and judging a lock found on disk

/** A lock file as found: its text and when it was last refreshed (its modification time). */
interface FoundLock {
  text: string
  mtimeMs: number
}

type ParsedLock = { kind: 'record'; record: LockRecord } | { kind: 'legacy'; pid: number } | { kind: 'unreadable' }

function parseLock(text: string): ParsedLock {
  const legacy = /^\s*(\d{1,10})\s*$/.exec(text)
  if (legacy) return { kind: 'legacy', pid: Number(legacy[1]) }
  try {
    const value: unknown = JSON.parse(text)
    if (typeof value === 'object' && value !== null) {
      const r = value as Record<string, unknown>
      const optional = <T>(v: unknown, type: 'number' | 'string'): T | undefined => (typeof v === type ? (v as T) : undefined)
      if (Number.isSafeInteger(r.pid) && (r.pid as number) > 0 && typeof r.host === 'string' && typeof r.token === 'string') {
        return {
          kind: 'record',
          record: {
            pid: r.pid as number,
            startTime: optional<number>(r.startTime, 'number'),
            bootId: optional<string>(r.bootId, 'string'),
            pidNamespace: optional<string>(r.pidNamespace, 'string'),
            host: r.host,
            createdAt: optional<string>(r.createdAt, 'string') ?? 'an unknown time',
            token: r.token,
          },
        }
      }
    }
  } catch {
    // Falls through: not ours, or cut short.
  }
  return { kind: 'unreadable' }
}

/** The lock's text and modification time; undefined when there is no such file. */
async function readLock(filePath: string): Promise<FoundLock | undefined> {
  try {
    const [text, info] = await Promise.all([readFile(filePath, 'utf8'), stat(filePath)])
    return { text, mtimeMs: info.mtimeMs }
  } catch (err) {
    if (isErrnoException(err) && err.code === 'ENOENT') return undefined
    throw err
  }
}

type Verdict = { stale: true; why: string } | { stale: false; holder: string }

interface Judge {
  env: LockEnvironment
  nowMs: number
  staleAfterMs: number
}

function judgeLock(found: FoundLock, judge: Judge): Promise<Verdict> | Verdict {
  const parsed = parseLock(found.text)
  if (parsed.kind === 'record') return judgeRecord(parsed.record, found.mtimeMs, judge)
  if (parsed.kind === 'legacy') return judgeLegacy(parsed.pid, found.mtimeMs, judge)
  const age = judge.nowMs - found.mtimeMs
  return age > judge.staleAfterMs
    ? { stale: true, why: `an unreadable lock, unchanged for ${seconds(age)} s` }
    : {
        stale: false,
        holder: `has a ${SPOOL_LOCK_FILE} that cannot be read, modified ${seconds(age)} s ago (a server starting this very moment, or a damaged file); it is taken over once it is ${seconds(judge.staleAfterMs)} s old`,
      }
}

async function judgeRecord(lock: LockRecord, mtimeMs: number, { env, nowMs, staleAfterMs }: Judge): Promise<Verdict> {
  const self = env.self
  const sameHost = lock.host === self.host
  if (sameHost && lock.bootId === self.bootId && lock.pidNamespace === self.pidNamespace) {
    if (lock.pid === self.pid && lock.startTime === self.startTime) {
      return { stale: true, why: `left by this very process (pid ${lock.pid}), by a spool that was never closed` }
    }
    const holder = { stale: false, holder: `is in use by process ${lock.pid} (lock taken ${lock.createdAt}); each server needs its own SPOOL_DIR` } as const
    const startTime = lock.startTime === undefined ? undefined : await env.startTimeOf(lock.pid)
    if (startTime !== undefined) {
      return startTime === lock.startTime ? holder : { stale: true, why: `pid ${lock.pid} now belongs to another process (another start time)` }
    }
    // No start time to compare (no /proc, or the process has just gone): existence decides.
    return env.isAlive(lock.pid) ? holder : { stale: true, why: `process ${lock.pid} is gone` }
  }
  if (sameHost && lock.bootId !== undefined && self.bootId !== undefined && lock.bootId !== self.bootId && env.bootTimeMs !== undefined && mtimeMs < env.bootTimeMs) {
    return { stale: true, why: `process ${lock.pid} ran before this machine rebooted` }
  }
  const age = nowMs - mtimeMs
  if (age > staleAfterMs) return { stale: true, why: `process ${lock.pid} on host ${lock.host} has not refreshed it for ${seconds(age)} s` }
  const where = sameHost ? `on this host in another pid namespace (another container), or before a reboot` : `on host ${lock.host}`
  return {
    stale: false,
    holder:
      `is in use by process ${lock.pid} ${where}, whose lock was refreshed ${seconds(Math.max(0, age))} s ago. ` +
      `Two servers must not share a SPOOL_DIR. If that server is gone, its lock is taken over once it has not been refreshed for ${seconds(staleAfterMs)} s ` +
      `(in ${seconds(Math.max(0, staleAfterMs - age))} s)`,
  }
}

/**
 * A bare pid, written by an earlier version: no start time, so the pid is held as long as it is
 * alive, unless the process now bearing it started after the lock was written (the pid was reused:
 * the writer is gone). A lock with our own pid is stale: in a container every start is pid 1.
 */
async function judgeLegacy(pid: number, mtimeMs: number, { env }: Judge): Promise<Verdict> {
  if (pid === env.self.pid) return { stale: true, why: `an older version's lock naming this process's pid ${pid}` }
  const startTime = await env.startTimeOf(pid)
  if (startTime !== undefined && env.bootTimeMs !== undefined) {
    const startedAtMs = env.bootTimeMs + (startTime * 1000) / CLOCK_TICKS_PER_SECOND
    if (startedAtMs > mtimeMs + CLOCK_MARGIN_MS) {
      return { stale: true, why: `pid ${pid} now belongs to a process started after the lock was written` }
    }
  }
  if (!env.isAlive(pid)) return { stale: true, why: `process ${pid} is gone` }
  return { stale: false, holder: `is in use by process ${pid}; each server needs its own SPOOL_DIR` }
}

function seconds(ms: number): number {
  return Math.round(ms / 1000)
}

// ---------------------------------------------------------------------------------------------
// Taking, refreshing, releasing

/**
 * Moves the lock aside to a name of our own and deletes it there if `isDisposable` says so, else
 * puts it back. The rename is atomic, so what is judged is exactly what is deleted: never a lock
 * another process created after we looked. Resolves false when there was no lock to move.
 */
async function removeLockIf(lockPath: string, isDisposable: (moved: FoundLock) => Promise<boolean>): Promise<boolean> {
  const aside = `${lockPath}.${process.pid}-${randomBytes(6).toString('hex')}.aside`
  try {
    await rename(lockPath, aside)
  } catch (err) {
    if (isErrnoException(err) && err.code === 'ENOENT') return false
    throw err
  }
  const moved = await readLock(aside).catch(() => undefined)
  if (moved === undefined || (await isDisposable(moved))) {
    await unlink(aside).catch(() => {})
    return true
  }
  // link, not rename: if yet another process has created a lock meanwhile, it is not overwritten.
  await link(aside, lockPath).catch(() => {})
  await unlink(aside).catch(() => {})
  return true
}

/**
 * Takes SPOOL_DIR for this process (see the module comment), or throws ERR_SPOOL_LOCKED naming the
 * holder, or ERR_SPOOL_OPEN when the lock file cannot be created. Resolves with the release
 * function, which stops the refresh and deletes the lock if it is still ours.
 */
export async function acquireSpoolLock(dir: string, options: SpoolLockOptions = {}): Promise<() => Promise<void>> {
  const lockPath = path.join(dir, SPOOL_LOCK_FILE)
  const env = options.environment ?? (await systemLockEnvironment())
  const clock = options.clock ?? systemClock
  const now = (): number => clock.now()
  const staleAfterMs = options.staleAfterMs ?? LOCK_STALE_AFTER_MS
  const log = options.log ?? (() => {})
  const token = randomUUID()
  const record: LockRecord = { ...env.self, createdAt: new Date(now()).toISOString(), token }
  const content = `${JSON.stringify(record)}\n`

  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (await createLock(lockPath, content, now())) {
      return holdLock(lockPath, content, token, { clock, log, refreshIntervalMs: options.refreshIntervalMs ?? LOCK_REFRESH_INTERVAL_MS })
    }
    const found = await readLock(lockPath).catch((cause: unknown) => {
      throw new AppError('ERR_SPOOL_OPEN', `cannot read ${lockPath} (SPOOL_DIR)`, { cause })
    })
    if (found === undefined) continue // released while we looked: try again
    const verdict = await judgeLock(found, { env, nowMs: now(), staleAfterMs })
    if (!verdict.stale) throw new AppError('ERR_SPOOL_LOCKED', `SPOOL_DIR ${dir} ${verdict.holder}`)
    // Judged again where it was moved: a racer may have replaced the stale lock since we read it.
    let removed: string | undefined
    await removeLockIf(lockPath, async (moved) => {
      const again = await judgeLock(moved, { env, nowMs: now(), staleAfterMs })
      if (again.stale) removed = again.why
      return again.stale
    })
    if (removed !== undefined) log('warn', `took over the stale spool lock of ${dir}: ${removed}`)
  }
  throw new AppError('ERR_SPOOL_LOCKED', `SPOOL_DIR ${dir}: another process took the lock while this one was starting`)
}

/** Creates the lock exclusively with our record, its time set on our clock. False if one exists. */
async function createLock(lockPath: string, content: string, nowMs: number): Promise<boolean> {
  let handle
  try {
    handle = await open(lockPath, 'wx', 0o600)
  } catch (err) {
    if (isErrnoException(err) && err.code === 'EEXIST') return false
    throw new AppError('ERR_SPOOL_OPEN', `cannot create ${lockPath} (SPOOL_DIR)`, { cause: err })
  }
  try {
    await handle.writeFile(content)
    await handle.utimes(nowMs / 1000, nowMs / 1000)
  } catch (err) {
    // A lock without its record would block others until it ages out: it must not stay.
    await handle.close().catch(() => {})
    await unlink(lockPath).catch(() => {})
    throw new AppError('ERR_SPOOL_OPEN', `cannot write ${lockPath} (SPOOL_DIR)`, { cause: err })
  }
  await handle.close()
  return true
}

interface HoldOptions {
  clock: Clock
  log: (level: LockLogLevel, message: string) => void
  refreshIntervalMs: number
}

function holdLock(lockPath: string, content: string, token: string, options: HoldOptions): () => Promise<void> {
  let state: 'held' | 'lost' | 'released' = 'held'
  let inFlight: Promise<void> | undefined

  const refresh = async (): Promise<void> => {
    let handle
    try {
      // Through one descriptor: the record checked is the file whose time is set.
      handle = await open(lockPath, 'r')
      const parsed = parseLock(await handle.readFile('utf8'))
      if (parsed.kind !== 'record' || parsed.record.token !== token) {
        state = 'lost'
        const other = parsed.kind === 'record' ? `process ${parsed.record.pid} on host ${parsed.record.host}` : 'something else'
        options.log('error', `the spool lock ${lockPath} now belongs to ${other}, which judged it stale (was this process stalled?); two processes may now be using the spool`)
        return
      }
      const nowSeconds = options.clock.now() / 1000
      await handle.utimes(nowSeconds, nowSeconds)
    } catch (err) {
      if (isErrnoException(err) && err.code === 'ENOENT' && state === 'held') {
        // Deleted by hand (or moved aside for a moment by a starter judging it): we still use the spool.
        if (await createLock(lockPath, content, options.clock.now()).catch(() => false)) {
          options.log('warn', `the spool lock ${lockPath} had been deleted; re-created it`)
        }
      }
      // Anything else (an I/O error): the next refresh tries again.
    } finally {
      await handle?.close().catch(() => {})
    }
  }

  // One timer for the lock's life, re-armed as it fires (so every refreshIntervalMs, as an
  // interval would); a tick whose predecessor's refresh is still in flight is skipped. The tick
  // returns the refresh in flight: a Clock ignores it, a test's clock may await it.
  const { clock } = options
  const tick = (): Promise<void> | undefined => {
    timer.refresh()
    if (state !== 'held' || inFlight !== undefined) return inFlight
    inFlight = refresh().finally(() => {
      inFlight = undefined
    })
    return inFlight
  }
  const timer: ClockTimer = clock.setTimeout(tick, options.refreshIntervalMs)
  timer.unref()

  return async () => {
    if (state === 'released') return
    const wasHeld = state === 'held'
    state = 'released'
    clock.clearTimeout(timer)
    await inFlight
    if (!wasHeld) return
    await removeLockIf(lockPath, async (moved) => {
      const parsed = parseLock(moved.text)
      return parsed.kind === 'record' && parsed.record.token === token
    }).catch(() => {})
  }
}
