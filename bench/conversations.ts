/**
 * The conversation scenario (`npm run bench -- --conversations 250`): what a conversation (a
 * bridged call tapped through ARI: two streams, one per party) costs the server against single
 * calls carrying the same number of streams, measured in the same run, alternating (`--repeat`).
 *
 * Both shapes run against the same server configuration: ARI on, pointed at a fake ARI in the load
 * generator's process (test/support/fake-ari.ts, strict: every request checked against Asterisk's
 * routes), and the HTTP endpoint on. Only the load differs:
 *   calls          N single calls, as the steady-state scenario plays them (bench/run.ts)
 *   conversations  N/2 bridged calls, each tapped by POST /conversations at its slot of the ramp;
 *                  each leg's stream opens when the server has its externalMedia channel made, plays
 *                  the same capture, and closes when the server DELETEs that channel after the call
 *                  is hung up (bench/lib/tapped-calls.ts)
 * Ramp, duration and window are the steady state's, so CPU per stream-second reads the same way.
 *
 * The ARI control traffic happens at set-up and teardown, outside the measurement window, so the
 * window's figures are the streams' cost alone. What set-up and teardown cost is read from the
 * whole run: the CPU from the first start to the last webhook, less the window's rate times the
 * stream-seconds carried, per call or per conversation. A conversation's excess over two calls is
 * the cost of being a conversation (ARI requests and events, conversation.started/ended, the tap's
 * bookkeeping): an estimate from /proc's 10 ms ticks, not a profile.
 */
import { randomBytes } from 'node:crypto'
import { cpuSeconds, rssBytes } from './lib/proc.js'
import { audioLatencies, sumCounts, type LoadReport, type ReceiverReport, type RunCounts } from './lib/reports.js'
import { countRows, fmt, row } from './lib/table.js'
import { finalReports, sleep, startRig } from './lib/rig.js'
import { startRole } from './lib/roles.js'
import { distribution, median, type Distribution } from './lib/stats.js'
import type { AriTraffic } from './lib/tapped-calls.js'
import type { BenchCertificates } from './lib/tls.js'
import { readWindow } from './lib/window.js'

export type LoadShape = 'calls' | 'conversations'

export interface ConversationOptions {
  /** Conversations; the calls measured against them are twice as many (the same streams). */
  conversations: number
  durationMs: number
  rampMs: number
  warmupMs: number
  sampledCalls: number
  tls: { soniox: boolean; webhook: boolean }
  /** The server's SONIOX_AUDIO_BATCH_MS; undefined: its default. */
  batchMs: number | undefined
}

export interface ShapeFigures extends RunCounts {
  shape: LoadShape
  streams: number
  /** Conversations (0 for calls). */
  conversations: number
  batchMs?: number | undefined
  /** CPU seconds (user+sys, all threads) per stream-second, over the window. */
  cpuPerStreamSecond: number
  mainThreadCpuPerStreamSecond: number
  /** Resident memory above idle, per live stream, mid-window. */
  rssPerStreamKb: number
  /** CPU seconds per stream-second over the whole run: set-up and teardown included. */
  lifeCpuPerStreamSecond: number
  /** CPU ms per call (per conversation, for conversations) over the whole run. */
  lifeCpuMsPerUnit: number
  /**
   * CPU ms per call (per conversation) beyond its streaming: the whole run's CPU less the window's
   * rate times the stream-seconds carried, divided by the calls (conversations).
   */
  overheadMsPerUnit: number
  audioLatencyMs: Distribution
  /** POST /conversations to its 201: the tap set up (conversations only). */
  setupMs: Distribution
  /** What the fake ARI saw during the load (the server's connection-time requests left out). */
  ari: AriTraffic
  conversationsEnded: number
  /** How many measurements these figures combine (combineShape). */
  runs: number
  samples: { audio: number[]; setup: number[] }
}

interface ConversationLoadReport extends LoadReport {
  streamMs: number
  ari: AriTraffic
  conversations?: { count: number; ok: number; failures: string[]; setupMs: number[] }
}

/** Time for the last conversation.ended once its legs' call.ended are in (it follows them). */
const CONVERSATION_END_WAIT_MS = 10_000

export async function measureShape(shape: LoadShape, options: ConversationOptions, certificates: BenchCertificates | undefined): Promise<ShapeFigures> {
  const streams = 2 * options.conversations
  const conversations = shape === 'conversations' ? options.conversations : 0
  // The load generator first: the fake ARI it serves must be up for the server to start against.
  const load = await startRole<{ pid: number }>('load')
  try {
    const ari = await load.request<{ url: string; username: string; password: string }>('ari')
    const httpToken = randomBytes(24).toString('hex')
    const rig = await startRig({ target: 'server', batchMs: options.batchMs }, { sampledCalls: options.sampledCalls, tls: options.tls, ari: { ...ari, httpToken } }, certificates)
    const { pid } = rig
    try {
      await sleep(1000)
      const idleRss = rssBytes(pid)
      const life0 = cpuSeconds(pid)
      const loadDone = load.request<ConversationLoadReport>('run', {
        port: rig.port,
        calls: shape === 'calls' ? streams : 0,
        rampMs: options.rampMs,
        durationMs: options.durationMs,
        sampledCalls: options.sampledCalls,
        phase: 'spread',
        ...(shape === 'conversations' ? { conversations: { count: conversations, httpUrl: rig.httpUrl, token: httpToken } } : {}),
      })
      // The steady state's window: every stream live, no ARI traffic in it.
      const window = await readWindow(pid, options)
      const streamSecondsInWindow = streams * window.seconds

      const loadReport = await loadDone
      const reports = await finalReports(rig, 'server', loadReport.ok)
      const { standIn } = reports
      let { receiver } = reports
      const conversationsOk = loadReport.conversations?.ok ?? 0
      const deadline = Date.now() + CONVERSATION_END_WAIT_MS
      while (receiver.conversationsEnded < conversationsOk && Date.now() < deadline) {
        await sleep(200)
        receiver = await rig.receiver.request<ReceiverReport>('report')
      }
      const life1 = cpuSeconds(pid)
      const rate = window.cpuSeconds / streamSecondsInWindow
      const streamSeconds = loadReport.streamMs / 1000
      const audio = audioLatencies(loadReport.writes, standIn)
      const setup = loadReport.conversations?.setupMs ?? []
      return {
        shape,
        streams,
        conversations,
        ...(options.batchMs !== undefined ? { batchMs: options.batchMs } : {}),
        cpuPerStreamSecond: rate,
        mainThreadCpuPerStreamSecond: window.mainThreadCpuSeconds / streamSecondsInWindow,
        rssPerStreamKb: (window.rssBytes - idleRss) / streams / 1024,
        lifeCpuPerStreamSecond: (life1 - life0) / streamSeconds,
        lifeCpuMsPerUnit: ((life1 - life0) * 1000) / (conversations || streams),
        overheadMsPerUnit: (((life1 - life0) - rate * streamSeconds) * 1000) / (conversations || streams),
        audioLatencyMs: distribution(audio),
        setupMs: distribution(setup),
        ari: loadReport.ari,
        conversationsEnded: receiver.conversationsEnded,
        wordsProduced: Object.values(standIn.calls).reduce((n, c) => n + c.wordsProduced, 0),
        wordsDelivered: Object.values(receiver.finals).reduce((n, list) => n + list.reduce((m, [, words]) => m + words, 0), 0),
        callsFailed: loadReport.calls - loadReport.ok,
        errors: rig.errors() + loadReport.failures.length,
        maxLoadLatenessMs: loadReport.maxLatenessMs,
        runs: 1,
        samples: { audio, setup },
      }
    } finally {
      await rig.stop()
    }
  } finally {
    await load.stop()
  }
}

/** ARI traffic of several runs as one: requests and events summed (by route too), violations listed. */
export function sumTraffic(runs: AriTraffic[]): AriTraffic {
  const byRoute: Record<string, number> = {}
  for (const r of runs) for (const [route, n] of Object.entries(r.byRoute)) byRoute[route] = (byRoute[route] ?? 0) + n
  return {
    requests: runs.reduce((n, r) => n + r.requests, 0),
    byRoute,
    events: runs.reduce((n, r) => n + r.events, 0),
    violations: runs.flatMap((r) => r.violations),
  }
}

/** Repeated runs of one shape as one: median CPU, RSS and overhead; samples pooled; counts and ARI traffic summed. */
export function combineShape(runs: ShapeFigures[]): ShapeFigures {
  const first = runs[0]
  if (first === undefined) throw new Error('combineShape() needs at least one run')
  if (runs.length === 1) return first
  const audio = runs.flatMap((r) => r.samples.audio)
  const setup = runs.flatMap((r) => r.samples.setup)
  return {
    shape: first.shape,
    streams: first.streams,
    conversations: first.conversations,
    ...(first.batchMs !== undefined ? { batchMs: first.batchMs } : {}),
    cpuPerStreamSecond: median(runs.map((r) => r.cpuPerStreamSecond)),
    mainThreadCpuPerStreamSecond: median(runs.map((r) => r.mainThreadCpuPerStreamSecond)),
    rssPerStreamKb: median(runs.map((r) => r.rssPerStreamKb)),
    lifeCpuPerStreamSecond: median(runs.map((r) => r.lifeCpuPerStreamSecond)),
    lifeCpuMsPerUnit: median(runs.map((r) => r.lifeCpuMsPerUnit)),
    overheadMsPerUnit: median(runs.map((r) => r.overheadMsPerUnit)),
    audioLatencyMs: distribution(audio),
    setupMs: distribution(setup),
    ari: sumTraffic(runs.map((r) => r.ari)),
    conversationsEnded: runs.reduce((n, r) => n + r.conversationsEnded, 0),
    ...sumCounts(runs),
    samples: { audio, setup },
  }
}

/** A conversation against a call, from one run (or combined runs) of each shape. */
export interface ConversationCost {
  /** CPU per conversation-second / CPU per call-second, over the window (the target: at most 2.0). */
  perSecond: number
  /** The same over whole lives: set-up and teardown included. */
  perSecondWholeLife: number
  /** CPU ms a conversation costs beyond its streaming, less two calls' (its ARI and conversation work). */
  controlMsPerConversation: number
  /** That, as a share of a conversation's whole-life CPU (at the run's duration). */
  controlShare: number
}

export function conversationCost(calls: ShapeFigures, conversations: ShapeFigures): ConversationCost {
  const controlMsPerConversation = conversations.overheadMsPerUnit - 2 * calls.overheadMsPerUnit
  return {
    perSecond: (2 * conversations.cpuPerStreamSecond) / calls.cpuPerStreamSecond,
    perSecondWholeLife: (2 * conversations.lifeCpuPerStreamSecond) / calls.lifeCpuPerStreamSecond,
    controlMsPerConversation,
    controlShare: controlMsPerConversation / conversations.lifeCpuMsPerUnit,
  }
}


/** Requests per conversation by route, busiest first: "POST /channels/{id}/snoop 2.00, ...". */
function routesPerConversation(traffic: AriTraffic, conversations: number): string {
  return Object.entries(traffic.byRoute)
    .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
    .map(([route, n]) => `${route} ${fmt(n / conversations)}`)
    .join(', ')
}

export function conversationTable(calls: ShapeFigures | undefined, conv: ShapeFigures | undefined, callRuns: ShapeFigures[], convRuns: ShapeFigures[]): string {
  const any = calls ?? conv
  if (!any) return ''
  const conversations = conv?.conversations ?? any.streams / 2
  const totalConversations = conversations * (conv?.runs ?? 1)
  const cost = calls && conv ? conversationCost(calls, conv) : undefined
  const violations = [...(calls?.ari.violations ?? []), ...(conv?.ari.violations ?? [])]
  const repetitions =
    callRuns.length > 1 && convRuns.length === callRuns.length
      ? `Each repetition (same run): ${callRuns
          .map((c, i) => {
            const k = conversationCost(c, convRuns[i] as ShapeFigures)
            return `#${i + 1}: ${fmt(k.perSecond)}x (whole life ${fmt(k.perSecondWholeLife)}x, control ${fmt(k.controlMsPerConversation, 1)} ms)`
          })
          .join('; ')}.`
      : ''
  return [
    `### ${any.streams} streams: ${any.streams} calls against ${conversations} conversations${any.batchMs !== undefined ? `, server at SONIOX_AUDIO_BATCH_MS=${any.batchMs}` : ''}${any.runs > 1 ? ` (${any.runs} runs of each, alternating: median CPU and RSS, samples pooled, counts summed)` : ''}`,
    '',
    'The same server (ARI on, against the bench\'s fake ARI; HTTP endpoint on) under the same number of streams: single calls, or bridged calls tapped through POST /conversations (two streams each). "Per stream-second": over the window, every stream live, no ARI traffic in it.',
    '',
    `| figure | ${any.streams} calls | ${conversations} conversations | conversations / calls |`,
    '|---|---|---|---|',
    row('CPU ms per stream-second', calls && calls.cpuPerStreamSecond * 1000, conv && conv.cpuPerStreamSecond * 1000, 3),
    row('of which main thread (event loop)', calls && calls.mainThreadCpuPerStreamSecond * 1000, conv && conv.mainThreadCpuPerStreamSecond * 1000, 3),
    row('CPU ms per call-second / per conversation-second', calls && calls.cpuPerStreamSecond * 1000, conv && conv.cpuPerStreamSecond * 2000, 3),
    row('CPU ms per stream-second, whole lives (set-up and teardown in)', calls && calls.lifeCpuPerStreamSecond * 1000, conv && conv.lifeCpuPerStreamSecond * 1000, 3),
    row('CPU ms per call / per conversation beyond its streaming', calls?.overheadMsPerUnit, conv?.overheadMsPerUnit, 1),
    row('RSS KB per stream (mid-window, above idle)', calls?.rssPerStreamKb, conv?.rssPerStreamKb, 1),
    row('audio latency p50 ms', calls?.audioLatencyMs.p50, conv?.audioLatencyMs.p50, 3),
    row('audio latency p99 ms', calls?.audioLatencyMs.p99, conv?.audioLatencyMs.p99, 3),
    row('POST /conversations -> 201 (tap set up) p50 ms', undefined, conv?.setupMs.p50, 1, false),
    row('POST /conversations -> 201 p99 ms', undefined, conv?.setupMs.p99, 1, false),
    row('ARI requests per conversation (total over the run for calls)', calls?.ari.requests, conv && conv.ari.requests / totalConversations, 2, false),
    row('ARI events per conversation (total over the run for calls)', calls?.ari.events, conv && conv.ari.events / totalConversations, 2, false),
    row('fake-ARI violations', calls?.ari.violations.length, conv?.ari.violations.length, 0, false),
    row('conversation.ended received', undefined, conv?.conversationsEnded, 0, false),
    ...countRows(calls, conv, { failed: 'streams failed or cut short', errors: 'errors (error logs + failed calls or taps)' }),
    '',
    cost
      ? `A conversation costs ${fmt(cost.perSecond)}x a call per second (target: at most 2.0x, ${cost.perSecond <= 2 ? 'met' : 'missed'}); over whole lives, set-up and teardown included, ${fmt(cost.perSecondWholeLife)}x.`
      : '',
    cost
      ? `Being a conversation (ARI requests and events, conversation.started/ended, the tap's bookkeeping) costs ${fmt(cost.controlMsPerConversation, 1)} ms of CPU beyond two calls' set-up and teardown, ${fmt(cost.controlShare * 100, 1)}% of a conversation's CPU at this duration: an estimate (the whole run's CPU less the window's rate times the stream-seconds, /proc's 10 ms ticks), not a profile.`
      : '',
    conv && totalConversations > 0 ? `ARI requests per conversation, by route: ${routesPerConversation(conv.ari, totalConversations)}.` : '',
    violations.length > 0 ? `Fake-ARI violations: ${violations.slice(0, 5).join('; ')}${violations.length > 5 ? `; and ${violations.length - 5} more` : ''}.` : '',
    repetitions,
    '',
  ].join('\n')
}

/** The scenario: calls and conversations alternating, `repeat` times each, per conversation count. */
export async function runConversations(counts: number[], options: Omit<ConversationOptions, 'conversations'> & { repeat: number }, certificates: BenchCertificates | undefined, out: ShapeFigures[]): Promise<string[]> {
  const sections: string[] = []
  for (const count of counts) {
    const runs: Record<LoadShape, ShapeFigures[]> = { calls: [], conversations: [] }
    for (let r = 1; r <= options.repeat; r++) {
      for (const shape of ['calls', 'conversations'] as const) {
        process.stderr.write(`bench: ${shape === 'calls' ? `${2 * count} calls` : `${count} conversations (${2 * count} streams)`} against the server${options.repeat > 1 ? ` (run ${r} of ${options.repeat})` : ''}...\n`)
        runs[shape].push(await measureShape(shape, { ...options, conversations: count }, certificates))
      }
    }
    const calls = combineShape(runs.calls)
    const conv = combineShape(runs.conversations)
    out.push(calls, conv)
    sections.push(conversationTable(calls, conv, runs.calls, runs.conversations))
  }
  return sections
}

/** The results' "Command:" line for this scenario: what each shape plays. */
export function conversationsCommandLine(argv: string[], options: { durationMs: number; rampMs: number; warmupMs: number }): string {
  return `Command: \`npm run bench -- ${argv.join(' ')}\`. Each stream: fixtures/captures/app-8k-speech.ascap (8 kHz, 20 ms frames) looped to ${options.durationMs / 1000} s. Calls start spread over ${options.rampMs / 1000} s, each at its own phase; each conversation's tap is requested over the same ramp (a bridged call in the fake ARI, POST /conversations as a dialplan CURL() would), its two legs' streams open as the server has their externalMedia channels made, and the call is hung up once both legs have played their audio (the streams close when the server DELETEs those channels). Window = after ramp + ${options.warmupMs / 1000} s warm-up until the first stream ends.`
}
