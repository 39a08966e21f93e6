/**
 * The benchmark: the server under test and a minimal relay, each under the identical load, each
 * measured in the same run so that figures are ratios that survive a noisy machine.
 *
 *   npm run bench -- --levels 100,500,1000 --duration 60 --ramp 20 --warmup 5
 *   npm run bench -- --smoke          (a few calls for a few seconds; checks words match)
 *   npm run bench -- --levels 100 --phase aligned   (every call's frames in the same millisecond)
 *   npm run bench -- --levels 100 --tls --webhook-tls   (wss:// to the stand-in, https:// to the receiver)
 *   npm run bench -- --levels 100 --tls --batch-ms 0,20,60,120   (the server at each SONIOX_AUDIO_BATCH_MS)
 *   npm run bench -- --levels 100 --burst 100,300   (bursts of calls on top of live ones: bench/burst.ts)
 *   npm run bench -- --levels 100 --compare /tmp/old   (another build's server as a third target)
 *   npm run bench -- --conversations 250   (250 conversations against 500 calls: bench/conversations.ts)
 *
 * Per level and target, five processes: the Soniox stand-in, the webhook receiver, the target
 * (built server `dist/cli/main.js serve` with production settings and LOG_LEVEL=info, or
 * bench/roles/relay), the load generator, and this orchestrator, which only coordinates and
 * reads /proc. Times: every process stamps events with its wall-clock origin + performance.now()
 * (epoch ms, sub-ms resolution, one machine's clock), so cross-process differences are latencies.
 */
import { execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, readFileSync } from 'node:fs'
import os from 'node:os'
import { basename, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { burstTable, combineBurst, measureBurst, type BurstFigures } from './burst.js'
import { conversationsCommandLine, runConversations, type ShapeFigures } from './conversations.js'
import { rssBytes } from './lib/proc.js'
import { audioLatencies, sumCounts, type LoadReport, type ReceiverReport, type StandInReport } from './lib/reports.js'
import { countRows, fmt, row } from './lib/table.js'
import { finalReports, sleep, startRig, type Variant } from './lib/rig.js'
import { repoRoot, startRole } from './lib/roles.js'
import { distribution, median, type Distribution } from './lib/stats.js'
import { readWindow } from './lib/window.js'
import { makeBenchCertificates, type BenchCertificates, type LinkReport } from './lib/tls.js'

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
  /** wss:// between the targets and the stand-in (`--tls`), https:// to the receiver (`--webhook-tls`). */
  tls: { soniox: boolean; webhook: boolean }
  /**
   * `--batch-ms`: the server is measured at each of these SONIOX_AUDIO_BATCH_MS values (the relay
   * once, as it forwards every frame whatever the setting). Undefined: the server's own default.
   */
  batchMs: number[] | undefined
  /** `--burst`: instead of the steady state, bursts of these many calls on top of each level's live calls (bench/burst.ts). */
  burst: number[] | undefined
  /** `--burst-spread`: the time a burst's calls arrive within. */
  burstSpreadMs: number
  /** How long each burst call streams. */
  burstCallMs: number
  /** `--compare <checkout>`: another build of the server, measured in the same run as a third target. */
  compare: { bin: string; name: string } | undefined
  /** `--conversations`: instead of the levels, these many conversations against twice as many calls (bench/conversations.ts). */
  conversations: number[] | undefined
}

export interface Figures {
  target: 'relay' | 'server'
  calls: number
  /** The server's SONIOX_AUDIO_BATCH_MS when the bench set it (`--batch-ms`); undefined: not set. */
  batchMs?: number | undefined
  /** The other build's name (`--compare`); undefined: this checkout's. */
  build?: string | undefined
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
  /**
   * Word to webhook: the load generator's write of the audio byte that made an utterance end due
   * -> the receiver gets its transcript.final. Unlike transcriptLatencyMs (stand-in -> receiver) it
   * includes the audio's way in, and so the wait of an audio batch (SONIOX_AUDIO_BATCH_MS).
   */
  wordToWebhookMs: Distribution
  /** The target's connections to the stand-in and to the receiver, as those saw them. */
  links: { soniox: LinkReport; webhook: LinkReport }
  wordsProduced: number
  wordsDelivered: number
  callsFailed: number
  errors: number
  maxLoadLatenessMs: number
  /** How many measurements these figures combine (see combine()). */
  runs: number
  /** The raw latency samples, kept so that repeated runs pool them into one distribution. */
  samples: { audio: number[]; transcript: number[]; wordToWebhook: number[] }
}

const ROOT = repoRoot()

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

/**
 * Word to webhook, for the sampled calls (those with a write log): for each utterance end, the
 * write that carried the audio byte which made it due, to the arrival of its transcript.final.
 */
export function wordToWebhookLatencies(writes: LoadReport['writes'], standIn: StandInReport, receiver: ReceiverReport): number[] {
  const out: number[] = []
  for (const [uuid, log] of Object.entries(writes)) {
    const call = standIn.calls[uuid]
    if (!call) continue
    const received = new Map((receiver.finals[uuid] ?? []).map(([index, , at]) => [index, at]))
    let j = 0
    for (const [index, , dueAtByte] of call.utteranceEnds) {
      while (j < log.length && (log[j]?.[0] ?? 0) < dueAtByte) j++
      const write = log[j]
      if (!write) break
      const at = received.get(index)
      if (at !== undefined) out.push(at - write[1])
    }
  }
  return out
}

async function measure(variant: Variant, calls: number, options: Options, certificates: BenchCertificates | undefined): Promise<Figures> {
  const { target } = variant
  const rig = await startRig(variant, { sampledCalls: options.sampledCalls, tls: options.tls }, certificates)
  const { pid, port } = rig
  try {
    await sleep(1000)
    const idleRss = rssBytes(pid)
    const load = await startRole<{ pid: number }>('load')
    const loadDone = load.request<LoadReport>('run', { port, calls, rampMs: options.rampMs, durationMs: options.durationMs, sampledCalls: options.sampledCalls, phase: options.phase })

    // The window: every call is live (after the ramp and a warm-up) until the first call ends.
    const window = await readWindow(pid, options)
    const { seconds } = window

    const loadReport = await loadDone
    await load.stop()
    const { receiver: receiverReport, standIn: standInReport } = await finalReports(rig, target, loadReport.ok)
    const produced = Object.values(standInReport.calls).reduce((n, c) => n + c.wordsProduced, 0)
    const delivered = Object.values(receiverReport.finals).reduce((n, list) => n + list.reduce((m, [, words]) => m + words, 0), 0)
    const audio = audioLatencies(loadReport.writes, standInReport)
    const transcript = transcriptLatencies(standInReport, receiverReport)
    const wordToWebhook = wordToWebhookLatencies(loadReport.writes, standInReport, receiverReport)
    return {
      target,
      calls,
      ...(target === 'server' && variant.batchMs !== undefined ? { batchMs: variant.batchMs } : {}),
      ...(variant.build ? { build: variant.build.name } : {}),
      cpuPerCallSecond: window.cpuSeconds / (calls * seconds),
      mainThreadCpuPerCallSecond: window.mainThreadCpuSeconds / (calls * seconds),
      wakeupsPerSecond: window.wakeups / seconds,
      rssPerCallKb: (window.rssBytes - idleRss) / calls / 1024,
      audioLatencyMs: distribution(audio),
      transcriptLatencyMs: distribution(transcript),
      wordToWebhookMs: distribution(wordToWebhook),
      links: { soniox: standInReport.link, webhook: receiverReport.link },
      wordsProduced: produced,
      wordsDelivered: delivered,
      callsFailed: loadReport.calls - loadReport.ok,
      errors: rig.errors() + loadReport.failures.length,
      maxLoadLatenessMs: loadReport.maxLatenessMs,
      runs: 1,
      samples: { audio, transcript, wordToWebhook },
    }
  } finally {
    await rig.stop()
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
  const wordToWebhook = runs.flatMap((r) => r.samples.wordToWebhook)
  const sum = (pick: (r: Figures) => number): number => runs.reduce((n, r) => n + pick(r), 0)
  const link = (pick: (r: Figures) => LinkReport): LinkReport => ({
    connections: sum((r) => pick(r).connections),
    tlsConnections: sum((r) => pick(r).tlsConnections),
    cipher: runs.map((r) => pick(r).cipher).find((c) => c !== undefined),
  })
  return {
    target: first.target,
    calls: first.calls,
    ...(first.batchMs !== undefined ? { batchMs: first.batchMs } : {}),
    ...(first.build !== undefined ? { build: first.build } : {}),
    cpuPerCallSecond: median(runs.map((r) => r.cpuPerCallSecond)),
    mainThreadCpuPerCallSecond: median(runs.map((r) => r.mainThreadCpuPerCallSecond)),
    wakeupsPerSecond: median(runs.map((r) => r.wakeupsPerSecond)),
    rssPerCallKb: median(runs.map((r) => r.rssPerCallKb)),
    audioLatencyMs: distribution(audio),
    transcriptLatencyMs: distribution(transcript),
    wordToWebhookMs: distribution(wordToWebhook),
    links: { soniox: link((r) => r.links.soniox), webhook: link((r) => r.links.webhook) },
    ...sumCounts(runs),
    samples: { audio, transcript, wordToWebhook },
  }
}

/** One line per repetition: the same-run ratios, so the spread behind each median is visible. */
function repetitionLines(relayRuns: Figures[], serverRuns: Figures[]): string {
  if (relayRuns.length < 2 || serverRuns.length !== relayRuns.length) return ''
  const cells = relayRuns.map((relay, i) => {
    const server = serverRuns[i] as Figures
    return `${fmt(server.cpuPerCallSecond / relay.cpuPerCallSecond)}x CPU (main thread ${fmt(server.mainThreadCpuPerCallSecond / relay.mainThreadCpuPerCallSecond)}x), transcript p99 ${fmt(server.transcriptLatencyMs.p99, 1)} ms (relay ${fmt(relay.transcriptLatencyMs.p99, 1)}), added audio p99 ${fmt(server.audioLatencyMs.p99 - relay.audioLatencyMs.p99, 2)} ms, added word-to-webhook p99 ${fmt(server.wordToWebhookMs.p99 - relay.wordToWebhookMs.p99, 1)} ms`
  })
  return `Each repetition (server / relay, same run): ${cells.map((c, i) => `#${i + 1}: ${c}`).join('; ')}.`
}


/** "wss (TLSv1.3 TLS_AES_256_GCM_SHA384)" when every connection was TLS, "ws" when none was, else the counts. */
function linkText(link: LinkReport, secure: string, plain: string): string {
  if (link.connections === 0) return 'no connections'
  if (link.tlsConnections === 0) return plain
  const scheme = `${secure}${link.cipher ? ` (${link.cipher})` : ''}`
  return link.tlsConnections === link.connections ? scheme : `${scheme} on ${link.tlsConnections} of ${link.connections} connections`
}

function linksLine(figures: Array<Figures | undefined>): string {
  const present = figures.filter((f): f is Figures => f !== undefined)
  if (present.length === 0) return ''
  return `Links, as the stand-in and the receiver saw them: ${present.map((f) => `${f.target}${f.build ? ` ${f.build}` : ''}${f.batchMs !== undefined ? ` (batch ${f.batchMs} ms)` : ''} → stand-in ${linkText(f.links.soniox, 'wss', 'ws')}, → receiver ${linkText(f.links.webhook, 'https', 'http')}`).join('; ')}.`
}

function serverLabel(server: Figures | undefined): string {
  const build = server?.build === undefined ? '' : `, server build ${server.build}`
  return server?.batchMs === undefined ? build : `${build}, server at SONIOX_AUDIO_BATCH_MS=${server.batchMs}`
}

/** This checkout's server against another build's (`--compare`), both measured in the same run. */
function compareLine(ours: Figures[], theirs: Figures[]): string {
  const a = combine(ours)
  const b = combine(theirs)
  const pairs = ours.map((f, i) => {
    const other = theirs[i]
    return other ? `${fmt(f.cpuPerCallSecond / other.cpuPerCallSecond)}x` : ''
  })
  return `This checkout's server / build ${b.build ?? '?'}: CPU ${fmt(a.cpuPerCallSecond / b.cpuPerCallSecond)}x (main thread ${fmt(a.mainThreadCpuPerCallSecond / b.mainThreadCpuPerCallSecond)}x; runs ${pairs.join(' / ')}), RSS per call ${fmt(a.rssPerCallKb / b.rssPerCallKb)}x, audio p99 ${fmt(a.audioLatencyMs.p99 - b.audioLatencyMs.p99, 3)} ms apart.\n`
}

function table(level: number, relay: Figures | undefined, server: Figures | undefined, repetitions = ''): string {
  const runs = (relay ?? server)?.runs ?? 1
  return [
    `### ${level} concurrent calls${serverLabel(server)}${runs > 1 ? ` (${runs} runs of each target, alternating: median CPU and RSS, latency samples pooled)` : ''}`,
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
    row('word-to-webhook latency p50 ms', relay?.wordToWebhookMs.p50, server?.wordToWebhookMs.p50, 3),
    row('word-to-webhook latency p99 ms', relay?.wordToWebhookMs.p99, server?.wordToWebhookMs.p99, 3),
    row('word-to-webhook latency max ms', relay?.wordToWebhookMs.max, server?.wordToWebhookMs.max, 3),
    ...countRows(relay, server, { failed: 'calls failed or cut short', errors: 'errors (error logs + failed calls)' }),
    '',
    server && relay
      ? `Added audio latency (server p99 - relay p99): ${fmt(server.audioLatencyMs.p99 - relay.audioLatencyMs.p99, 3)} ms; added word-to-webhook latency p50 / p99: ${fmt(server.wordToWebhookMs.p50 - relay.wordToWebhookMs.p50, 3)} / ${fmt(server.wordToWebhookMs.p99 - relay.wordToWebhookMs.p99, 3)} ms. Audio latency samples: ${server.audioLatencyMs.count}; transcript latency samples: ${server.transcriptLatencyMs.count}; word-to-webhook samples: ${server.wordToWebhookMs.count}.`
      : '',
    linksLine([relay, server]),
    repetitions,
    '',
  ].join('\n')
}

/**
 * The SONIOX_AUDIO_BATCH_MS curve at one level: a row per batch value, CPU and latency against the
 * relay's (which forwards every frame whatever the setting). The added word-to-webhook latency is
 * what a batch costs a caller waiting for a final word: the server's p50/p99 less the relay's.
 */
export function curveTable(level: number, relay: Figures | undefined, servers: Figures[]): string {
  const runs = (relay ?? servers[0])?.runs ?? 1
  const cell = (value: number | undefined, digits: number): string => (value === undefined ? '-' : fmt(value, digits))
  const lines = [
    `### ${level} concurrent calls: SONIOX_AUDIO_BATCH_MS curve${runs > 1 ? ` (${runs} runs of each, alternating: median CPU, latency samples pooled)` : ''}`,
    '',
    '| batch ms | CPU ms per call-second | of which main thread | / relay | wake-ups per s | audio p99 ms | word-to-webhook p50 ms | p99 ms | added p50 ms | added p99 ms | words delivered / produced |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  if (relay) {
    lines.push(`| relay (every frame) | ${fmt(relay.cpuPerCallSecond * 1000, 3)} | ${fmt(relay.mainThreadCpuPerCallSecond * 1000, 3)} | 1.00x | ${fmt(relay.wakeupsPerSecond, 0)} | ${fmt(relay.audioLatencyMs.p99, 2)} | ${fmt(relay.wordToWebhookMs.p50, 2)} | ${fmt(relay.wordToWebhookMs.p99, 2)} | | | ${relay.wordsDelivered} / ${relay.wordsProduced} |`)
  }
  for (const s of servers) {
    lines.push(
      `| ${s.batchMs ?? 'default'} | ${fmt(s.cpuPerCallSecond * 1000, 3)} | ${fmt(s.mainThreadCpuPerCallSecond * 1000, 3)} | ${relay ? `${fmt(s.cpuPerCallSecond / relay.cpuPerCallSecond)}x` : '-'} | ${fmt(s.wakeupsPerSecond, 0)} | ${fmt(s.audioLatencyMs.p99, 2)} | ${fmt(s.wordToWebhookMs.p50, 2)} | ${fmt(s.wordToWebhookMs.p99, 2)} | ${cell(relay && s.wordToWebhookMs.p50 - relay.wordToWebhookMs.p50, 2)} | ${cell(relay && s.wordToWebhookMs.p99 - relay.wordToWebhookMs.p99, 2)} | ${s.wordsDelivered} / ${s.wordsProduced} |`,
    )
  }
  lines.push('', 'Each batch value\'s full table follows.', '')
  return lines.join('\n')
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

/** "0,20,60": whole milliseconds, each at least 0, no repeats. */
export function parseBatchMs(value: string): number[] {
  const list = value.split(',').map((v) => v.trim())
  const numbers = list.map(Number)
  const bad = list.find((v, i) => v === '' || !Number.isInteger(numbers[i]) || (numbers[i] as number) < 0)
  if (bad !== undefined) throw new Error(`--batch-ms takes whole milliseconds of at least 0, comma-separated (e.g. 0,20,60,120), not "${value}"`)
  if (new Set(numbers).size !== numbers.length) throw new Error(`--batch-ms lists a value twice: "${value}"`)
  return numbers
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
      tls: { type: 'boolean', default: false },
      'webhook-tls': { type: 'boolean', default: false },
      'batch-ms': { type: 'string' },
      burst: { type: 'string' },
      'burst-spread': { type: 'string', default: '1' },
      compare: { type: 'string' },
      conversations: { type: 'string' },
    },
  })
  const compare = values.compare === undefined ? undefined : compareBuild(String(values.compare))
  const burst = values.burst === undefined ? undefined : String(values.burst).split(',').map((n) => positiveInteger('--burst', n))
  const burstSpreadMs = Number(values['burst-spread']) * 1000
  if (!(burstSpreadMs > 0)) throw new Error(`--burst-spread takes seconds above 0, not "${values['burst-spread']}"`)
  const tls = { soniox: values.tls === true, webhook: values['webhook-tls'] === true }
  const batchMs = values['batch-ms'] === undefined ? undefined : parseBatchMs(String(values['batch-ms']))
  const conversations = values.conversations === undefined ? undefined : String(values.conversations).split(',').map((n) => positiveInteger('--conversations', n))
  if (values.smoke) {
    // The run's shape is fixed; the transport and the batch values still apply, to smoke-test them.
    return { levels: [3], durationMs: 6000, rampMs: 500, warmupMs: 500, sampledCalls: 3, repeat: 1, targets: ['relay', 'server'], phase: 'spread', results: values.results, tls, batchMs, burst, burstSpreadMs, burstCallMs: 2000, compare, conversations }
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
    tls,
    batchMs,
    burst,
    burstSpreadMs,
    burstCallMs: 10_000,
    compare,
    conversations,
  }
}

/** `--compare <checkout>`: its built server, named by its commit (or its folder, outside git). */
function compareBuild(dir: string): { bin: string; name: string } {
  const bin = resolve(dir, 'dist/cli/main.js')
  if (!existsSync(bin)) throw new Error(`--compare: ${bin} is missing; build that checkout first (npm ci && npm run build)`)
  let name = basename(resolve(dir))
  try {
    name = execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    // Not a git checkout: the folder's name says which build it is.
  }
  return { bin, name }
}

function transportLine(options: Options): string {
  const ca = 'a throwaway CA made at the start of the run (bench/lib/tls.ts: ECDSA P-256, leaf for 127.0.0.1), trusted by the targets through NODE_EXTRA_CA_CERTS'
  const soniox = options.tls.soniox ? 'wss:// (TLS)' : 'ws:// (plain TCP)'
  const webhook = options.tls.webhook ? 'https:// (TLS)' : 'http:// (plain TCP)'
  const batch = options.batchMs === undefined ? "the server's default SONIOX_AUDIO_BATCH_MS" : `the server at SONIOX_AUDIO_BATCH_MS = ${options.batchMs.join(', ')} (the relay forwards every frame)`
  return `Transport: targets → Soniox stand-in over ${soniox}, → webhook receiver over ${webhook}${options.tls.soniox || options.tls.webhook ? `; certificates from ${ca}` : ''}. Batching: ${batch}.`
}

/** Runs the benchmark; appends to `results` (default bench/RESULTS.md) unless it is "-". */
export async function main(argv: string[]): Promise<{ figures: Figures[]; bursts: BurstFigures[]; conversations: ShapeFigures[]; markdown: string }> {
  const options = parseOptions(argv)
  const figures: Figures[] = []
  const bursts: BurstFigures[] = []
  const conversations: ShapeFigures[] = []
  const sections: string[] = []
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  const certificates = options.tls.soniox || options.tls.webhook ? makeBenchCertificates() : undefined
  const batches: Array<number | undefined> = options.batchMs ?? [undefined]
  if (options.burst && batches.length > 1) throw new Error('--burst measures the server at one SONIOX_AUDIO_BATCH_MS: give --batch-ms one value')
  if (options.conversations && (options.burst || options.compare || batches.length > 1)) throw new Error('--conversations measures this checkout\'s server at one SONIOX_AUDIO_BATCH_MS: leave out --burst and --compare, and give --batch-ms one value at most')
  if (options.compare && (batches.length > 1 || options.burst)) throw new Error('--compare measures the two builds at one SONIOX_AUDIO_BATCH_MS, in the steady state: leave out --burst and give --batch-ms one value at most')
  // This checkout's server at each batch value, then the other build's (--compare) at the first.
  const serverVariants: Variant[] = [
    ...batches.map((batchMs) => ({ target: 'server' as const, batchMs })),
    ...(options.compare ? [{ target: 'server' as const, batchMs: batches[0], build: options.compare }] : []),
  ]
  try {
    if (options.burst) sections.push(...(await runBursts(options, options.burst, batches[0], certificates, bursts)))
    if (options.conversations) sections.push(...(await runConversations(options.conversations, { ...options, batchMs: batches[0] }, certificates, conversations)))
    for (const level of options.burst || options.conversations ? [] : options.levels) {
      const relayRuns: Figures[] = []
      const serverRuns: Figures[][] = serverVariants.map(() => [])
      for (let r = 1; r <= options.repeat; r++) {
        for (const target of options.targets) {
          // Server variants in a rotated order each repetition, so none always runs first or last.
          const order = target === 'relay' ? [-1] : serverVariants.map((_, i) => (i + r - 1) % serverVariants.length)
          for (const v of order) {
            const variant: Variant = serverVariants[v] ?? { target: 'relay' }
            const { batchMs, build } = variant
            process.stderr.write(`bench: ${level} calls against the ${target}${build ? ` build ${build.name}` : ''}${batchMs !== undefined ? ` at SONIOX_AUDIO_BATCH_MS=${batchMs}` : ''}${options.repeat > 1 ? ` (run ${r} of ${options.repeat})` : ''}...\n`)
            const f = await measure(variant, level, options, certificates)
            if (target === 'relay') relayRuns.push(f)
            else serverRuns[v]?.push(f)
          }
        }
      }
      const relay = relayRuns.length > 0 ? combine(relayRuns) : undefined
      const servers = serverRuns.filter((list) => list.length > 0)
      const serverFigures = servers.map(combine)
      if (relay) figures.push(relay)
      figures.push(...serverFigures)
      if (batches.length > 1) sections.push(curveTable(level, relay, serverFigures))
      if (servers.length === 0) sections.push(table(level, relay, undefined))
      servers.forEach((list, i) => sections.push(table(level, relay, serverFigures[i], repetitionLines(relayRuns, list))))
      const [ours, theirs] = [serverRuns[0] ?? [], serverRuns[batches.length] ?? []]
      if (options.compare && ours.length > 0 && theirs.length > 0) sections.push(compareLine(ours, theirs))
    }
  } finally {
    certificates?.remove()
  }
  const cpus = os.cpus()
  const markdown = [
    `## ${new Date().toISOString()} — audiosocket-soniox ${pkg.version}`,
    '',
    `Machine: ${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}.`,
    options.conversations
      ? conversationsCommandLine(argv, options)
      : options.burst
      ? `Command: \`npm run bench -- ${argv.join(' ')}\`. Each call: fixtures/captures/app-8k-speech.ascap (8 kHz, 20 ms frames) looped, fresh UUID; the live calls start over ${options.rampMs / 1000} s, each at its own phase within the 20 ms frame period; ${options.warmupMs / 1000} s warm-up, 3 s before the burst, then the burst's calls start evenly over ${options.burstSpreadMs / 1000} s and stream ${options.burstCallMs / 1000} s each.`
      : `Command: \`npm run bench -- ${argv.join(' ')}\`. Each call: fixtures/captures/app-8k-speech.ascap (8 kHz, 20 ms frames) looped to ${options.durationMs / 1000} s, fresh UUID, starts spread over ${options.rampMs / 1000} s (${options.phase === 'aligned' ? 'phase-aligned: every call\'s frames in the same millisecond' : 'each call at its own phase within the 20 ms frame period'}); window = after ramp + ${options.warmupMs / 1000} s warm-up until the first call ends.`,
    transportLine(options),
    '',
    ...sections,
  ].join('\n')
  const resultsFile = options.results ?? join(ROOT, 'bench/RESULTS.md')
  if (resultsFile !== '-') appendFileSync(resultsFile, `${markdown}\n`)
  return { figures, bursts, conversations, markdown }
}

/** The burst scenario at each level (live calls) and burst size, relay and server alternating. */
async function runBursts(options: Options, sizes: number[], batchMs: number | undefined, certificates: BenchCertificates | undefined, out: BurstFigures[]): Promise<string[]> {
  const sections: string[] = []
  for (const live of options.levels) {
    for (const burst of sizes) {
      const runs: Record<'relay' | 'server', BurstFigures[]> = { relay: [], server: [] }
      for (let r = 1; r <= options.repeat; r++) {
        for (const target of options.targets) {
          process.stderr.write(`bench: a burst of ${burst} calls on top of ${live} against the ${target}${options.repeat > 1 ? ` (run ${r} of ${options.repeat})` : ''}...\n`)
          const burstOptions = { live, burst, spreadMs: options.burstSpreadMs, burstCallMs: options.burstCallMs, rampMs: options.rampMs, warmupMs: options.warmupMs, sampledCalls: options.sampledCalls, tls: options.tls }
          runs[target].push(await measureBurst({ target, batchMs: target === 'server' ? batchMs : undefined }, burstOptions, certificates))
        }
      }
      const relay = runs.relay.length > 0 ? combineBurst(runs.relay) : undefined
      const server = runs.server.length > 0 ? combineBurst(runs.server) : undefined
      out.push(...[relay, server].filter((f): f is BurstFigures => f !== undefined))
      sections.push(burstTable(relay, server, runs.relay, runs.server))
    }
  }
  return sections
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
