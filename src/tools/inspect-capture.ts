/**
 * `audiosocket-soniox inspect`: what a capture holds, as an admin debugging a call needs it:
 * the call's UUID and length, frames per kind and size, sample rate, DTMF digits with times, gaps,
 * the cadence of the audio, how TCP chunked it, how the call ended, and every protocol violation
 * with its offset, checked against what Asterisk really accepts (see the protocol reference).
 */
import { Kind, sampleRateOfKind } from '../audiosocket/index.js'
import { directionStream, offsetTimeIndex, readIndexAt, type Capture, type CaptureHeader, type Direction } from '../capture/format.js'
import { hexKind, kindName } from './kind-names.js'
import { walkFrames, type WalkedFrame } from './walk-frames.js'

/** A pause in the audio longer than this is listed as a gap (two 20 ms frames). */
export const GAP_THRESHOLD_MS = 40
/** Asterisk (20.15+) gives the rest of a split message this long before it fails the call. */
const ASTERISK_PAYLOAD_WAIT_MS = 5

export interface Violation {
  direction: Direction
  /** Stream offset (bytes from the start of that direction) of the frame concerned. */
  offset: number
  atMs: number
  code: string
  severity: 'error' | 'warning'
  message: string
}

export interface FrameRow {
  atMs: number
  direction: Direction
  offset: number
  kind: number
  length: number
  detail: string
}

export interface CadenceStats {
  /** Intervals between consecutive audio frames, gaps over the threshold excluded. */
  intervals: number
  meanMs: number
  p50Ms: number
  p95Ms: number
  p99Ms: number
  minMs: number
  maxMs: number
  stddevMs: number
}

/** The audio of one kind in a direction. */
export interface AudioKindReport {
  kind: number
  sampleRate: number
  frames: number
  bytes: number
  /** Duration at this kind's own rate. */
  ms: number
  firstAtMs: number
}

export interface DirectionReport {
  bytes: number
  /** Socket reads (or writes) that carried the bytes. */
  reads: number
  frames: number
  byKind: Array<{ kind: number; name: string; count: number }>
  audio:
    | {
        frames: number
        bytes: number
        /** Duration: each frame at its own kind's rate (the sum of `kinds`). */
        ms: number
        /** Rate of the first audio frame; when the direction mixes kinds, `kinds` has each one. */
        sampleRate: number
        /**
         * One entry per audio kind, in order of first appearance. More than one outbound when the
         * server sent 0x10 silence before it knew the call's rate and the call's kind after it.
         */
        kinds: AudioKindReport[]
        sizes: Array<{ length: number; count: number }>
        firstAtMs: number
        lastAtMs: number
      }
    | undefined
  dtmf: Array<{ digit: string; atMs: number; offset: number }>
  gaps: Array<{ atMs: number; gapMs: number }>
  cadence: CadenceStats | undefined
  /** Most frames one read carried, and how many frames arrived over more than one read. */
  chunking: { maxFramesPerRead: number; splitFrames: number }
  /** When this side sent FIN. */
  finAtMs: number | undefined
  violations: Violation[]
}

export interface CaptureReport {
  header: CaptureHeader
  uuid: string | undefined
  durationMs: number
  inbound: DirectionReport
  outbound: DirectionReport
  ending: { by: 'asterisk' | 'server' | 'reset' | 'unknown'; atMs: number | undefined; serverHangupAtMs: number | undefined }
  truncated: string | undefined
  frames: FrameRow[] | undefined
}

export interface InspectOptions {
  /** Rate of 0x10 audio (16000 for Asterisk before 20.17 dialled with c(slin16)). Default 8000. */
  slinSampleRate?: number
  /** Also list every frame. */
  frames?: boolean
}

const ms = (us: number): number => Math.round(us) / 1000

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index] as number
}

function round(v: number, digits = 3): number {
  const f = 10 ** digits
  return Math.round(v * f) / f
}

export function inspectCapture(capture: Capture, options: InspectOptions = {}): CaptureReport {
  const rows: FrameRow[] | undefined = options.frames ? [] : undefined
  const inbound = inspectDirection(capture, 'in', options, rows)
  const outbound = inspectDirection(capture, 'out', options, rows)
  rows?.sort((a, b) => a.atMs - b.atMs || (a.direction === b.direction ? a.offset - b.offset : a.direction === 'in' ? -1 : 1))

  const inStream = directionStream(capture, 'in')
  const resetUs = inStream.resetUs
  const candidates: Array<{ by: CaptureReport['ending']['by']; atMs: number }> = []
  if (inbound.finAtMs !== undefined) candidates.push({ by: 'asterisk', atMs: inbound.finAtMs })
  if (outbound.finAtMs !== undefined) candidates.push({ by: 'server', atMs: outbound.finAtMs })
  if (resetUs !== undefined) candidates.push({ by: 'reset', atMs: ms(resetUs) })
  candidates.sort((a, b) => a.atMs - b.atMs)
  const serverHangup = outbound.byKind.find((k) => k.kind === Kind.Hangup) ? findFirst(capture, 'out', Kind.Hangup) : undefined

  const uuidFrame = walkFrames(inStream.bytes.subarray(0, 19)).frames[0]
  return {
    header: capture.header,
    uuid: uuidFrame?.frame?.type === 'uuid' && uuidFrame.offset === 0 ? uuidFrame.frame.uuid : undefined,
    durationMs: ms(capture.endUs),
    inbound,
    outbound,
    ending: { by: candidates[0]?.by ?? 'unknown', atMs: candidates[0]?.atMs, serverHangupAtMs: serverHangup },
    truncated: capture.truncated ? `cut off at byte ${capture.truncated.atByte}: ${capture.truncated.reason}` : undefined,
    frames: rows,
  }
}

function findFirst(capture: Capture, direction: Direction, kind: number): number | undefined {
  const stream = directionStream(capture, direction)
  const frame = walkFrames(stream.bytes).frames.find((f) => f.kind === kind)
  if (frame === undefined) return undefined
  return ms(offsetTimeIndex(stream.reads)(frame.offset + 2 + frame.length))
}

function inspectDirection(capture: Capture, direction: Direction, options: InspectOptions, rows: FrameRow[] | undefined): DirectionReport {
  const stream = directionStream(capture, direction)
  const timeAt = offsetTimeIndex(stream.reads)
  const walk = walkFrames(stream.bytes)
  const violations: Violation[] = []
  const byKind = new Map<number, number>()
  const sizes = new Map<number, number>()
  const dtmf: DirectionReport['dtmf'] = []
  const audioTimes: number[] = []
  /** Audio per kind, in order of first appearance (a Map keeps insertion order). */
  const audioKinds = new Map<number, { sampleRate: number; frames: number; bytes: number; firstAtMs: number }>()
  /** The latest audio frame's kind and rate, to report each change of rate once. */
  let previousAudio: { kind: number; rate: number } | undefined
  let uuidSeen = false
  let hangupAt: number | undefined
  let splitFrames = 0

  const violation = (f: { offset: number }, atMs: number, code: string, severity: Violation['severity'], message: string): void => {
    violations.push({ direction, offset: f.offset, atMs, code, severity, message })
  }

  // Which read carried each frame's first and last byte: for split frames and frames per read.
  const readIndex = (offset: number): number => readIndexAt(stream.reads, offset)
  const framesPerRead = new Map<number, number>()

  walk.frames.forEach((f: WalkedFrame, index) => {
    const lastByte = f.offset + 2 + f.length
    const atMs = ms(timeAt(lastByte))
    byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1)
    const firstRead = readIndex(f.offset)
    const lastRead = readIndex(lastByte)
    framesPerRead.set(lastRead, (framesPerRead.get(lastRead) ?? 0) + 1)
    if (lastRead !== firstRead) {
      splitFrames++
      const waitMs = ms(timeAt(lastByte) - timeAt(f.offset))
      if (direction === 'out' && waitMs > ASTERISK_PAYLOAD_WAIT_MS) {
        violation(f, atMs, 'split-write', 'error', `kind ${hexKind(f.kind)} frame written in pieces ${waitMs} ms apart: Asterisk waits at most ${ASTERISK_PAYLOAD_WAIT_MS} ms for the rest of a frame`)
      }
    }
    let detail = ''
    const rate = f.kind === Kind.Slin8 ? (options.slinSampleRate ?? 8000) : sampleRateOfKind(f.kind)

    if (f.error !== undefined) {
      const code = f.error.code === 'ERR_AUDIOSOCKET_BAD_UUID' ? 'bad-uuid' : 'bad-dtmf'
      violation(f, atMs, code, 'error', f.error.message)
      detail = f.error.message
    }
    if (direction === 'in' && index === 0 && f.kind !== Kind.Uuid) {
      violation(f, atMs, 'first-frame', 'error', `the first frame is kind ${hexKind(f.kind)} (${kindName(f.kind)}), not the UUID frame: not an AudioSocket stream from Asterisk`)
    }
    if (direction === 'out' && hangupAt !== undefined) {
      violation(f, atMs, 'after-hangup', 'warning', `kind ${hexKind(f.kind)} frame sent after the hangup frame (Asterisk stops reading at the hangup)`)
    }

    if (rate !== undefined) {
      if (f.length === 0) {
        violation(f, atMs, 'empty-audio', direction === 'out' ? 'error' : 'warning',
          direction === 'out' ? 'zero-length audio frame: Asterisk 20.14+ ends the call on it' : 'zero-length audio frame (Asterisk never sends one)')
      } else if (f.length % 2 === 1) {
        violation(f, atMs, 'odd-audio', 'warning', `audio frame of ${f.length} bytes: odd, so not whole 16-bit samples`)
      }
      if (direction === 'in' && previousAudio !== undefined && rate !== previousAudio.rate) {
        violation(f, atMs, 'rate-change', 'error', `audio kind ${hexKind(f.kind)} (${rate} Hz) after ${hexKind(previousAudio.kind)} (${previousAudio.rate} Hz) audio`)
      }
      previousAudio = { kind: f.kind, rate }
      const ofKind = audioKinds.get(f.kind) ?? { sampleRate: rate, frames: 0, bytes: 0, firstAtMs: atMs }
      ofKind.frames++
      ofKind.bytes += f.length
      audioKinds.set(f.kind, ofKind)
      audioTimes.push(timeAt(lastByte))
      sizes.set(f.length, (sizes.get(f.length) ?? 0) + 1)
      if (!detail) detail = `${round((f.length / 2 / rate) * 1000, 2)} ms at ${rate} Hz`
    } else if (f.kind === Kind.Uuid) {
      if (f.frame?.type === 'uuid') {
        detail = f.frame.uuid
        if (direction === 'in' && uuidSeen) violation(f, atMs, 'duplicate-uuid', 'error', `a second UUID frame (${f.frame.uuid})`)
      }
      if (direction === 'in') uuidSeen = true
      if (direction === 'out') violation(f, atMs, 'unexpected-kind', 'error', 'UUID frame sent to Asterisk: Asterisk 20.14+ ends the call on any kind but audio and hangup')
    } else if (f.kind === Kind.Dtmf) {
      if (f.frame?.type === 'dtmf') {
        detail = `digit ${f.frame.digit}`
        dtmf.push({ digit: f.frame.digit, atMs, offset: f.offset })
      }
      if (direction === 'out') violation(f, atMs, 'unexpected-kind', 'error', 'DTMF frame sent to Asterisk: Asterisk 20.14+ ends the call on it (DTMF cannot be injected this way)')
    } else if (f.kind === Kind.Hangup) {
      if (direction === 'in') violation(f, atMs, 'unexpected-kind', 'error', 'hangup frame from the Asterisk side: Asterisk never sends one (framing out of sync, or not Asterisk)')
      hangupAt ??= atMs
      detail = 'hangup'
    } else if (f.kind === Kind.Error) {
      violation(f, atMs, 'unexpected-kind', 'error',
        direction === 'in' ? 'error frame (0xff) from the Asterisk side: Asterisk never sends one (framing out of sync, or not Asterisk)' : 'error frame (0xff) sent to Asterisk: Asterisk 20.14+ ends the call on it')
    } else {
      violation(f, atMs, 'unknown-kind', direction === 'out' ? 'error' : 'warning',
        direction === 'out' ? `kind ${hexKind(f.kind)} sent to Asterisk: Asterisk 20.14+ ends the call on any kind but audio and hangup` : `unknown kind ${hexKind(f.kind)} (${f.length} bytes), skipped by length`)
    }
    rows?.push({ atMs, direction, offset: f.offset, kind: f.kind, length: f.length, detail })
  })

  if (walk.trailing !== undefined) {
    const t = walk.trailing
    violations.push({
      direction,
      offset: t.offset,
      atMs: ms(timeAt(stream.bytes.length - 1)),
      code: 'truncated-frame',
      severity: 'error',
      message: `the stream ends inside a frame: ${t.present} bytes present, ${t.missing} more expected`,
    })
  }

  // Gaps and cadence over the audio frames' arrival times.
  const gaps: DirectionReport['gaps'] = []
  const intervals: number[] = []
  for (let i = 1; i < audioTimes.length; i++) {
    const gapMs = ((audioTimes[i] as number) - (audioTimes[i - 1] as number)) / 1000
    if (gapMs > GAP_THRESHOLD_MS) gaps.push({ atMs: ms(audioTimes[i] as number), gapMs: round(gapMs, 1) })
    else intervals.push(gapMs)
  }
  let cadence: CadenceStats | undefined
  if (intervals.length > 0) {
    const sorted = [...intervals].sort((a, b) => a - b)
    const mean = intervals.reduce((a, b) => a + b, 0) / intervals.length
    const variance = intervals.reduce((a, b) => a + (b - mean) ** 2, 0) / intervals.length
    cadence = {
      intervals: intervals.length,
      meanMs: round(mean),
      p50Ms: round(percentile(sorted, 50)),
      p95Ms: round(percentile(sorted, 95)),
      p99Ms: round(percentile(sorted, 99)),
      minMs: round(sorted[0] as number),
      maxMs: round(sorted.at(-1) as number),
      stddevMs: round(Math.sqrt(variance)),
    }
  }

  // Each kind's bytes at its own rate: one rate for the whole direction overstated a wideband
  // call's outbound audio after 8 kHz silence (26,620 ms reported for 6.5 s).
  const kinds: AudioKindReport[] = [...audioKinds].map(([kind, k]) => ({
    kind,
    sampleRate: k.sampleRate,
    frames: k.frames,
    bytes: k.bytes,
    ms: round((k.bytes / 2 / k.sampleRate) * 1000, 1),
    firstAtMs: k.firstAtMs,
  }))
  const first = kinds[0]

  return {
    bytes: stream.bytes.length,
    reads: stream.reads.length,
    frames: walk.frames.length,
    byKind: [...byKind].sort((a, b) => a[0] - b[0]).map(([kind, count]) => ({ kind, name: kindName(kind), count })),
    audio:
      first === undefined
        ? undefined
        : {
            frames: audioTimes.length,
            bytes: kinds.reduce((n, k) => n + k.bytes, 0),
            ms: round([...audioKinds.values()].reduce((n, k) => n + (k.bytes / 2 / k.sampleRate) * 1000, 0), 1),
            sampleRate: first.sampleRate,
            kinds,
            sizes: [...sizes].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([length, count]) => ({ length, count })),
            firstAtMs: ms(audioTimes[0] as number),
            lastAtMs: ms(audioTimes.at(-1) as number),
          },
    dtmf,
    gaps,
    cadence,
    chunking: { maxFramesPerRead: Math.max(0, ...framesPerRead.values()), splitFrames },
    finAtMs: stream.finUs === undefined ? undefined : ms(stream.finUs),
    violations,
  }
}
