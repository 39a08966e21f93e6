/**
 * The process's own metrics, under the names Prometheus' client libraries give them (prom-client's
 * default metrics for Node; the process_* ones are also the Go and Python clients'), so existing
 * dashboards and alerts work unchanged. Every value is read at scrape time: nothing runs between
 * scrapes but Node's own event-loop delay sampler (perf_hooks.monitorEventLoopDelay, a libuv timer
 * that does not keep the process alive).
 *
 *   process_cpu_user_seconds_total, process_cpu_system_seconds_total,
 *   process_cpu_seconds_total            CPU time since the process started (process.cpuUsage())
 *   process_start_time_seconds           when the process started (performance.timeOrigin)
 *   process_resident_memory_bytes        RSS (process.memoryUsage.rss())
 *   process_virtual_memory_bytes,
 *   process_heap_bytes                   VmSize and VmData of /proc/self/status (Linux only)
 *   process_open_fds, process_max_fds    entries of /proc/self/fd, soft "Max open files" of
 *                                        /proc/self/limits (Linux only)
 *   nodejs_heap_size_total_bytes, nodejs_heap_size_used_bytes,
 *   nodejs_external_memory_bytes         process.memoryUsage()
 *   nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds
 *                                        event-loop delay since the previous scrape (the sampler is
 *                                        reset at each scrape, as prom-client does)
 *   nodejs_version_info                  1, labelled with Node's version
 *
 * Where /proc is absent (not Linux) the Linux-only families are not registered at all: no series
 * is better than a made-up one. prom-client's nodejs_eventloop_lag_seconds (a setImmediate timed
 * after each scrape) is not exported: it needs work after the scrape, and the percentiles say more.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks'
import type { Registry } from './metrics.js'

export interface ProcessMetricsOptions {
  /** Where the process's /proc entries are: '/proc/self' on Linux (the default), null to leave them out. */
  procDir?: string | null
  /** The start time, in ms since the epoch (default performance.timeOrigin). */
  startTimeMs?: number
  /** process.memoryUsage.rss() by default. */
  rss?: () => number
  /** Resolution of the event-loop delay sampler, ms (Node's default 10). */
  eventLoopResolutionMs?: number
}

export interface ProcessMetrics {
  /** Stops the event-loop delay sampler. */
  close(): void
}

/** Event-loop delay figures exported, each as nodejs_eventloop_lag_<name>_seconds. */
const LAG_FIGURES = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'] as const
type LagFigure = (typeof LAG_FIGURES)[number]

const LAG_HELP: Record<LagFigure, string> = {
  min: 'The minimum recorded event loop delay (since the previous scrape).',
  max: 'The maximum recorded event loop delay (since the previous scrape).',
  mean: 'The mean of the recorded event loop delays (since the previous scrape).',
  stddev: 'The standard deviation of the recorded event loop delays (since the previous scrape).',
  p50: 'The 50th percentile of the recorded event loop delays (since the previous scrape).',
  p90: 'The 90th percentile of the recorded event loop delays (since the previous scrape).',
  p99: 'The 99th percentile of the recorded event loop delays (since the previous scrape).',
}

export function registerProcessMetrics(r: Registry, options: ProcessMetricsOptions = {}): ProcessMetrics {
  const procDir = options.procDir === undefined ? (process.platform === 'linux' ? '/proc/self' : null) : options.procDir
  const startSeconds = (options.startTimeMs ?? performance.timeOrigin) / 1000
  const rss = options.rss ?? (() => process.memoryUsage.rss())

  // One read per scrape of each shared source, so that user + system = total, used <= total.
  let cpu: NodeJS.CpuUsage = { user: 0, system: 0 }
  let memory: NodeJS.MemoryUsage | undefined
  let status: Map<string, number> | undefined
  let lag: Record<LagFigure, number> = { min: 0, max: 0, mean: 0, stddev: 0, p50: 0, p90: 0, p99: 0 }
  const histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: options.eventLoopResolutionMs ?? 10 })
  histogram.enable()
  r.beforeCollect(() => {
    cpu = process.cpuUsage()
    memory = process.memoryUsage()
    status = procDir === null ? undefined : readStatus(`${procDir}/status`)
    // No sample since the previous scrape (two scrapes within the sampler's resolution): keep the last figures.
    if (histogram.count > 0) {
      lag = {
        min: histogram.min / 1e9,
        max: histogram.max / 1e9,
        mean: histogram.mean / 1e9,
        stddev: histogram.stddev / 1e9,
        p50: histogram.percentile(50) / 1e9,
        p90: histogram.percentile(90) / 1e9,
        p99: histogram.percentile(99) / 1e9,
      }
      histogram.reset()
    }
  })

  r.counter('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', [], () => cpu.user / 1e6)
  r.counter('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', [], () => cpu.system / 1e6)
  r.counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', [], () => (cpu.user + cpu.system) / 1e6)
  r.gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', [], () => startSeconds)
  r.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', [], rss)
  if (procDir !== null && readStatus(`${procDir}/status`) !== undefined) {
    r.gauge('process_virtual_memory_bytes', 'Virtual memory size in bytes.', [], () => status?.get('VmSize'))
    r.gauge('process_heap_bytes', 'Process heap size in bytes (VmData: the data segment and anonymous mappings).', [], () => status?.get('VmData'))
  }
  if (procDir !== null && openFds(procDir) !== undefined) {
    r.gauge('process_open_fds', 'Number of open file descriptors.', [], () => openFds(procDir))
  }
  if (procDir !== null && maxFds(procDir) !== undefined) {
    r.gauge('process_max_fds', 'Maximum number of open file descriptors (the soft limit, RLIMIT_NOFILE).', [], () => maxFds(procDir))
  }
  r.gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', [], () => memory?.heapTotal)
  r.gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', [], () => memory?.heapUsed)
  r.gauge('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', [], () => memory?.external)
  for (const figure of LAG_FIGURES) r.gauge(`nodejs_eventloop_lag_${figure}_seconds`, LAG_HELP[figure], [], () => lag[figure])
  const [major = '', minor = '', patch = ''] = process.versions.node.split('.')
  r.gauge('nodejs_version_info', 'Node.js version info.', ['version', 'major', 'minor', 'patch']).child(process.version, major, minor, patch).set(1)

  return { close: () => histogram.disable() }
}

/** The kB fields of /proc/<pid>/status, in bytes; undefined when it cannot be read. */
function readStatus(path: string): Map<string, number> | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
  const fields = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line)
    if (m !== null) fields.set(m[1] as string, Number(m[2]) * 1024)
  }
  return fields
}

/**
 * Entries of <procDir>/fd; in our own /proc/self/fd less the one readdir itself had open while
 * listing it. Undefined when it cannot be read.
 */
function openFds(procDir: string): number | undefined {
  try {
    return readdirSync(`${procDir}/fd`).length - (procDir === '/proc/self' ? 1 : 0)
  } catch {
    return undefined
  }
}

/** The soft limit of "Max open files" in <procDir>/limits (+Inf for unlimited); undefined when absent. */
function maxFds(procDir: string): number | undefined {
  let text: string
  try {
    text = readFileSync(`${procDir}/limits`, 'utf8')
  } catch {
    return undefined
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text)
  if (m === null) return undefined
  return m[1] === 'unlimited' ? Infinity : Number(m[1])
}
