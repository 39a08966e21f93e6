/**
 * Process-wide view of Soniox problems that affect every call alike, so that each is logged once
 * rather than once per call:
 * - a refused key (401/403) or an exhausted balance (402): one line at error when the cause
 *   appears or changes, and the current problem is readable (a readiness check reports it);
 * - a request Soniox refuses (400: a model it does not know, an option the model does not take):
 *   one line at error per distinct cause. Every call sent the same options meets it, but it says
 *   nothing of the account: readiness is not affected (a call registered with other options may
 *   well work), and each call still reports it in call.ended.
 * And whether Soniox has accepted any session since start (`verified`: a probe or a call): until
 * then soniox-prober.ts keeps the server not ready (its start probe, with the configured settings,
 * is what says unverified, unreachable or refused).
 */
import type { Logger } from '../shared/logger.js'
import type { AppError } from '../shared/errors.js'
import { isAccountProblem, isRequestRefused, type SonioxError } from './soniox-error.js'

/** Logged once, when Soniox first accepts a session: from then on only an account problem makes the server not ready. */
export const SONIOX_VERIFIED_MESSAGE = 'Soniox verified: it accepts sessions with this key and these settings'

export interface SonioxProblem {
  sonioxCode: number
  message: string
  since: number
}

/** Distinct refusal causes remembered; past it the oldest is forgotten (and would be logged again). */
const MAX_REFUSAL_CAUSES = 64

export class SonioxHealth {
  private current: SonioxProblem | undefined
  private verifiedValue = false
  /** Refusal causes already logged (code, type and Soniox's message), oldest first. */
  private readonly refusals = new Set<string>()

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  get problem(): SonioxProblem | undefined {
    return this.current
  }

  /**
   * Whether Soniox has accepted a session since start: a probe got its `finished`, or a call's
   * session produced results. False until then, whatever the reason (not asked yet, no answer).
   */
  get verified(): boolean {
    return this.verifiedValue
  }

  /** A session failed for good. Account-level causes and refused requests are logged once per cause. */
  reportFailure(error: AppError): void {
    if (isRequestRefused(error)) {
      this.reportRefusal(error)
      return
    }
    if (!isAccountProblem(error)) return
    const sonioxCode = error.sonioxCode
    if (this.current?.sonioxCode === sonioxCode) return
    this.current = { sonioxCode, message: error.message, since: this.now() }
    this.logger.error(
      { err: error, sonioxCode },
      sonioxCode === 402
        ? 'Soniox refuses sessions: the account has no balance or budget left; calls are not transcribed'
        : 'Soniox refuses the API key (SONIOX_API_KEY, and its region matches SONIOX_WEBSOCKET_URL?); calls are not transcribed',
    )
  }

  /** A session produced results (or a probe finished): whatever account problem there was is over. */
  reportHealthy(): void {
    if (!this.verifiedValue) {
      this.verifiedValue = true
      if (this.current === undefined) {
        this.logger.info(SONIOX_VERIFIED_MESSAGE)
        return
      }
    }
    if (this.current === undefined) return
    this.logger.info({ sonioxCode: this.current.sonioxCode }, 'Soniox accepts sessions again')
    this.current = undefined
  }

  private reportRefusal(error: SonioxError & { sonioxCode: number }): void {
    // The message is Soniox's text for the cause ("Invalid model specified."); the request id is not part of it.
    const cause = `${error.sonioxCode} ${error.sonioxType ?? ''} ${error.message}`
    if (this.refusals.has(cause)) return
    if (this.refusals.size >= MAX_REFUSAL_CAUSES) {
      const oldest = this.refusals.values().next().value
      if (oldest !== undefined) this.refusals.delete(oldest)
    }
    this.refusals.add(cause)
    this.logger.error(
      { err: error, sonioxCode: error.sonioxCode, sonioxType: error.sonioxType },
      'Soniox refuses the session\'s request (the model, or an option it does not take): calls sent these options are not transcribed; ' +
        'check SONIOX_MODEL and the SONIOX_* recognition settings (or the options the call was registered with), and run `audiosocket-soniox check`',
    )
  }
}
