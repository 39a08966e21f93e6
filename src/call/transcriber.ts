/**
 * What a call needs from speech-to-text: the seam between src/call/ and src/soniox/. The call
 * hands over audio as it arrives (any length, odd ones too) and hears back whole utterances, the
 * utterance in progress, and at most one failure, already classified. Word assembly, sample
 * alignment and what a provider's error means are the transcriber's (SonioxTranscriber).
 */
import type { AppError } from '../shared/errors.js'
import type { Guard } from '../shared/guard.js'
import type { Logger } from '../shared/logger.js'
import type { AudioFormat, RecognitionOptions, TranscriberStats, TranscriptPartial, TranscriptionFailure, Utterance } from '../soniox/index.js'

export interface TranscriberHandlers {
  onUtterance(utterance: Utterance): void
  /** Left out unless the call publishes transcript.partial: assembling partials costs per result. */
  onPartial?(partial: TranscriptPartial): void
  /** At most once; the open utterance has been delivered first, and nothing follows. */
  onError(error: AppError, failure: TranscriptionFailure): void
}

export interface Transcriber {
  /** The call's audio format, fixed by its first audio frame. */
  start(format: AudioFormat): void
  sendAudio(chunk: Buffer): void
  /** Ends the audio; resolves (bounded) when the last words are in or transcription is over. */
  finish(): Promise<void>
  /** Immediate teardown; idempotent. Words final but still open are delivered before it returns. */
  close(): void
  stats(): TranscriberStats
}

/** A pre-registered call's own recognition options, laid over the configured ones. */
export type CallRecognitionOptions = Partial<Pick<RecognitionOptions, 'languageHints' | 'languageHintsStrict' | 'context'>>

/**
 * Builds the call's transcriber; `log` is the call's logger (it carries callId); `recognition`
 * holds this call's own options (from its pre-registration); `guard` is the call's fault
 * boundary, to wrap every event and timer callback the transcriber registers (an exception there
 * ends this call, not the process).
 */
export type TranscriberFactory = (
  callId: string,
  handlers: TranscriberHandlers,
  log: Logger,
  recognition: CallRecognitionOptions | undefined,
  guard: Guard,
) => Transcriber
