/**
 * src/webhook/spool-lock.ts: who holds SPOOL_DIR. A reused pid is not the holder; a lock from another
 * host or container is judged by how recently it was refreshed; the takeover never deletes a lock
 * that a racing process has just created; release deletes only our own lock.
 *
 * The runtime imports are only those spool.ts has always exported, so that this file runs against
 * the code before the fix too (and fails there).
 */
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import type { LockEnvironment, LockHolder, SpoolLockOptions } from '../../src/webhook/spool-lock.js'
import { LOCK_REFRESH_INTERVAL_MS, LOCK_STALE_AFTER_MS } from '../../src/webhook/spool-lock.js'
import { acquireSpoolLock, SPOOL_LOCK_FILE } from '../../src/webhook/spool-lock.js'
import { Spool } from '../../src/webhook/spool.js'
import type { Clock } from '../../src/shared/clock.js'
import { FakeTimers } from '../support/fake-timers.js'

const T0 = Date.parse('2026-11-20T22:00:00.000Z')
const STALE_AFTER_MS = 60_000
const HAS_PROC = fs.existsSync('/proc/self/stat') && fs.existsSync('/proc/sys/kernel/random/boot_id')

/**
 * One process's clock (each host or container keeps its own): time and the refresh timer move only
 * when the test says so. `refreshed()` waits for the refreshes its timer started (the lock's timer
 * callback returns the refresh in flight).
 */
function lockClock(startMs = T0) {
  const timers = new FakeTimers(startMs)
  const inFlight: Array<Promise<unknown>> = []
  const clock: Clock = {
    now: timers.now,
    setTimeout: (callback, ms) =>
      timers.setTimeout(() => {
        const result: unknown = (callback as () => unknown)()
        if (result instanceof Promise) inFlight.push(result)
      }, ms),
    clearTimeout: timers.clearTimeout,
  }
  return { clock, timers, refreshed: () => Promise.all(inFlight.splice(0)) }
}

/** A process that only reads the time (it refreshes nothing before the test ends). */
function at(ms: number): Clock {
  return new FakeTimers(ms)
}

/** A machine or container as the lock sees it: `self`, and which of its pids are alive with what start time. */
function environment(self: LockHolder, processes: Record<number, number> = {}, bootTimeMs?: number): LockEnvironment {
  const all: Record<number, number | undefined> = { [self.pid]: self.startTime, ...processes }
  return {
    self,
    startTimeOf: async (pid) => all[pid],
    isAlive: (pid) => pid in all,
    bootTimeMs,
  }
}

function lockPath(dir: string): string {
  return join(dir, SPOOL_LOCK_FILE)
}

function readLockRecord(dir: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(lockPath(dir), 'utf8'))
}

function setLockTime(dir: string, ms: number): void {
  fs.utimesSync(lockPath(dir), ms / 1000, ms / 1000)
}

function leftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((name) => name !== SPOOL_LOCK_FILE)
}

/** Field 22 of /proc/<pid>/stat: start time in clock ticks since boot. */
function procStartTime(pid: number | 'self'): number {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[19])
}

/** How this machine identifies a process of ours, read independently of the code under test. */
function realHolder(pid: number, startTime: number) {
  return {
    pid,
    startTime,
    bootId: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    pidNamespace: fs.readlinkSync('/proc/self/ns/pid'),
    host: os.hostname(),
    createdAt: new Date().toISOString(),
    token: 'another-process',
  }
}

async function held(t: Test, dir: string, options: SpoolLockOptions = {}) {
  const release = await acquireSpoolLock(dir, options)
  t.teardown(release)
  return release
}

t.test('a lock whose pid now belongs to another live process (another start time) is taken over', { skip: !HAS_PROC && 'needs /proc' }, async (t) => {
  // Our parent is alive; the lock says its pid was held by a process that started at another time.
  const dir = t.testdir({ [SPOOL_LOCK_FILE]: JSON.stringify(realHolder(process.ppid, procStartTime(process.ppid) + 1)) })
  await held(t, dir)
  t.match(readLockRecord(dir), { pid: process.pid, startTime: procStartTime('self'), host: os.hostname() }, 'the lock now identifies this process by pid and start time')
})

t.test('a live holder on this host, with the start time it recorded, refuses', { skip: !HAS_PROC && 'needs /proc' }, async (t) => {
  const holder = realHolder(process.ppid, procStartTime(process.ppid))
  const dir = t.testdir({ [SPOOL_LOCK_FILE]: JSON.stringify(holder) })
  await t.rejects(acquireSpoolLock(dir), { code: 'ERR_SPOOL_LOCKED', message: new RegExp(`in use by process ${process.ppid}\\b`) })
  t.same(JSON.parse(fs.readFileSync(lockPath(dir), 'utf8')), holder, 'its lock is untouched')
})

t.test('the same judgement with an injected environment (pid reuse, own leftover, gone)', async (t) => {
  const self = { pid: 100, startTime: 5000, bootId: 'boot-1', pidNamespace: 'pid:[1]', host: 'pbx' }
  const env = environment(self, { 200: 7000 })
  const lock = (pid: number, startTime: number) => JSON.stringify({ ...self, pid, startTime, createdAt: 'then', token: 'x' })

  await t.rejects(acquireSpoolLock(t.testdir({ [SPOOL_LOCK_FILE]: lock(200, 7000) }), { environment: env }), {
    code: 'ERR_SPOOL_LOCKED',
    message: /in use by process 200 /,
  })
  for (const [what, text] of [
    ['pid 200 reused', lock(200, 6000)],
    ['process 300 gone', lock(300, 6000)],
    ['left by this very process (a delivery worker that died)', lock(100, 5000)],
  ] as const) {
    const dir = t.testdir({ [SPOOL_LOCK_FILE]: text })
    const release = await acquireSpoolLock(dir, { environment: env })
    t.match(readLockRecord(dir), { pid: 100, startTime: 5000 }, `${what}: taken over`)
    await release()
  }
})

t.test('two containers sharing a volume, both pid 1: refused while the lock is fresh, taken over once it is old', async (t) => {
  const dir = t.testdir()
  const a = environment({ pid: 1, startTime: 300, bootId: 'boot-a', pidNamespace: 'pid:[11]', host: 'container-a' })
  const b = environment({ pid: 1, startTime: 300, bootId: 'boot-b', pidNamespace: 'pid:[22]', host: 'container-b' })
  const clockA = lockClock()
  const aLogs: string[] = []
  const releaseA = await acquireSpoolLock(dir, { environment: a, clock: clockA.clock, staleAfterMs: STALE_AFTER_MS, log: (_l, m) => aLogs.push(m) })

  await t.rejects(acquireSpoolLock(dir, { environment: b, clock: at(T0 + 30_000), staleAfterMs: STALE_AFTER_MS }), {
    code: 'ERR_SPOOL_LOCKED',
    message: /in use by process 1 on host container-a, whose lock was refreshed 30 s ago\. Two servers must not share a SPOOL_DIR\. If that server is gone, its lock is taken over once it has not been refreshed for 60 s \(in 30 s\)/,
  })
  t.equal(readLockRecord(dir).host, 'container-a', 'A still holds it')

  // A stopped refreshing (its host died) 61 s ago: its clock, and so its refresh timer, stand still.
  const releaseB = await acquireSpoolLock(dir, { environment: b, clock: at(T0 + 61_000), staleAfterMs: STALE_AFTER_MS })
  t.equal(readLockRecord(dir).host, 'container-b', 'B took it over')

  // A comes back (it was only stalled): its refresh finds the lock is B's, and its release leaves it.
  clockA.timers.stallUntil(T0 + 61_000)
  await clockA.refreshed()
  t.match(aLogs, [/now belongs to process 1 on host container-b/])
  await releaseA()
  t.equal(readLockRecord(dir).host, 'container-b', "A's release does not delete B's lock")
  t.same(leftovers(dir), [])
  await releaseB()
  t.notOk(fs.existsSync(lockPath(dir)))
})

t.test('two containers on one host with the same host name (host networking): judged by age, not by pid', async (t) => {
  const dir = t.testdir()
  const shared = { pid: 1, startTime: 300, bootId: 'boot-1', host: 'pbx' }
  const a = environment({ ...shared, pidNamespace: 'pid:[11]' })
  const b = environment({ ...shared, startTime: 900, pidNamespace: 'pid:[22]' })
  await held(t, dir, { environment: a, clock: at(T0) })
  await t.rejects(acquireSpoolLock(dir, { environment: b, clock: at(T0 + 59_000), staleAfterMs: STALE_AFTER_MS }), {
    code: 'ERR_SPOOL_LOCKED',
    message: /on this host in another pid namespace/,
  })
  await held(t, dir, { environment: b, clock: at(T0 + 60_001), staleAfterMs: STALE_AFTER_MS })
  t.match(readLockRecord(dir), { pidNamespace: 'pid:[22]', startTime: 900 })
})

t.test('same host, another boot: stale if last refreshed before this boot, else (a namesake machine) judged by age', async (t) => {
  const before = environment({ pid: 4242, startTime: 10, bootId: 'boot-1', host: 'pbx' })
  const after = (bootTimeMs: number) => environment({ pid: 77, startTime: 20, bootId: 'boot-2', host: 'pbx' }, {}, bootTimeMs)

  const rebooted = t.testdir()
  await acquireSpoolLock(rebooted, { environment: before, clock: at(T0) })
  await held(t, rebooted, { environment: after(T0 + 10_000), clock: at(T0 + 20_000) })
  t.equal(readLockRecord(rebooted).bootId, 'boot-2', 'the machine rebooted after the lock was last refreshed: taken over at once')

  const namesake = t.testdir()
  await acquireSpoolLock(namesake, { environment: before, clock: at(T0) })
  await t.rejects(acquireSpoolLock(namesake, { environment: after(T0 - 3_600_000), clock: at(T0 + 20_000) }), { code: 'ERR_SPOOL_LOCKED' })
})

t.test('a legacy lock (a bare pid, from an earlier version)', { skip: !HAS_PROC && 'needs /proc' }, async (t) => {
  const live = t.testdir({ [SPOOL_LOCK_FILE]: `${process.ppid}\n` })
  await t.rejects(acquireSpoolLock(live), { code: 'ERR_SPOOL_LOCKED', message: new RegExp(`in use by process ${process.ppid};`) }, 'a live pid holds it, as before')

  // Written long before our parent started: the pid was reused since, the writer is gone.
  const reused = t.testdir({ [SPOOL_LOCK_FILE]: `${process.ppid}\n` })
  setLockTime(reused, Date.parse('2001-01-01T00:00:00Z'))
  await held(t, reused)
  t.equal(readLockRecord(reused).pid, process.pid, 'a pid whose process started after the lock was written: taken over')

  for (const [what, pid] of [
    ['our own pid (a container restart: pid 1 again)', process.pid],
    ['a pid no process has', 4194305],
  ] as const) {
    const dir = t.testdir({ [SPOOL_LOCK_FILE]: `${pid}\n` })
    await held(t, dir)
    t.equal(readLockRecord(dir).pid, process.pid, `${what}: taken over`)
  }
})

t.test('an unreadable lock (its writer died between create and write) is taken over once old', async (t) => {
  const env = environment({ pid: 100, startTime: 5, host: 'pbx' })
  const dir = t.testdir({ [SPOOL_LOCK_FILE]: '' })
  setLockTime(dir, T0 - 10_000)
  await t.rejects(acquireSpoolLock(dir, { environment: env, clock: at(T0) }), { code: 'ERR_SPOOL_LOCKED', message: /cannot be read, modified 10 s ago/ })
  setLockTime(dir, T0 - 61_000)
  await held(t, dir, { environment: env, clock: at(T0) })
  t.equal(readLockRecord(dir).pid, 100)
})

t.test('release deletes the lock only while it is ours', async (t) => {
  const env = environment({ pid: 100, startTime: 5, host: 'pbx' })
  const dir = t.testdir()
  const release = await acquireSpoolLock(dir, { environment: env, clock: at(T0) })
  await release()
  t.same(fs.readdirSync(dir), [], 'our own lock is deleted')

  await acquireSpoolLock(dir, { environment: env, clock: at(T0) }).then(async (releaseOurs) => {
    // Another process judged ours stale and took over (we were stalled past the bound, say).
    const theirs = JSON.stringify({ pid: 9, host: 'elsewhere', createdAt: 'now', token: 'theirs' })
    fs.writeFileSync(lockPath(dir), theirs)
    await releaseOurs()
    t.equal(fs.readFileSync(lockPath(dir), 'utf8'), theirs, 'theirs is left in place')
    t.same(leftovers(dir), [], 'nothing left aside')
  })
})

t.test('the refresh keeps the lock fresh, and re-creates it if it was deleted', async (t) => {
  const dir = t.testdir()
  const a = environment({ pid: 1, startTime: 300, host: 'container-a' })
  const b = environment({ pid: 1, startTime: 300, host: 'container-b' })
  const clockA = lockClock()
  const logs: string[] = []
  const releaseA = await acquireSpoolLock(dir, { environment: a, clock: clockA.clock, log: (_l, m) => logs.push(m) })
  t.same(
    clockA.timers.calls.map((c) => c.ms),
    [LOCK_REFRESH_INTERVAL_MS],
    'a refresh every LOCK_REFRESH_INTERVAL_MS is scheduled',
  )

  // Stalled until T0 + 50 s: the overdue refresh runs once, then is due an interval later.
  clockA.timers.stallUntil(T0 + 50_000)
  await clockA.refreshed()
  t.equal(fs.statSync(lockPath(dir)).mtimeMs, T0 + 50_000, 'the refresh sets the time')
  t.equal(clockA.timers.nextDue, T0 + 50_000 + LOCK_REFRESH_INTERVAL_MS, 'and the next one is due an interval later')
  await t.rejects(
    acquireSpoolLock(dir, { environment: b, clock: at(T0 + 50_000 + LOCK_STALE_AFTER_MS - 1000) }),
    { code: 'ERR_SPOOL_LOCKED', message: new RegExp(`refreshed ${LOCK_STALE_AFTER_MS / 1000 - 1} s ago`) },
    'still fresh just under LOCK_STALE_AFTER_MS after its last refresh, long after it was taken',
  )

  fs.unlinkSync(lockPath(dir))
  clockA.timers.runNext()
  await clockA.refreshed()
  t.equal(readLockRecord(dir).host, 'container-a', 'a deleted lock is re-created by its holder')
  t.match(logs, [/had been deleted; re-created it/])

  await releaseA()
  t.equal(clockA.timers.pending, 0, 'release stops the refresh')
  t.notOk(fs.existsSync(lockPath(dir)))
})

t.test('a takeover does not delete a lock that a racing process created after the stale one was read', async (t) => {
  const self = { pid: 100, startTime: 5000, bootId: 'boot-1', pidNamespace: 'pid:[1]', host: 'pbx' }
  const stale = JSON.stringify({ ...self, pid: 200, startTime: 6000, createdAt: 'then', token: 'stale' })
  const racer = JSON.stringify({ ...self, pid: 300, startTime: 9000, createdAt: 'now', token: 'racer' })
  const dir = t.testdir({ [SPOOL_LOCK_FILE]: stale })
  let raced = false
  const env: LockEnvironment = {
    ...environment(self, { 300: 9000 }),
    startTimeOf: async (pid) => {
      if (pid === 200 && !raced) {
        // While we judge the stale lock, the racer takes it over (deletes it, creates its own).
        raced = true
        fs.unlinkSync(lockPath(dir))
        fs.writeFileSync(lockPath(dir), racer, { flag: 'wx' })
        return 6001
      }
      return pid === 300 ? 9000 : undefined
    },
  }
  await t.rejects(acquireSpoolLock(dir, { environment: env }), { code: 'ERR_SPOOL_LOCKED', message: /in use by process 300 / })
  t.ok(raced, 'the race happened')
  t.equal(fs.readFileSync(lockPath(dir), 'utf8'), racer, "the racer's lock is intact")
  t.same(leftovers(dir), [], 'nothing left aside')
})

t.test('Spool: the takeover of a stale lock is logged', async (t) => {
  const records: Array<{ level: number; msg: string }> = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line)) })
  const dir = t.testdir({ [SPOOL_LOCK_FILE]: '4194305\n' })
  const spool = new Spool({ dir, maxBytes: 1 << 20, logger, clock: at(T0), lock: { environment: environment({ pid: 100, host: 'pbx' }) } })
  t.same(await spool.open(), [])
  t.match(records, [{ level: 40, msg: /took over the stale spool lock of .*: process 4194305 is gone/ }])
  await spool.close()
  t.notOk(fs.existsSync(lockPath(dir)))
})
