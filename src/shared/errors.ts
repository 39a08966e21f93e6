/**
 * One catalogue of error codes for the whole server: `ERR_<AREA>_<WHAT>`.
 *
 * Lower layers create and return/emit these; the owner of a call (CallSession) logs them once.
 * A code is stable: logs, `call.ended` events and tests match on it, never on the message.
 */
export const ErrorCodes = {
  // AudioSocket wire protocol (one call only)
  ERR_AUDIOSOCKET_BAD_UUID: 'the UUID frame does not carry exactly 16 bytes',
  ERR_AUDIOSOCKET_BAD_DTMF: 'a DTMF frame does not carry exactly one digit 0-9 * # A-D',
  ERR_AUDIOSOCKET_FRAME_TOO_LARGE: 'a frame announces a payload larger than the connection allows',
  ERR_AUDIOSOCKET_TRUNCATED: 'the connection ended in the middle of a frame',
  ERR_AUDIOSOCKET_FIRST_FRAME: 'the first frame is not the UUID frame',
  ERR_AUDIOSOCKET_FIRST_FRAME_TIMEOUT: 'no UUID frame arrived in time',
  ERR_AUDIOSOCKET_DUPLICATE_UUID: 'a second UUID frame arrived on the same connection',
  ERR_AUDIOSOCKET_RATE_CHANGED: 'the audio kind (sample rate) changed in the middle of a call',
  ERR_AUDIOSOCKET_STALLED: 'part of a frame arrived and the rest did not follow in time',
  ERR_AUDIOSOCKET_SOCKET: 'the AudioSocket connection failed',
  // Soniox real-time session
  ERR_SONIOX_CONNECT: 'could not open the Soniox WebSocket',
  ERR_SONIOX_SERVER_ERROR: 'Soniox answered with an error message',
  ERR_SONIOX_CLOSED: 'the Soniox WebSocket closed before the session finished',
  ERR_SONIOX_FINISH_TIMEOUT: 'Soniox did not send `finished` in time after the end of audio',
  ERR_SONIOX_BAD_MESSAGE: 'Soniox sent a message that is not valid JSON of the documented shape',
  ERR_SONIOX_BACKPRESSURE: 'audio to Soniox was dropped because the WebSocket send buffer was full',
  // Configuration
  ERR_CONFIG_INVALID: 'the configuration is invalid',
  // Webhook delivery
  ERR_WEBHOOK_STATUS: 'the webhook answered with a non-2xx status',
  ERR_WEBHOOK_NETWORK: 'the webhook request failed before a response arrived',
  ERR_WEBHOOK_TIMEOUT: 'the webhook did not answer in time',
  ERR_WEBHOOK_GAVE_UP: 'an event could not be delivered after every retry',
} as const

export type ErrorCode = keyof typeof ErrorCodes

/** An error with a stable code from the catalogue; wrap lower errors with `cause`. */
export class AppError extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ErrorCodes[code], options)
    this.name = 'AppError'
    this.code = code
  }
}

export function isAppError(value: unknown): value is AppError {
  return value instanceof AppError
}

/** Node system errors (ECONNRESET, EPIPE, ...) narrowed without casts. */
export function isErrnoException(value: unknown): value is NodeJS.ErrnoException & { code: string } {
  return value instanceof Error && typeof (value as { code?: unknown }).code === 'string'
}
