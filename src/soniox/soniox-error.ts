/**
 * Soniox failures as values: the typed error that carries what Soniox said, and the questions the
 * rest of the code asks of a failure (is a new session worth trying; is it the account's; did
 * Soniox refuse what was asked of it).
 */
import { AppError, type ErrorCode } from '../shared/errors.js'

/** What Soniox (or the HTTP answer to the upgrade) said about a failure. */
export interface SonioxErrorDetails {
  /** Soniox's error code, or the HTTP status of a refused upgrade. */
  sonioxCode?: number
  sonioxType?: string
  requestId?: string
}

/** An AppError with Soniox's own details, fixed at creation. */
export class SonioxError extends AppError {
  readonly sonioxCode: number | undefined
  readonly sonioxType: string | undefined
  readonly requestId: string | undefined

  constructor(code: ErrorCode, message: string, details: SonioxErrorDetails, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'SonioxError'
    this.sonioxCode = details.sonioxCode
    this.sonioxType = details.sonioxType
    this.requestId = details.requestId
  }

  /** The details as call.ended's `error` object names them; absent ones are left out. */
  reportFields(): Record<string, string | number> {
    const out: Record<string, string | number> = {}
    if (this.sonioxCode !== undefined) out.soniox_code = this.sonioxCode
    if (this.sonioxType !== undefined) out.soniox_type = this.sonioxType
    if (this.requestId !== undefined) out.request_id = this.requestId
    return out
  }
}

/** Soniox's code for a failure, if it gave one. */
export function sonioxCodeOf(error: AppError): number | undefined {
  return error instanceof SonioxError ? error.sonioxCode : undefined
}

/** Soniox codes worth a new session: timeouts, rate/concurrency limits, server faults. */
const RETRIABLE_SONIOX_CODES = new Set([408, 429, 500, 502, 503, 504])

/**
 * Whether a new session may succeed where this one failed. Connection-level failures are
 * retriable; Soniox's 4xx answers (bad request, bad key, no balance) are not, except 408 and 429.
 */
export function isRetriableSonioxError(error: AppError): boolean {
  switch (error.code) {
    case 'ERR_SONIOX_SERVER_ERROR': {
      const code = sonioxCodeOf(error) ?? 0
      return RETRIABLE_SONIOX_CODES.has(code) || code >= 500
    }
    case 'ERR_SONIOX_CONNECT': {
      // A refused upgrade carries the HTTP status; a network failure carries none.
      const code = sonioxCodeOf(error)
      return code === undefined || RETRIABLE_SONIOX_CODES.has(code) || code >= 500
    }
    case 'ERR_SONIOX_CLOSED':
    case 'ERR_SONIOX_UNRESPONSIVE':
    case 'ERR_SONIOX_BACKPRESSURE':
    case 'ERR_SONIOX_FINISH_TIMEOUT':
      return true
    default:
      return false
  }
}

/** Soniox codes that mean "no call will be transcribed until an operator acts". */
const ACCOUNT_CODES = new Set([401, 402, 403])

/** A refused key or an exhausted balance: every call fails alike until an operator acts. */
export function isAccountProblem(error: AppError): error is SonioxError & { sonioxCode: number } {
  const code = sonioxCodeOf(error)
  return code !== undefined && ACCOUNT_CODES.has(code)
}

/**
 * Soniox answered the session's request with a 4xx of its own (an error message, not a refused
 * upgrade) that no new session can change: 400 for a model it does not know, an option the model
 * does not take, a value out of range. Nothing here decides which model takes which option: the
 * options are sent as the admin set them and Soniox's answer is the verdict. Not retried; every
 * call sent the same options meets it alike, so SonioxHealth logs each cause once.
 */
export function isRequestRefused(error: AppError): error is SonioxError & { sonioxCode: number } {
  if (error.code !== 'ERR_SONIOX_SERVER_ERROR') return false
  const code = sonioxCodeOf(error)
  return code !== undefined && code >= 400 && code < 500 && !RETRIABLE_SONIOX_CODES.has(code) && !ACCOUNT_CODES.has(code)
}
