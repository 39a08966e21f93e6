/**
 * Soniox's side of readiness, and the probe sessions (probe.ts) that find it out when no call does.
 *
 * A server whose key Soniox refuses, or that cannot reach Soniox, transcribes nothing: it must not
 * report ready, or a load balancer sends it calls another instance could have transcribed. So:
 *
 *   start()  --probe-->  accepted ........................ verified: ready
 *                        401/402/403 (the account) ....... not ready, `soniox_account` (SonioxHealth
 *                                                          holds it); probed every `reprobeMs`
 *                        no answer: network error,
 *                        timeout, 408/429/5xx ............ not ready, `soniox_unreachable`; probed
 *                                                          again after a backoff (1 s doubling, up
 *                                                          to `reprobeMs`)
 *                        another refusal (400: the
 *                        configured model or options) .... not ready, `soniox_refused`; probed
 *                                                          every `reprobeMs`
 *   until the first probe answers ........................ not ready, `soniox_unverified`
 *
 * A call's session that produces results verifies as well (SonioxHealth.reportHealthy): calls that
 * arrive while not ready are served as always (readiness only steers load balancers), and one of
 * them getting through proves Soniox answers. Once verified, reachability is not probed again: a
 * network failure then hits calls, which reconnect on their own, and readiness only follows
 * account problems (401/402/403, from calls or probes), probed every `reprobeMs` until they clear.
 */
import { createBackoff, type Backoff } from '../shared/backoff.js'
import { systemClock, type Clock, type ClockTimer } from '../shared/clock.js'
import { AppError } from '../shared/errors.js'
import type { Logger } from '../shared/logger.js'
import type { ProbeResult } from './probe.js'
import { isAccountProblem, isRetriableSonioxError, sonioxCodeOf } from './soniox-error.js'
import type { SonioxHealth } from './soniox-health.js'

/** Why Soniox keeps the server from being ready: the `reason` of /readyz's 503. */
export type SonioxNotReadyReason = 'soniox_unverified' | 'soniox_account' | 'soniox_unreachable' | 'soniox_refused'

export interface SonioxNotReady {
  reason: SonioxNotReadyReason
  /** More fields of /readyz's 503 answer. */
  detail?: Record<string, unknown>
}

export interface SonioxProberOptions {
  health: SonioxHealth
  /** One probe session; aborting the signal ends it at once. */
  probe: (signal: AbortSignal) => Promise<ProbeResult>
  logger: Logger
  /** While the account is refused (or the settings), one probe this often; also the backoff's cap. */
  reprobeMs: number
  /** First retry while Soniox does not answer (default 1000 ms, at most `reprobeMs`). */
  retryInitialMs?: number
  clock?: Clock
  random?: () => number
}

/** A probe failure that is not the account's (the account's is SonioxHealth's `problem`). */
interface ProbeFailure {
  kind: 'unreachable' | 'refused'
  error: AppError
  /** Clock time of the first failed probe of this streak. */
  since: number
  /** Failed probes in a row. */
  probes: number
}

const DEFAULT_RETRY_INITIAL_MS = 1000

export class SonioxProber {
  private state: 'idle' | 'probing' | 'waiting' | 'stopped' = 'idle'
  private failure: ProbeFailure | undefined
  private timer: ClockTimer | undefined
  private abort: AbortController | undefined
  private readonly clock: Clock
  private readonly backoff: Backoff
  /** The probe running now (tests await it; stop() does not). */
  private running: Promise<void> | undefined

  constructor(private readonly options: SonioxProberOptions) {
    this.clock = options.clock ?? systemClock
    const initialMs = Math.min(options.retryInitialMs ?? DEFAULT_RETRY_INITIAL_MS, options.reprobeMs)
    this.backoff = createBackoff({ initialMs, maxMs: options.reprobeMs, random: options.random })
  }

  /** The first probe, now. Idempotent. */
  start(): void {
    if (this.state !== 'idle') return
    this.probeNow()
  }

  /** No more probes; a running one is closed at once. Idempotent. */
  stop(): void {
    this.state = 'stopped'
    this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.abort?.abort()
  }

  /** Resolves once the probe running now (if any) has been handled. For tests. */
  async settled(): Promise<void> {
    await this.running
  }

  /** Undefined when Soniox is no reason not to be ready. */
  notReady(): SonioxNotReady | undefined {
    const health = this.options.health
    const problem = health.problem
    if (problem !== undefined) {
      return { reason: 'soniox_account', detail: { soniox_code: problem.sonioxCode, since: new Date(problem.since).toISOString() } }
    }
    if (health.verified) return undefined
    const failure = this.failure
    if (failure === undefined) return { reason: 'soniox_unverified' }
    const sonioxCode = sonioxCodeOf(failure.error)
    return {
      reason: failure.kind === 'refused' ? 'soniox_refused' : 'soniox_unreachable',
      detail: {
        error_code: failure.error.code,
        ...(sonioxCode === undefined ? {} : { soniox_code: sonioxCode }),
        since: new Date(failure.since).toISOString(),
        probes: failure.probes,
      },
    }
  }

  private probeNow(): void {
    this.state = 'probing'
    const abort = new AbortController()
    this.abort = abort
    this.running = this.runProbe(abort.signal).catch((err: unknown) => {
      this.options.logger.error({ err }, 'Soniox probe failed unexpectedly')
    })
  }

  private async runProbe(signal: AbortSignal): Promise<void> {
    let result: ProbeResult
    try {
      result = await this.options.probe(signal)
    } catch (cause) {
      result = { ok: false, error: new AppError('ERR_SONIOX_CONNECT', `the probe session failed: ${(cause as Error).message}`, { cause }), totalMs: 0 }
    }
    if (this.state === 'stopped') return
    this.abort = undefined
    const health = this.options.health
    if (result.ok) {
      this.failure = undefined
      this.backoff.reset()
      health.reportHealthy()
    } else {
      health.reportFailure(result.error)
      if (isAccountProblem(result.error)) this.failure = undefined
      else this.noteFailure(result.error)
    }
    this.schedule()
  }

  /** A failure that is not the account's: logged at its first probe and when its cause changes. */
  private noteFailure(error: AppError): void {
    const kind = isRetriableSonioxError(error) ? 'unreachable' : 'refused'
    const previous = this.failure
    const sameCause = previous !== undefined && previous.kind === kind && previous.error.code === error.code && sonioxCodeOf(previous.error) === sonioxCodeOf(error)
    this.failure = { kind, error, since: previous?.since ?? this.clock.now(), probes: (previous?.probes ?? 0) + 1 }
    if (this.options.health.verified) return
    const fields = { err: error, errorCode: error.code, sonioxCode: sonioxCodeOf(error), probes: this.failure.probes }
    if (sameCause) {
      this.options.logger.debug(fields, 'Soniox probe failed again')
    } else if (kind === 'unreachable') {
      this.options.logger.warn(fields, 'Soniox does not answer (network, TLS, timeout or a Soniox fault): not ready until a probe session gets through; probing again with backoff')
    } else {
      // SonioxHealth logs the refusal itself at error (once per cause); this says what it means here.
      this.options.logger.warn(
        fields,
        'Soniox refuses the probe session with the configured settings (SONIOX_MODEL and the SONIOX_* recognition settings): not ready until it accepts one; run `audiosocket-soniox check`',
      )
    }
  }

  /**
   * The next look: soon (backoff) while Soniox does not answer and nothing has been verified;
   * every `reprobeMs` otherwise, probing only while it is needed (not verified, or an account
   * problem, which a call may report at any time).
   */
  private schedule(): void {
    if (this.state === 'stopped') return
    this.state = 'waiting'
    const retrySoon = this.failure?.kind === 'unreachable' && !this.options.health.verified && this.options.health.problem === undefined
    const delay = retrySoon ? this.backoff.next() : this.options.reprobeMs
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined
      if (this.state === 'stopped') return
      const health = this.options.health
      if (health.problem !== undefined || !health.verified) this.probeNow()
      else this.schedule()
    }, delay)
    this.timer.unref()
  }
}
