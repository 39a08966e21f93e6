/**
 * Load generator: plays a real Asterisk capture (fixtures/captures/app-8k-speech.ascap) as
 * N concurrent calls at real-time cadence with fresh UUIDs, starts spread evenly over a ramp,
 * each call looped to the requested duration. It uses the project's own replay engine (one
 * shared drift-corrected scheduler), in its own process.
 *
 * For sampled calls it logs every write: the audio payload bytes sent so far on that call and
 * the epoch ms the write went out, so audio latency can be matched against the stand-in's
 * arrival log by byte position.
 */
import { randomUUID } from 'node:crypto'
import { readCaptureFile, type Capture, type CaptureRecord } from '../../src/capture/format.js'
import { planReplay, replayCall, Scheduler, type CallReplayResult, type ReplayPlan } from '../../src/tools/index.js'
import { epochMs, epochOf, repoRoot, serveRole } from '../lib/roles.js'

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
}

const FRAME_MS = 20
/** The golden ratio's fractional part: i * this (mod 1) spreads phases evenly for any call count. */
const PHASE_STEP = 0.6180339887498949

/**
 * The capture's Asterisk-side frames repeated until the call lasts `durationMs`: the UUID first,
 * then the recorded audio reads again and again at their recorded spacing, then a FIN.
 */
function loopCapture(capture: Capture, durationMs: number): Capture {
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
        records.push({ offsetUs, type: 'fin', direction: 'in', data: Buffer.alloc(0) })
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
  const capture = loopCapture(await readCaptureFile(FIXTURE), request.durationMs)
  const plan = planReplay(capture, 'app-8k-speech (looped)')
  const audioAt = audioBytesByStep(plan)
  const scheduler = new Scheduler()
  const writes: Record<string, Array<[number, number]>> = {}
  const started = scheduler.clock.now()
  const results: CallReplayResult[] = []
  const calls: Promise<void>[] = []
  for (let i = 0; i < request.calls; i++) {
    const uuid = randomUUID()
    const log: Array<[number, number]> | undefined = i < request.sampledCalls ? (writes[uuid] = []) : undefined
    const phaseMs = request.phase === 'aligned' ? 0 : ((i * PHASE_STEP) % 1) * FRAME_MS
    const startAt = started + (request.rampMs * i) / request.calls + phaseMs
    calls.push(
      new Promise<void>((resolve) => {
        scheduler.at(startAt, () => {
          void replayCall(plan, {
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
  await Promise.all(calls)
  return {
    calls: results.length,
    ok: results.filter((r) => r.ok).length,
    failures: results.filter((r) => !r.ok).map((r) => r.failure),
    maxLatenessMs: Math.max(...results.map((r) => r.lateness.maxMs)),
    audioBytesPerCall: audioAt[audioAt.length - 1],
    writes,
    finishedAt: epochMs(),
  }
}

serveRole({ pid: process.pid }, { run: (body) => run(body as LoadRequest) })
