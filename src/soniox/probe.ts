/**
 * One tiny Soniox session that proves the key, the region and the start message work: connect,
 * start message, 100 ms of silence, the empty frame, wait for `finished`. Used by
 * `audiosocket-soniox check` and, while Soniox refuses the account, to notice when it accepts again.
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
}

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
      clientReferenceId: options.clientReferenceId ?? 'audiosocket-soniox-probe',
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
  session.start({ sampleRate: PROBE_SAMPLE_RATE })
  session.sendAudio(PROBE_SILENCE)
  await session.finish()
  const finished = session.state === 'finished'
  session.close()
  const totalMs = clock.now() - startedAt
  if (error !== undefined || !finished) {
    return { ok: false, error: error ?? new AppError('ERR_SONIOX_CLOSED', 'the session ended without "finished"'), totalMs }
  }
  return { ok: true, connectMs: connectMs ?? totalMs, totalMs }
}
