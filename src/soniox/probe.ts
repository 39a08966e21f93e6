/**
 * One tiny Soniox session that proves the key, the region and the start message work: connect,
 * start message, 100 ms of silence, the empty frame, wait for `finished`. Used by
 * `audiosocket-soniox check` and by the server (soniox-prober.ts): once at start, before it reports
 * ready, and while Soniox refuses the account or cannot be reached, to notice when it accepts again.
 */
import { systemClock, type Clock } from '../shared/clock.js'
import { AppError } from '../shared/errors.js'
import type { RecognitionOptions } from './start-message.js'
import { SonioxSession } from './soniox-session.js'

export interface ProbeOptions {
  url: string
  apiKey: string
  recognition: RecognitionOptions
  /** Bound on connecting, and again on waiting for `finished`. */
  timeoutMs: number
  clientReferenceId?: string
  clock?: Clock
  /** Aborting closes the session at once; the result is then a failure (ERR_SONIOX_CLOSED). */
  signal?: AbortSignal
}

/** The client_reference_id a probe session sends unless told otherwise: Soniox's logs (and the tests' stand-in) tell probes from calls by it. */
export const PROBE_CLIENT_REFERENCE_ID = 'audiosocket-soniox-probe'

export type ProbeResult = { ok: true; connectMs: number; totalMs: number } | { ok: false; error: AppError; totalMs: number }

const PROBE_SAMPLE_RATE = 8000
/** 100 ms of 8 kHz s16le silence: enough for Soniox to accept and finish a session, too little to cost anything. */
const PROBE_SILENCE = Buffer.alloc((PROBE_SAMPLE_RATE / 10) * 2)

export async function probeSoniox(options: ProbeOptions): Promise<ProbeResult> {
  const clock = options.clock ?? systemClock
  const startedAt = clock.now()
  let connectMs: number | undefined
  let error: AppError | undefined
  const session = new SonioxSession(
    {
      url: options.url,
      apiKey: options.apiKey,
      recognition: options.recognition,
      clientReferenceId: options.clientReferenceId ?? PROBE_CLIENT_REFERENCE_ID,
      connectTimeoutMs: options.timeoutMs,
      finishTimeoutMs: options.timeoutMs,
      audioBatchMs: 0,
      maxBufferedAudioMs: 1000,
      keepaliveMs: options.timeoutMs,
      pingIntervalMs: options.timeoutMs,
      pongTimeoutMs: options.timeoutMs,
      clock,
      metrics: {
        connected: (ms) => (connectMs = ms),
        sessionOpened() {},
        sessionClosed() {},
        reconnected() {},
        error() {},
      },
    },
    { onResult() {}, onError: (err) => (error ??= err), onFinished() {} },
  )
  const abort = (): void => {
    error ??= new AppError('ERR_SONIOX_CLOSED', 'the probe was cancelled')
    session.close()
  }
  if (options.signal?.aborted === true) abort()
  options.signal?.addEventListener('abort', abort, { once: true })
  session.start({ sampleRate: PROBE_SAMPLE_RATE })
  session.sendAudio(PROBE_SILENCE)
  await session.finish()
  options.signal?.removeEventListener('abort', abort)
  const finished = session.state === 'finished'
  session.close()
  const totalMs = clock.now() - startedAt
  if (error !== undefined || !finished) {
    return { ok: false, error: error ?? new AppError('ERR_SONIOX_CLOSED', 'the session ended without "finished"'), totalMs }
  }
  return { ok: true, connectMs: connectMs ?? totalMs, totalMs }
}
