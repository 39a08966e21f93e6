/**
 * The benchmark: the server under test and a minimal relay, each under the identical load, each
 * measured in the same run so that figures are ratios that survive a noisy machine.
 *
 *   npm run bench -- --levels 100,500,1000 --duration 60 --ramp 20 --warmup 5
 *   npm run bench -- --smoke          (a few calls for a few seconds; checks words match)
 *   npm run bench -- --levels 100 --phase aligned   (every call's frames in the same millisecond)
 *
 * Per level and target, five processes: the Soniox stand-in, the webhook receiver, the target
 * (built server `dist/cli/main.js serve` with production settings and LOG_LEVEL=info, or
 * bench/roles/relay), the load generator, and this orchestrator, which only coordinates and
 * reads /proc. Times: every process stamps events with performance.timeOrigin + performance.now()
 * (epoch ms, sub-ms resolution, one machine's clock), so cross-process differences are latencies.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { cpuSeconds, mainThreadCpuSeconds, rssBytes, wakeups } from './lib/proc.js'
import { repoRoot, startRole, type RoleHandle } from './lib/roles.js'
import { distribution, median, type Distribution } from './lib/stats.js'

interface Options {
  levels: number[]
  durationMs: number
  rampMs: number
  warmupMs: number
  sampledCalls: number
  /** Measurements per level and target, relay and server alternating. */
  repeat: number
  targets: Array<'relay' | 'server'>
  phase: 'spread' | 'aligned'
  results: string | undefined
}

export interface Figures {
  target: 'relay' | 'server'
  calls: number
  /** CPU seconds (user+sys) per second of call audio, over the measurement window. */
  cpuPerCallSecond: number
  /** The part of cpuPerCallSecond spent on the main thread (the event loop). */
  mainThreadCpuPerCallSecond: number
  /** Thread wake-ups (voluntary context switches, all threads) per second of the window. */
  wakeupsPerSecond: number
  /** Resident memory above idle, per live call, mid-window. */
  rssPerCallKb: number
  audioLatencyMs: Distribution
  transcriptLatencyMs: Distribution
  wordsProduced: number
  wordsDelivered: number
  callsFailed: number
  errors: number
  maxLoadLatenessMs: number
  /** How many measurements these figures combine (see combine()). */
  runs: number
  /** The raw latency samples, kept so that repeated runs pool them into one distribution. */
  samples: { audio: number[]; transcript: number[] }
}

const ROOT = repoRoot()
const SERVER_BIN = join(ROOT, 'dist/cli/main.js')

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * BENCH_NODE_ARGS: extra node flags for the target (server or relay), the same for both, e.g.
 * "--perf-basic-prof" so that `perf record -p <pid>` can name JIT-compiled functions.
 */
function targetNodeArgs(): string[] {
  return (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '')
}

/** Starts the built server and resolves once it logs that it listens; counts error log lines. */
async function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; errors: () => number; stop: () => Promise<void> }> {
  if (!existsSync(SERVER_BIN)) throw new Error(`${SERVER_BIN} is missing: run "npm run build" first`)
  // BENCH_PROFILE=<dir> writes a V8 CPU profile of the server (node --cpu-prof) for the profiler.
  const profile = [...targetNodeArgs(), ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [])]
  // HTTP_PORT=0: the bench measures the call path, and must not collide with a server on 9093.
  const child = spawn(process.execPath, [...profile, SERVER_BIN, 'serve'], { env: { PATH: process.env.PATH ?? '', HTTP_PORT: '0', ...env }, stdio: ['ignore', 'inherit', 'pipe'] })
  let errors = 0
  let rest = ''
  const listening = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited with ${code} before listening`)))
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (text: string) => {
      const lines = (rest + text).split('\n')
      rest = lines.pop() ?? ''
      for (const line of lines) {
        if (line.includes('"AudioSocket server listening"')) resolve()
        if (/"level":(50|60)/.test(line)) errors++
      }
    })
  })
  await listening
  child.removeAllListeners('exit')
  return {
    child,
    errors: () => errors,
    stop: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGTERM')
      await exited
    },
  }
}

interface StandInReport {
  connections: number
  calls: Record<string, { wordsProduced: number; utteranceEnds: Array<[number, number]>; arrivals?: Array<[number, number]> }>
}
interface ReceiverReport {
  requests: number
  callsEnded: number
  finals: Record<string, Array<[number, number, number]>>
}
interface LoadReport {
  calls: number
  ok: number
  failures: string[]
  maxLatenessMs: number
  writes: Record<string, Array<[number, number]>>
}

/** Audio latency: each sampled write, to the first stand-in arrival that holds its last byte. */
function audioLatencies(writes: LoadReport['writes'], standIn: StandInReport): number[] {
  const out: number[] = []
  for (const [uuid, log] of Object.entries(writes)) {
    const arrivals = standIn.calls[uuid]?.arrivals
    if (!arrivals) continue
    let j = 0
    let previous = 0
    for (const [bytes, at] of log) {
      if (bytes === previous) continue // not an audio write (the UUID frame)
      previous = bytes
      while (j < arrivals.length && (arrivals[j]?.[0] ?? 0) < bytes) j++
      const arrival = arrivals[j]
      if (!arrival) break
      out.push(arrival[1] - at)
    }
  }
  return out
}

function transcriptLatencies(standIn: StandInReport, receiver: ReceiverReport): number[] {
  const out: number[] = []
  for (const [callId, call] of Object.entries(standIn.calls)) {
    const received = new Map((receiver.finals[callId] ?? []).map(([index, , at]) => [index, at]))
    for (const [index, sentAt] of call.utteranceEnds) {
      const at = received.get(index)
      if (at !== undefined) out.push(at - sentAt)
    }
  }
  return out
}

async function measure(target: 'relay' | 'server', calls: number, options: Options): Promise<Figures> {
  const standIn = await startRole<{ url: string }>('stand-in', { BENCH_SAMPLED_CALLS: String(options.sampledCalls) })
  const receiver = await startRole<{ url: string }>('receiver')
  const port = await freePort()
  const spoolDir = mkdtempSync(join(os.tmpdir(), 'bench-spool-'))
  const env = {
    AUDIOSOCKET_PORT: String(port),
    SONIOX_API_KEY: 'bench-key',
    SONIOX_WEBSOCKET_URL: standIn.ready.url,
    WEBHOOK_URL: receiver.ready.url,
    WEBHOOK_SECRET: 'whsec_YmVuY2htYXJrLXNlY3JldA==',
    LOG_LEVEL: 'info',
    SPOOL_DIR: spoolDir,
    HTTP_PORT: '0',
    NODE_ENV: 'production',
  }
  let stopTarget: () => Promise<void>
  let pid: number
  let errorCount = (): number => 0
  if (target === 'server') {
    const server = await startServer(env)
    stopTarget = server.stop
    pid = server.child.pid as number
    errorCount = server.errors
  } else {
    const relay: RoleHandle<{ port: number }> = await startRole('relay', env, targetNodeArgs())
    stopTarget = relay.stop
    pid = relay.child.pid as number
  }
  try {
    await sleep(1000)
    const idleRss = rssBytes(pid)
    const load = await startRole<{ pid: number }>('load')
    const loadDone = load.request<LoadReport>('run', { port, calls, rampMs: options.rampMs, durationMs: options.durationMs, sampledCalls: options.sampledCalls, phase: options.phase })

    // The window: every call is live (after the ramp and a warm-up) until the first call ends.
    await sleep(options.rampMs + options.warmupMs)
    const windowMs = Math.max(1000, options.durationMs - options.rampMs - options.warmupMs - 2000)
    const cpu0 = cpuSeconds(pid)
    const main0 = mainThreadCpuSeconds(pid)
    const wakeups0 = wakeups(pid)
    const t0 = performance.now()
    await sleep(windowMs / 2)
    const rss = rssBytes(pid)
    await sleep(windowMs / 2)
    const cpu1 = cpuSeconds(pid)
    const main1 = mainThreadCpuSeconds(pid)
    const wakeups1 = wakeups(pid)
    const seconds = (performance.now() - t0) / 1000

    const loadReport = await loadDone
    await load.stop()
    // Let the last words reach the receiver: every call ends with call.ended (server) or its last POST.
    const deadline = Date.now() + 30_000
    let receiverReport = await receiver.request<ReceiverReport>('report')
    while (Date.now() < deadline && target === 'server' && receiverReport.callsEnded < loadReport.ok) {
      await sleep(500)
      receiverReport = await receiver.request<ReceiverReport>('report')
    }
    if (target === 'relay') {
      await sleep(2000)
      receiverReport = await receiver.request<ReceiverReport>('report')
    }
    const standInReport = await standIn.request<StandInReport>('report')
    const produced = Object.values(standInReport.calls).reduce((n, c) => n + c.wordsProduced, 0)
    const delivered = Object.values(receiverReport.finals).reduce((n, list) => n + list.reduce((m, [, words]) => m + words, 0), 0)
    const audio = audioLatencies(loadReport.writes, standInReport)
    const transcript = transcriptLatencies(standInReport, receiverReport)
    return {
      target,
      calls,
      cpuPerCallSecond: (cpu1 - cpu0) / (calls * seconds),
      mainThreadCpuPerCallSecond: (main1 - main0) / (calls * seconds),
      wakeupsPerSecond: (wakeups1 - wakeups0) / seconds,
      rssPerCallKb: (rss - idleRss) / calls / 1024,
      audioLatencyMs: distribution(audio),
      transcriptLatencyMs: distribution(transcript),
      wordsProduced: produced,
      wordsDelivered: delivered,
      callsFailed: loadReport.calls - loadReport.ok,
      errors: errorCount() + loadReport.failures.length,
      maxLoadLatenessMs: loadReport.maxLatenessMs,
      runs: 1,
      samples: { audio, transcript },
    }
  } finally {
    await stopTarget()
    await receiver.stop()
    await standIn.stop()
    rmSync(spoolDir, { recursive: true, force: true })
  }
}

/**
 * Repeated measurements of one target at one level as one set of figures: the median CPU and
 * memory (a noisy neighbour moves single runs, not the middle one); latency samples pooled into
 * one distribution; words, failures and errors summed; the worst load-generator lateness.
 */
export function combine(runs: Figures[]): Figures {
  const first = runs[0]
  if (first === undefined) throw new Error('combine() needs at least one run')
  if (runs.length === 1) return first
  const audio = runs.flatMap((r) => r.samples.audio)
  const transcript = runs.flatMap((r) => r.samples.transcript)
  const sum = (pick: (r: Figures) => number): number => runs.reduce((n, r) => n + pick(r), 0)
  return {
    target: first.target,
    calls: first.calls,
    cpuPerCallSecond: median(runs.map((r) => r.cpuPerCallSecond)),
    mainThreadCpuPerCallSecond: median(runs.map((r) => r.mainThreadCpuPerCallSecond)),
    wakeupsPerSecond: median(runs.map((r) => r.wakeupsPerSecond)),
    rssPerCallKb: median(runs.map((r) => r.rssPerCallKb)),
    audioLatencyMs: distribution(audio),
    transcriptLatencyMs: distribution(transcript),
    wordsProduced: sum((r) => r.wordsProduced),
    wordsDelivered: sum((r) => r.wordsDelivered),
    callsFailed: sum((r) => r.callsFailed),
    errors: sum((r) => r.errors),
    maxLoadLatenessMs: Math.max(...runs.map((r) => r.maxLoadLatenessMs)),
    runs: runs.length,
    samples: { audio, transcript },
  }
}

/** One line per repetition: the same-run ratios, so the spread behind each median is visible. */
function repetitionLines(relayRuns: Figures[], serverRuns: Figures[]): string {
  if (relayRuns.length < 2 || serverRuns.length !== relayRuns.length) return ''
  const cells = relayRuns.map((relay, i) => {
    const server = serverRuns[i] as Figures
    return `${fmt(server.cpuPerCallSecond / relay.cpuPerCallSecond)}x CPU (main thread ${fmt(server.mainThreadCpuPerCallSecond / relay.mainThreadCpuPerCallSecond)}x), transcript p99 ${fmt(server.transcriptLatencyMs.p99, 1)} ms (relay ${fmt(relay.transcriptLatencyMs.p99, 1)}), added audio p99 ${fmt(server.audioLatencyMs.p99 - relay.audioLatencyMs.p99, 2)} ms`
  })
  return `Each repetition (server / relay, same run): ${cells.map((c, i) => `#${i + 1}: ${c}`).join('; ')}.`
}

function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a'
}

function table(level: number, relay: Figures | undefined, server: Figures | undefined, repetitions = ''): string {
  const runs = (relay ?? server)?.runs ?? 1
  const row = (name: string, r: number | undefined, s: number | undefined, digits = 2, ratio = true): string =>
    `| ${name} | ${r === undefined ? '-' : fmt(r, digits)} | ${s === undefined ? '-' : fmt(s, digits)} | ${ratio && r !== undefined && s !== undefined ? `${fmt(s / r)}x` : ''} |`
  return [
    `### ${level} concurrent calls${runs > 1 ? ` (${runs} runs of each target, alternating: median CPU and RSS, latency samples pooled)` : ''}`,
    '',
    '| figure | relay | server | server / relay |',
    '|---|---|---|---|',
    row('CPU ms per call-second of audio', relay && relay.cpuPerCallSecond * 1000, server && server.cpuPerCallSecond * 1000, 3),
    row('of which main thread (event loop)', relay && relay.mainThreadCpuPerCallSecond * 1000, server && server.mainThreadCpuPerCallSecond * 1000, 3),
    row('thread wake-ups per second (all threads)', relay?.wakeupsPerSecond, server?.wakeupsPerSecond, 0),
    row('RSS KB per live call (above idle)', relay?.rssPerCallKb, server?.rssPerCallKb, 1),
    row('audio latency p50 ms', relay?.audioLatencyMs.p50, server?.audioLatencyMs.p50, 3),
    row('audio latency p99 ms', relay?.audioLatencyMs.p99, server?.audioLatencyMs.p99, 3),
    row('audio latency max ms', relay?.audioLatencyMs.max, server?.audioLatencyMs.max, 3),
    row('transcript latency p50 ms', relay?.transcriptLatencyMs.p50, server?.transcriptLatencyMs.p50, 3),
    row('transcript latency p99 ms', relay?.transcriptLatencyMs.p99, server?.transcriptLatencyMs.p99, 3),
    row('transcript latency max ms', relay?.transcriptLatencyMs.max, server?.transcriptLatencyMs.max, 3),
    row('words produced by the stand-in', relay?.wordsProduced, server?.wordsProduced, 0, false),
    row('words delivered to the receiver', relay?.wordsDelivered, server?.wordsDelivered, 0, false),
    row('calls failed or cut short', relay?.callsFailed, server?.callsFailed, 0, false),
    row('errors (error logs + failed calls)', relay?.errors, server?.errors, 0, false),
    row('load generator max write lateness ms', relay?.maxLoadLatenessMs, server?.maxLoadLatenessMs, 1, false),
    '',
    server && relay
      ? `Added audio latency (server p99 - relay p99): ${fmt(server.audioLatencyMs.p99 - relay.audioLatencyMs.p99, 3)} ms. Audio latency samples: ${server.audioLatencyMs.count}; transcript latency samples: ${server.transcriptLatencyMs.count}.`
      : '',
    repetitions,
    '',
  ].join('\n')
}

function positiveInteger(name: string, value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number of at least 1, not "${value}"`)
  return n
}

function parsePhase(value: string): Options['phase'] {
  if (value === 'spread' || value === 'aligned') return value
  throw new Error(`--phase must be "spread" or "aligned", not "${value}"`)
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      levels: { type: 'string', default: '100,500,1000' },
      duration: { type: 'string', default: '60' },
      ramp: { type: 'string', default: '20' },
      warmup: { type: 'string', default: '5' },
      sampled: { type: 'string', default: '50' },
      repeat: { type: 'string', default: '1' },
      targets: { type: 'string', default: 'relay,server' },
      phase: { type: 'string', default: 'spread' },
      results: { type: 'string' },
      smoke: { type: 'boolean', default: false },
    },
  })
  if (values.smoke) {
    return { levels: [3], durationMs: 6000, rampMs: 500, warmupMs: 500, sampledCalls: 3, repeat: 1, targets: ['relay', 'server'], phase: 'spread', results: values.results }
  }
  return {
    levels: String(values.levels).split(',').map(Number),
    durationMs: Number(values.duration) * 1000,
    rampMs: Number(values.ramp) * 1000,
    warmupMs: Number(values.warmup) * 1000,
    sampledCalls: Number(values.sampled),
    repeat: positiveInteger('--repeat', String(values.repeat)),
    targets: String(values.targets).split(',') as Options['targets'],
    phase: parsePhase(String(values.phase)),
    results: values.results,
  }
}

/** Runs the benchmark; appends to `results` (default bench/RESULTS.md) unless it is "-". */
export async function main(argv: string[]): Promise<{ figures: Figures[]; markdown: string }> {
  const options = parseOptions(argv)
  const figures: Figures[] = []
  const sections: string[] = []
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  for (const level of options.levels) {
    const runs: Record<'relay' | 'server', Figures[]> = { relay: [], server: [] }
    for (let r = 1; r <= options.repeat; r++) {
      for (const target of options.targets) {
        process.stderr.write(`bench: ${level} calls against the ${target}${options.repeat > 1 ? ` (run ${r} of ${options.repeat})` : ''}...\n`)
        runs[target].push(await measure(target, level, options))
      }
    }
    const relay = runs.relay.length > 0 ? combine(runs.relay) : undefined
    const server = runs.server.length > 0 ? combine(runs.server) : undefined
    for (const f of [relay, server]) if (f) figures.push(f)
    sections.push(table(level, relay, server, repetitionLines(runs.relay, runs.server)))
  }
  const cpus = os.cpus()
  const markdown = [
    `## ${new Date().toISOString()} — audiosocket-soniox ${pkg.version}`,
    '',
    `Machine: ${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}.`,
    `Command: \`npm run bench -- ${argv.join(' ')}\`. Each call: fixtures/captures/app-8k-speech.ascap (8 kHz, 20 ms frames) looped to ${options.durationMs / 1000} s, fresh UUID, starts spread over ${options.rampMs / 1000} s (${options.phase === 'aligned' ? 'phase-aligned: every call\'s frames in the same millisecond' : 'each call at its own phase within the 20 ms frame period'}); window = after ramp + ${options.warmupMs / 1000} s warm-up until the first call ends.`,
    '',
    ...sections,
  ].join('\n')
  const resultsFile = options.results ?? join(ROOT, 'bench/RESULTS.md')
  if (resultsFile !== '-') appendFileSync(resultsFile, `${markdown}\n`)
  return { figures, markdown }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '')
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    ({ markdown }) => {
      process.stdout.write(`${markdown}\n`)
      process.exit(0)
    },
    (err: unknown) => {
      process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exit(1)
    },
  )
}
