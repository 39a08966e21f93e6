/**
 * A call's speech-to-text as the call hears it (the shape src/call/transcriber.ts asks for): audio
 * in; whole utterances, the utterance in progress and at most one classified failure out. It owns
 * what a call need not know about Soniox:
 * - word assembly: Soniox's tokens become utterances (TranscriptAssembler);
 * - sample alignment: 16-bit PCM reaches Soniox in whole samples whatever the frame lengths (odd
 *   payloads happen: CNG, codecs); G.711 is one byte a sample and passes as it comes;
 * - what a failure means: whether it is the account's or a request Soniox refuses (every call
 *   fails alike, SonioxHealth logs it once) and the Soniox details call.ended reports.
 * Staying transcribed across session failures is the inner stream's (ResilientTranscriber).
 */
import type { AppError } from '../shared/errors.js'
import type { SonioxResult } from './messages.js'
import type { TranscriberStats } from './resilient-transcriber.js'
import { SonioxError, isAccountProblem, isRequestRefused } from './soniox-error.js'
import type { SonioxSessionHandlers } from './soniox-session.js'
import type { AudioFormat } from './start-message.js'
import { TranscriptAssembler, type PartialText, type Utterance } from './transcript-assembler.js'

/** The utterance in progress: its final and provisional words, and the index it will have. */
export type TranscriptPartial = PartialText & { index: number }

export interface TranscriptionFailure {
  /** A refused key or an exhausted balance: every call fails alike, and it is logged once elsewhere. */
  accountProblem: boolean
  /**
   * Soniox refused the request (400: the model, or an option it does not take): every call sent
   * the same options fails alike, and SonioxHealth logs each cause once.
   */
  requestRefused?: boolean
  /** Soniox's details as call.ended's `error` names them (soniox_code, soniox_type, request_id). */
  reportFields: Readonly<Record<string, string | number>>
}

export interface TranscriptListener {
  onUtterance(utterance: Utterance): void
  /** Given only by a listener that wants them: after every result that leaves words open. */
  onPartial?(partial: TranscriptPartial): void
  /** At most once, after the open utterance was delivered; nothing follows it. */
  onError(error: AppError, failure: TranscriptionFailure): void
}

/** What this class needs of the layer below; ResilientTranscriber is the real one. */
export interface ResultStream {
  start(format: AudioFormat): void
  sendAudio(chunk: Buffer): void
  finish(): Promise<void>
  close(): void
  stats(): TranscriberStats
}

export class SonioxTranscriber {
  private readonly assembler = new TranscriptAssembler()
  private readonly inner: ResultStream
  /** 16-bit PCM: payloads are cut at whole samples. */
  private alignSamples = false
  /** The last byte of an odd-length PCM payload, waiting for its pair. */
  private oddByte: Buffer | undefined
  private failed = false

  constructor(
    createInner: (handlers: SonioxSessionHandlers) => ResultStream,
    private readonly listener: TranscriptListener,
  ) {
    this.inner = createInner({
      onResult: (result) => this.onResult(result),
      onError: (error) => this.onError(error),
      onFinished: () => {},
    })
  }

  start(format: AudioFormat): void {
    this.alignSamples = (format.encoding ?? 'pcm_s16le') === 'pcm_s16le'
    this.inner.start(format)
  }

  sendAudio(chunk: Buffer): void {
    if (!this.alignSamples) {
      this.inner.sendAudio(chunk)
      return
    }
    let pcm = chunk
    if (this.oddByte !== undefined) {
      pcm = Buffer.concat([this.oddByte, chunk])
      this.oddByte = undefined
    }
    if (pcm.length % 2 === 1) {
      // A copy: the chunk may be a view of a socket buffer that is reused.
      this.oddByte = Buffer.from(pcm.subarray(pcm.length - 1))
      pcm = pcm.subarray(0, pcm.length - 1)
    }
    if (pcm.length > 0) this.inner.sendAudio(pcm)
  }

  /** Ends the audio; resolves when every final word has been delivered or transcription is over. */
  finish(): Promise<void> {
    return this.inner.finish()
  }

  /**
   * Immediate teardown; idempotent. The words already final but not yet closed into an utterance
   * are delivered (reason call_end) before it returns; nothing is delivered after.
   */
  close(): void {
    this.inner.close()
    this.flush()
  }

  stats(): TranscriberStats {
    return this.inner.stats()
  }

  private onResult(result: SonioxResult): void {
    for (const utterance of this.assembler.push(result)) this.listener.onUtterance(utterance)
    if (this.listener.onPartial === undefined) return
    const partial = this.assembler.partial()
    if (partial !== undefined) this.listener.onPartial({ index: this.assembler.utteranceCount, ...partial })
  }

  private onError(error: AppError): void {
    if (this.failed) return
    this.failed = true
    // The words Soniox made final before it failed are the call's: deliver them, then the failure.
    this.flush()
    this.listener.onError(error, {
      accountProblem: isAccountProblem(error),
      requestRefused: isRequestRefused(error),
      reportFields: error instanceof SonioxError ? error.reportFields() : {},
    })
  }

  private flush(): void {
    const last = this.assembler.flush('call_end')
    if (last !== undefined) this.listener.onUtterance(last)
  }
}
