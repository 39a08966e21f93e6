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

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1]
  return Number(kb ?? 0) * 1024
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
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
      total += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0)
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return total
}
