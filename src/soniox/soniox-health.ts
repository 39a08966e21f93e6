/**
 * Process-wide view of problems that affect every call alike: a refused key (401) or an
 * exhausted balance (402). One log line at error when such a cause appears or changes, not one
 * per call, and the current problem is readable (a readiness check reports it).
 */
import type { Logger } from '../shared/logger.js'
import type { AppError } from '../shared/errors.js'
import { isAccountProblem } from './soniox-error.js'

export interface SonioxProblem {
  sonioxCode: number
  message: string
  since: number
}

export class SonioxHealth {
  private current: SonioxProblem | undefined

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  get problem(): SonioxProblem | undefined {
    return this.current
  }

  /** A session failed for good. Account-level causes are logged once until they change. */
  reportFailure(error: AppError): void {
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

  /** A session produced results: whatever account problem there was is over. */
  reportHealthy(): void {
    if (this.current === undefined) return
    this.logger.info({ sonioxCode: this.current.sonioxCode }, 'Soniox accepts sessions again')
    this.current = undefined
  }
}
