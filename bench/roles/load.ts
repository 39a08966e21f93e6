/**
 * Load generator: plays a real Asterisk capture (fixtures/captures/app-8k-speech.ascap) as
 * N concurrent calls at real-time cadence with fresh UUIDs, starts spread evenly over a ramp,
 * each call looped to the requested duration. It uses the project's own replay engine (one
 * shared drift-corrected scheduler), in its own process.
 *
 * For sampled calls it logs every write: the audio payload bytes sent so far on that call and
 * the epoch ms the write went out, so audio latency can be matched against the stand-in's
 * arrival log by byte position.
 *
 * Conversations (bench/conversations.ts): the `ari` request starts a fake ARI in this process, for
 * the server to be started against; a `run` with `conversations` then plays Asterisk's part of N
 * tapped calls (bench/lib/tapped-calls.ts), each leg's stream played like a call.
 */
import { randomUUID } from 'node:crypto'
import { readCaptureFile, type Capture, type CaptureRecord } from '../../src/capture/format.js'
import { planReplay, replayCall, Scheduler, type CallReplayResult, type ReplayPlan } from '../../src/tools/index.js'
import { startFakeAri, type FakeAri } from '../../test/support/fake-ari.js'
import { epochMs, epochOf, repoRoot, serveRole } from '../lib/roles.js'
import { ariMark, ariTraffic, serverReadyToTap, TappedCalls, type LegStream, type TappedCallResult, type TappedCallsOptions } from '../lib/tapped-calls.js'

const FIXTURE = `${repoRoot()}/fixtures/captures/app-8k-speech.ascap`

interface LoadRequest {
  port: number
  calls: number
  rampMs: number
  durationMs: number
  sampledCalls: number
  /**
   * 'spread' (default): each call's frames keep their own phase within the 20 ms frame period, as
   * independent Asterisk channels do. 'aligned': starts exactly ramp/calls apart, which for the
   * default ramps is a multiple of 20 ms, so every call's frame (and utterance end) lands in the
   * same millisecond: the worst-case burst, kept to reproduce the earlier runs.
   */
  phase?: 'spread' | 'aligned'
  /**
   * A burst (bench/burst.ts): `calls` more calls starting within `spreadMs`, `atMs` after the first
   * call starts, each `durationMs` long, none of them sampled.
   */
  burst?: { calls: number; atMs: number; spreadMs: number; durationMs: number }
  /** Epoch ms (bench/lib/roles.ts epochMs) at which the first call starts; unset: as soon as planned. */
  startAt?: number
  /**
   * Instead of `calls` (then 0): `count` bridged calls tapped through the server's POST
   * /conversations (its HTTP endpoint and HTTP_TOKEN), started evenly over the ramp, two streams
   * each, each stream `durationMs` of audio; the first `sampledCalls` streams are sampled.
   */
  conversations?: { count: number; httpUrl: string; token: string }
}

/** The fake ARI this process serves once asked (`ari`): the server under test is started against it. */
let ari: FakeAri | undefined

const FRAME_MS = 20
/** The golden ratio's fractional part: i * this (mod 1) spreads phases evenly for any call count. */
const PHASE_STEP = 0.6180339887498949

/**
 * The capture's Asterisk-side frames repeated until the call lasts `durationMs`: the UUID first,
 * then the recorded audio reads again and again at their recorded spacing, then a FIN (unless
 * `fin` is false: a tap's stream, which Asterisk closes only when its channel goes).
 */
function loopCapture(capture: Capture, durationMs: number, fin = true): Capture {
  const inbound = capture.records.filter((r) => r.direction === 'in' && r.type === 'data')
  const [uuid, ...audio] = inbound
  if (!uuid || audio.length === 0) throw new Error('the capture has no audio to loop')
  const first = (audio[0] as CaptureRecord).offsetUs
  const last = (audio[audio.length - 1] as CaptureRecord).offsetUs
  const loopUs = last - first + 20_000
  const records: CaptureRecord[] = [uuid]
  for (let k = 0; ; k++) {
    for (const r of audio) {
      const offsetUs = r.offsetUs + k * loopUs
      if (offsetUs > durationMs * 1000) {
        if (fin) records.push({ offsetUs, type: 'fin', direction: 'in', data: Buffer.alloc(0) })
        return { header: { ...capture.header, mode: 'synthetic' }, records, endUs: offsetUs }
      }
      records.push({ ...r, offsetUs })
    }
  }
}

/** Audio payload bytes sent through the end of each step of the plan. */
function audioBytesByStep(plan: ReplayPlan): number[] {
  let total = 0
  return plan.steps.map((step) => {
    // Each recorded read is one whole frame: kind byte, 2-byte length, payload.
    if (step.type === 'data' && step.bytes.length >= 3 && (step.bytes[0] as number) >= 0x10 && (step.bytes[0] as number) <= 0x18) total += step.bytes.length - 3
    return total
  })
}

async function run(request: LoadRequest): Promise<unknown> {
  const recording = await readCaptureFile(FIXTURE)
  const plan = planReplay(loopCapture(recording, request.durationMs), 'app-8k-speech (looped)')
  const audioAt = audioBytesByStep(plan)
  // Before the clock starts: a tap leg's plan, and the server's events socket up (taps are refused before).
  const legPlan = request.conversations ? await prepareConversations(request, recording) : undefined
  // The ARI traffic of this run: the server's requests at connection time are not the load's.
  const mark = ari && ariMark(ari)
  const scheduler = new Scheduler()
  const writes: Record<string, Array<[number, number]>> = {}
  const now = scheduler.clock.now()
  const started = request.startAt === undefined ? now : Math.max(now, now + request.startAt - epochOf(now))
  const results: CallReplayResult[] = []
  const calls: Promise<void>[] = []
  const startCall = (callPlan: ReplayPlan, startAt: number, log: Array<[number, number]> | undefined): void => {
    const uuid = randomUUID()
    if (log) writes[uuid] = log
    calls.push(
      new Promise<void>((resolve) => {
        scheduler.at(startAt, () => {
          void replayCall(callPlan, {
            host: '127.0.0.1',
            port: request.port,
            uuid,
            scheduler,
            lingerMs: 30_000,
            ...(log ? { onSend: (w: { index: number; atMs: number }) => void log.push([audioAt[w.index] ?? 0, epochOf(w.atMs)]) } : {}),
          }).then((r) => {
            results.push(r)
            resolve()
          })
        })
      }),
    )
  }
  for (let i = 0; i < request.calls; i++) {
    const phaseMs = request.phase === 'aligned' ? 0 : ((i * PHASE_STEP) % 1) * FRAME_MS
    startCall(plan, started + (request.rampMs * i) / request.calls + phaseMs, i < request.sampledCalls ? [] : undefined)
  }
  const conversationsDone = legPlan ? startConversations(request, legPlan, scheduler, started, writes, results) : undefined
  const burst = request.burst
  if (burst) {
    const burstPlan = planReplay(loopCapture(recording, burst.durationMs), 'app-8k-speech (burst)')
    for (let i = 0; i < burst.calls; i++) startCall(burstPlan, started + burst.atMs + (burst.spreadMs * i) / burst.calls, undefined)
  }
  await Promise.all(calls)
  const conversations = conversationsDone && (await conversationsDone())
  return {
    ...(conversations ? { conversations } : {}),
    ...(ari && mark ? { ari: ariTraffic(ari, mark) } : {}),
    // When the burst's first and last calls were due (epoch ms), to cut the latency samples by.
    ...(burst ? { burst: { firstAt: epochOf(started + burst.atMs), lastAt: epochOf(started + burst.atMs + (burst.spreadMs * (burst.calls - 1)) / burst.calls) } } : {}),
    // A tap's stream counts as a call; one that never came (a refused tap) or closed before its
    // audio was all sent (hung up early) failed.
    calls: conversations ? 2 * conversations.count : results.length,
    ok: results.filter((r) => r.ok && (conversations === undefined || r.completed)).length,
    failures: conversations ? conversations.failures : results.filter((r) => !r.ok).map((r) => r.failure),
    maxLatenessMs: Math.max(...results.map((r) => r.lateness.maxMs)),
    // Connect to close, summed over the streams: the stream-seconds the server carried.
    streamMs: results.reduce((n, r) => n + r.durationMs, 0),
    audioBytesPerCall: audioAt[audioAt.length - 1],
    writes,
    finishedAt: epochMs(),
  }
}

/** Before the run's clock starts: the server ready to tap, and a tap leg's plan (the capture looped, without an ending). */
async function prepareConversations(request: LoadRequest, recording: Capture): Promise<ReplayPlan> {
  if (ari === undefined) throw new Error('conversations need the fake ARI: send `ari` before starting the server')
  await serverReadyToTap((request.conversations as NonNullable<LoadRequest['conversations']>).httpUrl)
  return planReplay(loopCapture(recording, request.durationMs, false), 'app-8k-speech (tap leg)')
}

/**
 * Starts the conversations of a `run`: call i's tap is requested at `started + ramp * i / count`;
 * each externalMedia channel the server has made gets its stream, played as a call's, sampled for
 * the first `sampledCalls` streams. The function returned resolves, once every call is over and
 * the server's ARI teardown with it, with the calls' count, how many went well, the failures and
 * each tap's set-up time.
 */
function startConversations(request: LoadRequest, plan: ReplayPlan, scheduler: Scheduler, started: number, writes: Record<string, Array<[number, number]>>, results: CallReplayResult[]) {
  const { count, httpUrl, token } = request.conversations as NonNullable<LoadRequest['conversations']>
  const audioAt = audioBytesByStep(plan)
  const lastWrite = plan.steps.filter((step) => step.type === 'data').length - 1
  let opened = 0
  const openStream = ({ uuid, host, port, hungUp }: Parameters<TappedCallsOptions['openStream']>[0]): LegStream => {
    const log: Array<[number, number]> | undefined = opened++ < request.sampledCalls ? [] : undefined
    if (log) writes[uuid] = log
    let audioDone!: () => void
    const done = new Promise<void>((resolve) => (audioDone = resolve))
    const closed = replayCall(plan, {
      host,
      port,
      uuid,
      scheduler,
      lingerMs: 30_000,
      holdUntil: hungUp,
      onSend: (w) => {
        log?.push([audioAt[w.index] ?? 0, epochOf(w.atMs)])
        if (w.index === lastWrite) audioDone()
      },
    }).then((r) => {
      results.push(r)
      audioDone()
      return r
    })
    return { audioDone: done, closed }
  }
  const tapped = new TappedCalls({ ari: ari as FakeAri, httpUrl, token, openStream })
  const calls: Array<Promise<TappedCallResult>> = []
  const due: Array<Promise<void>> = []
  for (let i = 0; i < count; i++) {
    due.push(new Promise((resolve) => scheduler.at(started + (request.rampMs * i) / count, () => resolve(void calls.push(tapped.run(i))))))
  }
  return async () => {
    await Promise.all(due)
    const outcomes = await Promise.all(calls)
    await tapped.streamResults()
    await tapped.quiet()
    return {
      count,
      ok: outcomes.filter((o) => o.ok).length,
      failures: outcomes.flatMap((o) => (o.failure === undefined ? [] : [o.failure])),
      setupMs: outcomes.flatMap((o) => (o.setupMs === undefined ? [] : [o.setupMs])),
    }
  }
}

serveRole(
  { pid: process.pid },
  {
    run: (body) => run(body as LoadRequest),
    // The fake ARI, for the server to be started against: its connection (url, username, password).
    ari: async () => (ari ??= await startFakeAri()).connection,
  },
)
