/**
 * What a call did, counted as it happens and reported once at its end: the data of call.ended
 * and the fields of the "call ended" log line. Pure: no I/O, no clock (times are passed in).
 */
import type { AppError } from '../shared/errors.js'
import { bytesPerSample, type AudioFormat, type TranscriberStats, type Utterance } from '../soniox/index.js'

export type CallEndReason = 'hangup' | 'server_hangup' | 'error' | 'shutdown' | 'timeout'

/** An error as call.ended reports it: its code and message, and any provider fields (soniox_code, ...). */
export interface ReportedError {
  error: AppError
  fields?: Readonly<Record<string, string | number>>
}

export interface CallOutcome {
  reason: CallEndReason
  durationMs: number
  /** Undefined when the call never had a transcriber. */
  stats: TranscriberStats | undefined
  /** Undefined when silence was off. */
  silenceFrames: number | undefined
  error: ReportedError | undefined
  metadata: Readonly<Record<string, unknown>> | null
}

export class CallReport {
  /** Inbound frames by type (UUID and hangup frames are not counted). */
  readonly frames = { audio: 0, dtmf: 0, unknown: 0, error: 0 }
  /** The call's 0x10 audio looked like G.711 labelled as slin. */
  suspectedG711 = false
  private format: AudioFormat | undefined
  private audioBytes = 0
  private utterances = 0
  /** The utterances' texts: together, the call's whole transcript, byte for byte. */
  private readonly transcriptPieces: string[] = []

  /** The call's audio format, fixed by its first audio frame. */
  setFormat(format: AudioFormat): void {
    this.format = format
  }

  addAudio(bytes: number): void {
    this.audioBytes += bytes
  }

  addUtterance(utterance: Utterance): void {
    this.utterances++
    this.transcriptPieces.push(utterance.text)
  }

  /** Call audio time so far (samples received), the clock of every timestamp in the call's events. */
  get audioMs(): number {
    if (this.format === undefined) return 0
    return Math.round((this.audioBytes / bytesPerSample(this.format) / this.format.sampleRate) * 1000)
  }

  /** The data of call.ended. */
  endedData(outcome: CallOutcome): Record<string, unknown> {
    const stats = outcome.stats
    return {
      reason: outcome.reason,
      duration_ms: outcome.durationMs,
      audio_ms: this.audioMs,
      sample_rate: this.format?.sampleRate ?? null,
      audio_encoding: this.format?.encoding ?? null,
      suspected_g711: this.suspectedG711,
      transcript: this.transcriptPieces.join(''),
      utterances: this.utterances,
      soniox: {
        sessions: stats?.sessions ?? 0,
        reconnects: stats?.reconnects ?? 0,
        audio_resent_ms: stats?.audioResentMs ?? 0,
        audio_dropped_ms: stats?.audioDroppedMs ?? 0,
      },
      frames: { ...this.frames },
      silence_frames_sent: outcome.silenceFrames ?? 0,
      error: outcome.error === undefined ? null : { code: outcome.error.error.code, message: outcome.error.error.message, ...outcome.error.fields },
      metadata: outcome.metadata,
    }
  }

  /** The fields of the "call ended" log line (no transcript text above debug level: a word count). */
  logFields(outcome: CallOutcome): Record<string, unknown> {
    return {
      reason: outcome.reason,
      durationMs: outcome.durationMs,
      audioMs: this.audioMs,
      sampleRate: this.format?.sampleRate,
      frames: this.frames.audio,
      dtmf: this.frames.dtmf,
      utterances: this.utterances,
      words: countWords(this.transcriptPieces.join('')),
      sonioxSessions: outcome.stats?.sessions,
      reconnects: outcome.stats?.reconnects,
      audioDroppedMs: outcome.stats?.audioDroppedMs,
      silenceFrames: outcome.silenceFrames,
      errorCode: outcome.error?.error.code,
    }
  }
}

function countWords(text: string): number {
  const trimmed = text.trim()
  return trimmed === '' ? 0 : trimmed.split(/\s+/).length
}
