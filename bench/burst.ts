/**
 * The burst scenario (`npm run bench -- --levels 100 --burst 100,300`): calls already streaming,
 * then a burst of new calls connecting within one second, as when a queue opens or HAProxy fails
 * over. What matters is what the burst does to the calls already up: how long the target's main
 * thread stalls (event-loop delay, bench/lib/loop-delay-probe.mjs) and how late the live calls'
 * audio reaches Soniox meanwhile, each against the relay under the identical load in the same run.
 *
 * Timeline of one measurement (epoch ms, one clock for every process):
 *   live calls start over the ramp; after the warm-up, a steady window of WINDOW_MS; then the burst
 *   window: the burst's calls start within `spreadMs`, and the window runs SETTLE_MS past the last
 *   (their Soniox sessions, first frames and first webhook deliveries happen there); then the burst
 *   calls stream for a while (--burst's call length) and every call ends normally, so every word is still counted.
 */
import { rmSync, readFileSync, mkdtempSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { cpuSeconds } from './lib/proc.js'
import { audioLatencies, sumCounts, type LoadReport } from './lib/reports.js'
import { countRows, fmt, row } from './lib/table.js'
import { epochMs, startRole } from './lib/roles.js'
import { finalReports, sleep, startRig, type Variant } from './lib/rig.js'
import { distribution, median, type Distribution } from './lib/stats.js'
import type { BenchCertificates } from './lib/tls.js'

/** The steady window before the burst, and how long the burst window runs past its last call. */
const WINDOW_MS = 3000
const SETTLE_MS = 2000
/** Time the load generator gets to read and plan the capture before the first call is due. */
const LOAD_PREPARE_MS = 1500

export interface BurstOptions {
  live: number
  burst: number
  spreadMs: number
  /** How long each burst call streams; the live calls outlast them. */
  burstCallMs: number
  rampMs: number
  warmupMs: number
  sampledCalls: number
  tls: { soniox: boolean; webhook: boolean }
}

/** One line of the loop-delay probe: the delays since its previous line. */
export interface LoopDelayWindow {
  at: number
  count: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

export interface BurstFigures {
  target: 'relay' | 'server'
  batchMs?: number | undefined
  live: number
  burst: number
  spreadMs: number
  /** The main thread's event-loop delay, per run (median of the runs once combined; worst kept apart). */
  loopDelay: { steady: LoopDelayWindow; burst: LoopDelayWindow }
  /** The worst event-loop delay of any run during the burst. */
  worstLoopDelayMs: number
  /** The live (sampled) calls' audio latency, write -> stand-in arrival, in each window. */
  liveAudioMs: { steady: Distribution; burst: Distribution }
  /** CPU ms the burst cost per burst call: the burst window's CPU less the steady rate over it. */
  cpuMsPerBurstCall: number
  callsFailed: number
  errors: number
  wordsProduced: number
  wordsDelivered: number
  maxLoadLatenessMs: number
  runs: number
  samples: { steady: number[]; burst: number[]; loopDelay: Array<{ steady: LoopDelayWindow; burst: LoopDelayWindow }> }
}

/** Resolves at an epoch ms (bench/lib/roles.ts epochMs: the clock every role stamps with). */
async function until(epoch: number): Promise<void> {
  const wait = epoch - epochMs()
  if (wait > 0) await sleep(wait)
}

export async function measureBurst(variant: Variant, options: BurstOptions, certificates: BenchCertificates | undefined): Promise<BurstFigures> {
  const dir = mkdtempSync(join(os.tmpdir(), 'bench-burst-'))
  const loopDelayFile = join(dir, 'loop-delay.jsonl')
  const rig = await startRig(variant, { sampledCalls: options.sampledCalls, tls: options.tls, loopDelayFile }, certificates)
  try {
    await sleep(1000)
    const load = await startRole<{ pid: number }>('load')
    const burstOffsetMs = options.rampMs + options.warmupMs + WINDOW_MS
    const burstWindowMs = options.spreadMs + SETTLE_MS
    const liveMs = burstOffsetMs + options.spreadMs + options.burstCallMs + 3000
    // The first call at an epoch the orchestrator picks, so it knows when the burst is due; the
    // load generator reports when it really was, and the latency windows are cut by that.
    const startAt = epochMs() + LOAD_PREPARE_MS
    const burstAt = startAt + burstOffsetMs
    const loadDone = load.request<LoadReport & { burst: { firstAt: number; lastAt: number } }>('run', {
      port: rig.port,
      calls: options.live,
      rampMs: options.rampMs,
      durationMs: liveMs,
      sampledCalls: options.sampledCalls,
      phase: 'spread',
      startAt,
      burst: { calls: options.burst, atMs: burstOffsetMs, spreadMs: options.spreadMs, durationMs: options.burstCallMs },
    })
    // The probe's windows: each signal closes one (the first closes the warm-up, discarded).
    await until(burstAt - WINDOW_MS)
    const cpuAtSteady = cpuSeconds(rig.pid)
    process.kill(rig.pid, 'SIGUSR2')
    await until(burstAt)
    const cpuAtBurst = cpuSeconds(rig.pid)
    process.kill(rig.pid, 'SIGUSR2')
    await until(burstAt + burstWindowMs)
    const cpuAfterBurst = cpuSeconds(rig.pid)
    process.kill(rig.pid, 'SIGUSR2')

    const loadReport = await loadDone
    await load.stop()
    const calls = options.live + options.burst
    const { receiver: receiverReport, standIn: standInReport } = await finalReports(rig, variant.target, loadReport.ok)
    const windows = readFileSync(loopDelayFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as LoopDelayWindow)
    const [, steadyDelay, burstDelay] = windows
    if (!steadyDelay || !burstDelay) throw new Error(`the loop-delay probe wrote ${windows.length} windows, not 3: was it loaded?`)
    const { firstAt, lastAt } = loadReport.burst
    const steady = audioLatencies(loadReport.writes, standInReport, firstAt - WINDOW_MS, firstAt)
    const during = audioLatencies(loadReport.writes, standInReport, firstAt, lastAt + SETTLE_MS)
    if (Math.abs(firstAt - burstAt) > 100) {
      process.stderr.write(`bench: the load generator started ${(firstAt - burstAt).toFixed(0)} ms late; the event-loop delay windows are off by that much\n`)
    }
    const burstSeconds = burstWindowMs / 1000
    const steadyRate = (cpuAtBurst - cpuAtSteady) / (WINDOW_MS / 1000)
    return {
      target: variant.target,
      ...(variant.batchMs !== undefined ? { batchMs: variant.batchMs } : {}),
      live: options.live,
      burst: options.burst,
      spreadMs: options.spreadMs,
      loopDelay: { steady: steadyDelay, burst: burstDelay },
      worstLoopDelayMs: burstDelay.maxMs,
      liveAudioMs: { steady: distribution(steady), burst: distribution(during) },
      cpuMsPerBurstCall: ((cpuAfterBurst - cpuAtBurst - steadyRate * burstSeconds) * 1000) / options.burst,
      callsFailed: calls - loadReport.ok,
      errors: rig.errors() + loadReport.failures.length,
      wordsProduced: Object.values(standInReport.calls).reduce((n, c) => n + c.wordsProduced, 0),
      wordsDelivered: Object.values(receiverReport.finals).reduce((n, list) => n + list.reduce((m, [, words]) => m + words, 0), 0),
      maxLoadLatenessMs: loadReport.maxLatenessMs,
      runs: 1,
      samples: { steady, burst: during, loopDelay: [{ steady: steadyDelay, burst: burstDelay }] },
    }
  } finally {
    await rig.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Repeated burst measurements of one target as one: latency samples pooled; event-loop delay as
 * the median of the runs' figures (the worst run's max kept apart); counts summed.
 */
export function combineBurst(runs: BurstFigures[]): BurstFigures {
  const first = runs[0]
  if (first === undefined) throw new Error('combineBurst() needs at least one run')
  if (runs.length === 1) return first
  const loopDelay = runs.flatMap((r) => r.samples.loopDelay)
  const middle = (pick: (w: { steady: LoopDelayWindow; burst: LoopDelayWindow }) => LoopDelayWindow): LoopDelayWindow => {
    const windows = loopDelay.map(pick)
    return {
      at: NaN,
      count: windows.reduce((n, w) => n + w.count, 0),
      p50Ms: median(windows.map((w) => w.p50Ms)),
      p99Ms: median(windows.map((w) => w.p99Ms)),
      maxMs: median(windows.map((w) => w.maxMs)),
    }
  }
  const steady = runs.flatMap((r) => r.samples.steady)
  const burst = runs.flatMap((r) => r.samples.burst)
  return {
    target: first.target,
    ...(first.batchMs !== undefined ? { batchMs: first.batchMs } : {}),
    live: first.live,
    burst: first.burst,
    spreadMs: first.spreadMs,
    loopDelay: { steady: middle((w) => w.steady), burst: middle((w) => w.burst) },
    worstLoopDelayMs: Math.max(...runs.map((r) => r.worstLoopDelayMs)),
    liveAudioMs: { steady: distribution(steady), burst: distribution(burst) },
    cpuMsPerBurstCall: median(runs.map((r) => r.cpuMsPerBurstCall)),
    ...sumCounts(runs),
    samples: { steady, burst, loopDelay },
  }
}


export function burstTable(relay: BurstFigures | undefined, server: BurstFigures | undefined, relayRuns: BurstFigures[], serverRuns: BurstFigures[]): string {
  const any = relay ?? server
  if (!any) return ''
  const repetitions =
    relayRuns.length > 1 && serverRuns.length === relayRuns.length
      ? `Each repetition (server / relay, same run): ${relayRuns
          .map((r, i) => {
            const s = serverRuns[i] as BurstFigures
            return `#${i + 1}: loop delay max ${fmt(s.loopDelay.burst.maxMs, 1)} ms (relay ${fmt(r.loopDelay.burst.maxMs, 1)}), live audio p99 ${fmt(s.liveAudioMs.burst.p99, 2)} ms (relay ${fmt(r.liveAudioMs.burst.p99, 2)})`
          })
          .join('; ')}.`
      : ''
  return [
    `### A burst of ${any.burst} calls within ${any.spreadMs / 1000} s on top of ${any.live} live calls${server?.batchMs !== undefined ? `, server at SONIOX_AUDIO_BATCH_MS=${server.batchMs}` : ''}${any.runs > 1 ? ` (${any.runs} runs of each target, alternating: median event-loop delays, latency samples pooled)` : ''}`,
    '',
    `"During the burst": from the first burst call's start to ${SETTLE_MS / 1000} s after the last's; "before": the ${WINDOW_MS / 1000} s before it. Event-loop delay: the target's main thread (monitorEventLoopDelay, 1 ms resolution).`,
    '',
    '| figure | relay | server | server / relay |',
    '|---|---|---|---|',
    row('event-loop delay max ms, during the burst', relay?.loopDelay.burst.maxMs, server?.loopDelay.burst.maxMs, 1),
    row('event-loop delay max ms, worst run', relay?.worstLoopDelayMs, server?.worstLoopDelayMs, 1),
    row('event-loop delay p99 ms, during the burst', relay?.loopDelay.burst.p99Ms, server?.loopDelay.burst.p99Ms, 2),
    row('event-loop delay max ms, before', relay?.loopDelay.steady.maxMs, server?.loopDelay.steady.maxMs, 1),
    row('live calls\' audio latency p50 ms, during the burst', relay?.liveAudioMs.burst.p50, server?.liveAudioMs.burst.p50, 3),
    row('live calls\' audio latency p99 ms, during the burst', relay?.liveAudioMs.burst.p99, server?.liveAudioMs.burst.p99, 3),
    row('live calls\' audio latency max ms, during the burst', relay?.liveAudioMs.burst.max, server?.liveAudioMs.burst.max, 3),
    row('live calls\' audio latency p99 ms, before', relay?.liveAudioMs.steady.p99, server?.liveAudioMs.steady.p99, 3),
    row('CPU ms per burst call (burst window above the steady rate)', relay?.cpuMsPerBurstCall, server?.cpuMsPerBurstCall, 2),
    ...countRows(relay, server, { failed: 'calls failed or cut short', errors: 'errors (error logs + failed calls)' }),
    '',
    relay && server
      ? `Added live audio latency during the burst (server p99 - relay p99): ${fmt(server.liveAudioMs.burst.p99 - relay.liveAudioMs.burst.p99, 3)} ms (before the burst: ${fmt(server.liveAudioMs.steady.p99 - relay.liveAudioMs.steady.p99, 3)} ms). Samples during the burst: ${server.liveAudioMs.burst.count}.`
      : '',
    repetitions,
    '',
  ].join('\n')
}
