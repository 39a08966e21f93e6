import { AppError } from './errors.js'

/**
 * Exponential backoff as a small pure object: no timers, no I/O. The caller asks for the next delay,
 * waits it out however it likes (real or injected timers), and calls `reset()` after a success.
 *
 * Delay n (0-based, counted since the last reset) is `min(initialMs * factor ** n, maxMs)`, then
 * jittered DOWNWARDS by up to `jitter` of itself. Jitter only ever shortens the delay, so `maxMs` is a
 * hard cap and the callers retrying at the cap are still spread out rather than piled on one value.
 */
export interface BackoffOptions {
  /** First delay in milliseconds (before jitter). */
  initialMs: number
  /** Upper bound for any delay, in milliseconds. Must be >= initialMs. */
  maxMs: number
  /** Growth per attempt. Default 2. Must be >= 1. */
  factor?: number
  /** Fraction of each delay that is randomised away, 0..1. Default 0.2 (a delay lands in [0.8d, d]). */
  jitter?: number
  /** Uniform source in [0, 1). Default Math.random; injected by tests. */
  random?: () => number
}

export interface Backoff {
  /** The delay to wait before the next attempt, in whole milliseconds. Advances `attempt`. */
  next(): number
  /** Start over from `initialMs` (call after a success). */
  reset(): void
  /** How many delays `next()` has handed out since the last reset. */
  readonly attempt: number
}

export function createBackoff(options: BackoffOptions): Backoff {
  const { initialMs, maxMs, factor = 2, jitter = 0.2, random = Math.random } = options
  if (!Number.isFinite(initialMs) || initialMs < 0) {
    throw new AppError('ERR_CONFIG_INVALID', `backoff initialMs must be a finite number >= 0, got ${initialMs}`)
  }
  if (!Number.isFinite(maxMs) || maxMs < initialMs) {
    throw new AppError('ERR_CONFIG_INVALID', `backoff maxMs must be finite and >= initialMs, got ${maxMs}`)
  }
  if (!Number.isFinite(factor) || factor < 1) {
    throw new AppError('ERR_CONFIG_INVALID', `backoff factor must be >= 1, got ${factor}`)
  }
  if (!(jitter >= 0 && jitter <= 1)) {
    throw new AppError('ERR_CONFIG_INVALID', `backoff jitter must be within 0..1, got ${jitter}`)
  }

  let attempt = 0
  return {
    next(): number {
      // factor ** attempt overflows to Infinity after enough failures; Math.min still caps it.
      const base = Math.min(initialMs * factor ** attempt, maxMs)
      attempt++
      const r = Math.min(Math.max(random(), 0), 1) // a misbehaving source cannot push us past the cap
      return Math.round(base * (1 - jitter * r))
    },
    reset(): void {
      attempt = 0
    },
    get attempt(): number {
      return attempt
    },
  }
}
