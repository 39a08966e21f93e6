/**
 * ARI failures as values: an AppError that keeps what Asterisk answered (the HTTP status and the
 * `message` of its JSON error body), so a caller can tell "no such channel" (404) from "wrong
 * password" (401) or "not in Stasis" (409) without parsing text.
 */
import { AppError, type ErrorCode } from '../shared/errors.js'

/** What Asterisk said about a failed request or upgrade. */
export interface AriErrorDetails {
  /** The HTTP status of the answer; absent when no answer arrived. */
  status?: number
  /** Asterisk's own words: the `message` field of its JSON error body. */
  ariMessage?: string
}

export class AriError extends AppError {
  readonly status: number | undefined
  readonly ariMessage: string | undefined

  constructor(code: ErrorCode, message: string, details: AriErrorDetails = {}, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'AriError'
    this.status = details.status
    this.ariMessage = details.ariMessage
  }
}

/** The HTTP status Asterisk answered with, if the error carries one. */
export function ariStatusOf(error: unknown): number | undefined {
  return error instanceof AriError ? error.status : undefined
}

/** What an admin should do about a refused login: the same words for REST and the events socket. */
export const ARI_AUTH_HINT = 'ARI refused the username/password: check ARI_USERNAME/ARI_PASSWORD and ari.conf'
