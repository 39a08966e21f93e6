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
  // One call's handling (never the process)
  ERR_CALL_INTERNAL: "an exception in this call's own handling (a bug): this call was ended, the process and the other calls went on",
  // Soniox real-time session
  ERR_SONIOX_CONNECT: 'could not open the Soniox WebSocket',
  ERR_SONIOX_SERVER_ERROR: 'Soniox answered with an error message',
  ERR_SONIOX_CLOSED: 'the Soniox WebSocket closed before the session finished',
  ERR_SONIOX_FINISH_TIMEOUT: 'Soniox did not send `finished` in time after the end of audio',
  ERR_SONIOX_BAD_MESSAGE: 'Soniox sent a message that is not valid JSON of the documented shape',
  ERR_SONIOX_BACKPRESSURE: 'the WebSocket send buffer towards Soniox passed its bound (a stalled link)',
  ERR_SONIOX_UNRESPONSIVE: 'Soniox did not answer a WebSocket ping in time (a half-open connection)',
  ERR_SONIOX_GAVE_UP: 'every reconnection attempt to Soniox failed within the allowed attempts and time',
  // Asterisk REST Interface (ARI_URL): REST requests and the events WebSocket
  ERR_ARI_REQUEST: "ARI answered a request with an error status (kept with Asterisk's message)",
  ERR_ARI_UNREACHABLE: "ARI (Asterisk's HTTP server at ARI_URL) refused the connection or did not answer in time",
  ERR_ARI_BAD_RESPONSE: 'ARI answered with a body that is not the JSON expected, or larger than the client reads',
  ERR_ARI_EVENTS: 'the ARI events WebSocket could not be opened, or was lost; it is reopened with backoff',
  ERR_ARI_TAP_FAILED: 'a tap (snoop, externalMedia channel, bridge) could not be set up on the channel; what was made was removed',
  ERR_ARI_TAP_NO_STREAM: "a tap's externalMedia channel was created but its stream never reached the AudioSocket listener (check ARI_EXTERNAL_HOST)",
  // Capture files, packet-capture import, replay (the capture tools; never a live call)
  ERR_CAPTURE_NOT_A_CAPTURE: 'the file is not an AudioSocket capture file (wrong magic bytes)',
  ERR_CAPTURE_VERSION: 'the capture file has a format version this tool does not read',
  ERR_CAPTURE_TRUNCATED: 'the capture file is cut off (a record runs past the end, or the end record is missing)',
  ERR_CAPTURE_CORRUPT: 'the capture file has an invalid header or record',
  ERR_CAPTURE_WRITE: 'a capture file could not be written; recording of that call stopped',
  ERR_CAPTURE_NO_AUDIO: 'the capture holds no audio in the requested direction',
  ERR_CAPTURE_UPSTREAM: 'the capture proxy (tee mode) could not connect to the upstream server',
  ERR_PCAP_FORMAT: 'the file is not a pcap or pcapng packet capture, or a block in it is malformed',
  ERR_PCAP_TRUNCATED: 'the packet capture file is cut off in the middle of a packet or block',
  ERR_PCAP_LINK_TYPE: 'the packet capture uses a link-layer type the importer does not decode',
  ERR_PCAP_NO_TCP: 'the packet capture holds no TCP packets',
  ERR_PCAP_NO_AUDIOSOCKET: 'no TCP connection in the packet capture is an AudioSocket stream',
  ERR_PCAP_NOT_AUDIOSOCKET: 'a TCP stream on the AudioSocket port does not start with a UUID frame',
  ERR_PCAP_STREAM_GAP: 'bytes of a TCP stream are missing from the packet capture (dropped packets)',
  ERR_REPLAY_CONNECT: 'the replay could not connect to the server',
  ERR_CLI_OUTPUT: "a command's output cannot be written where it was asked to (the file exists without --force, or one file was named for several)",
  // Metrics registry (a bug in the server's own metric definitions, found at start)
  ERR_METRICS_DEFINITION: 'a metric is defined with an invalid name, labels or buckets, or twice',
  // Configuration
  ERR_CONFIG_INVALID: 'the configuration is invalid',
  // HTTP endpoint (HTTP_HOST / HTTP_PORT)
  ERR_HTTP_LISTEN: 'the HTTP endpoint cannot listen on HTTP_HOST:HTTP_PORT',
  // Webhook delivery
  ERR_WEBHOOK_STATUS: 'the webhook answered with a non-2xx status',
  ERR_WEBHOOK_NETWORK: 'the webhook request failed before a response arrived',
  ERR_WEBHOOK_PROTOCOL: "the webhook's answer is not HTTP/1.1 that node:http would accept (status line, header or body framing); the attempt is retried on a new connection",
  ERR_WEBHOOK_TIMEOUT: 'the webhook did not answer in time',
  ERR_WEBHOOK_GAVE_UP: 'an event could not be delivered and is not kept anywhere (not serialisable, or left at shutdown without a spool)',
  ERR_WEBHOOK_REJECTED: 'the webhook answered a status that is not retried (3xx, 4xx other than 408/429); the event was dead-lettered',
  ERR_WEBHOOK_EXPIRED: 'an event was still undelivered at WEBHOOK_MAX_AGE; it was dead-lettered',
  ERR_WEBHOOK_WORKER: 'the webhook delivery worker thread stopped unexpectedly; a new one takes over the events not yet spooled',
  // Durable delivery spool (SPOOL_DIR) and dead-letter file
  ERR_SPOOL_OPEN: 'the spool directory (SPOOL_DIR) cannot be created or read',
  ERR_SPOOL_LOCKED: 'another running process uses the same SPOOL_DIR',
  ERR_SPOOL_FULL: 'the spool holds SPOOL_MAX_BYTES already; the event is delivered from memory only',
  ERR_SPOOL_WRITE: 'a spool write failed (disk full, I/O error); the event is delivered from memory only',
  ERR_SPOOL_CLOSED: 'the spool was closed before the write',
  ERR_DEAD_LETTER_WRITE: 'the dead-letter file could not be written; the event stays in the spool',
  // Events file sink (EVENTS_FILE) and stdout
  ERR_EVENTS_OUTPUT: 'the events output (stdout without a webhook) is no longer writable; events are no longer written there',
  ERR_EVENTS_FILE: 'EVENTS_FILE cannot be opened or written',
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
