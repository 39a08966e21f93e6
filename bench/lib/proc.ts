/** CPU and memory of a process, read from /proc (Linux): what the kernel charged it. */
import { readdirSync, readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'

let ticksPerSecond: number | undefined

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      ticksPerSecond = 100
    }
  }
  return ticksPerSecond
}

/** User + system CPU seconds charged so far, from a /proc stat file. */
function statCpuSeconds(path: string): number {
  const stat = readFileSync(path, 'utf8')
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return (utime + stime) / clockTicks()
}

/** User + system CPU seconds the process (all its threads) has used so far. */
export function cpuSeconds(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/stat`)
}

/**
 * User + system CPU seconds of the process's main thread alone (its task id is the pid): the
 * event loop, where the per-frame work runs. The rest is other threads: V8's GC and compiler
 * helpers, libuv's threadpool, worker threads such as the server's webhook delivery.
 */
export function mainThreadCpuSeconds(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/task/${pid}/stat`)
}

/** A numeric field of a /proc status file ("Name:   123 kB" -> 123); 0 if absent. */
function statusNumber(path: string, field: string): number {
  const status = readFileSync(path, 'utf8')
  // Anchored: "voluntary_ctxt_switches" is also the tail of "nonvoluntary_ctxt_switches".
  return Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0)
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  return statusNumber(`/proc/${pid}/status`, 'VmRSS') * 1024
}

/**
 * Times the process's threads have gone to sleep so far (voluntary context switches, summed over
 * the threads alive now). Each sleep is later a wake-up, and on a VM a wake-up costs tens to
 * hundreds of microseconds of CPU, so this explains CPU that no profile shows.
 */
export function wakeups(pid: number): number {
  let total = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += statusNumber(`/proc/${pid}/task/${tid}/status`, 'voluntary_ctxt_switches')
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return total
}
