/**
 * One HTTP(S) POST of one event to the webhook, classified for the retry policy. Shared by the
 * sink (which retries) and the dead-letter CLI (which posts once), so both sign, time out and
 * classify answers the same way.
 */
import { X509Certificate } from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'
import { urlToHttpOptions } from 'node:url'
import { AppError, isAppError } from '../shared/errors.js'
import { systemClock, type Clock, type ClockTimer } from '../shared/clock.js'
import { pemCertificates, webhookHeaderProblem } from '../shared/validate.js'
import { Http1Pool, type Exchange } from './http1-pool.js'
import { HttpProtocolError } from './http1-response.js'
import { decodeWebhookSecret, webhookHeaders } from './signing.js'

/** How much of a failed answer's body is kept for the log and the dead-letter file. */
export const BODY_EXCERPT_BYTES = 512

/** Printable ASCII without spaces: what an event id must be to go out as the webhook-id header. */
const HEADER_TOKEN = /^[\x21-\x7e]+$/

/** The header AVR Core sends its WEBHOOK_SECRET in, verbatim (WEBHOOK_FORMAT=avr). */
export const AVR_SECRET_HEADER = 'X-AVR-WEBHOOK-SECRET'

/** Statuses whose Retry-After we honour (RFC 9110 defines it for 503 and 429 defines it for 429). */
const RETRY_AFTER_STATUSES = new Set([429, 503])

export interface WebhookTransportOptions {
  /** Absolute http: or https: URL. */
  url: string
  /**
   * Standard Webhooks secret (`whsec_<base64>` or any other string used as bytes). Unsigned without
   * it. With format `avr`, sent as it is in AVR Core's `X-AVR-WEBHOOK-SECRET` header instead.
   */
  secret?: string | undefined
  /**
   * WEBHOOK_FORMAT. `standard` (default): the secret signs each attempt (webhook-id, webhook-timestamp,
   * webhook-signature). `avr`: the bodies are AVR's (made by events/avr-format.ts) and the secret
   * goes verbatim in `X-AVR-WEBHOOK-SECRET`, the same on every request, as AVR Core sends it.
   */
  format?: 'standard' | 'avr' | undefined
  /** Deadline for one request, from sending it to the end of the response, in milliseconds. */
  timeoutMs: number
  /** Extra request headers (e.g. authorization). Names in RESERVED_WEBHOOK_HEADERS (shared/validate.ts) are refused. */
  headers?: Record<string, string> | undefined
  /** PEM CA certificate(s) trusted for an https: URL in addition to Node's bundled ones. */
  ca?: string | Buffer | undefined
  /** Pooled keep-alive connections at most (the sink passes its concurrency). Default Infinity. */
  maxSockets?: number | undefined
  /** Sent as `user-agent: audiosocket-soniox/<version>`. Default '0'. */
  version?: string | undefined
  /**
   * Wall clock (epoch ms) for the signature timestamp and Retry-After dates; its timers for the
   * request deadline (a setting, WEBHOOK_TIMEOUT_MS: a Clock takes any length). Default systemClock.
   */
  clock?: Clock | undefined
}

export type PostOutcome =
  | { kind: 'delivered'; status: number }
  | {
      kind: 'failed'
      /** 408, 429, 5xx, timeouts and network errors are worth another attempt; the rest is final. */
      retriable: boolean
      status?: number
      retryAfterMs?: number
      bodyExcerpt?: string
      err: AppError
    }
  /** Cancelled by abort() (shutdown): says nothing about the receiver. */
  | { kind: 'aborted' }

export type FailedPost = Extract<PostOutcome, { kind: 'failed' }>

export interface PostHandle {
  /** Resolves (never rejects) with the outcome. */
  readonly done: Promise<PostOutcome>
  abort(): void
}

/** Throws ERR_CONFIG_INVALID for a bad URL, secret, header or CA: configuration errors surface at start. */
export class WebhookTransport {
  readonly url: URL
  private readonly pool: Http1Pool
  private readonly secretKey: Buffer | undefined
  /** The request line and every header that is the same for all requests, rendered once. */
  private readonly headPrefix: string
  private readonly timeoutMs: number
  private readonly clock: Clock

  constructor(options: WebhookTransportOptions) {
    let url: URL
    try {
      url = new URL(options.url)
    } catch {
      // Without the parser's error as cause: it carries the whole URL (its `input`), password included.
      throw new AppError('ERR_CONFIG_INVALID', 'the webhook URL is not a valid absolute URL')
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new AppError('ERR_CONFIG_INVALID', `the webhook URL must be http: or https:, got ${url.protocol}`)
    }
    if (!(options.timeoutMs > 0)) {
      throw new AppError('ERR_CONFIG_INVALID', `webhook timeoutMs must be > 0, got ${options.timeoutMs}`)
    }
    this.url = url
    this.timeoutMs = options.timeoutMs
    const avr = options.format === 'avr'
    // AVR's secret is a shared password sent as it is, never a signing key: nothing to decode.
    this.secretKey = options.secret === undefined || avr ? undefined : decodeWebhookSecret(options.secret)
    this.clock = options.clock ?? systemClock

    // Keep-alive: a call produces a burst of small POSTs; reusing connections saves a handshake each.
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port)
    let tlsOptions: tls.ConnectionOptions | undefined
    if (url.protocol === 'https:') {
      tlsOptions = {}
      // SNI carries names only; the certificate is checked against the host either way.
      if (net.isIP(host) === 0) tlsOptions.servername = host
      if (options.ca !== undefined) {
        checkCertificates(options.ca)
        // Added to, not instead of, the bundled roots: a receiver behind a public CA keeps working.
        tlsOptions.ca = [...tls.rootCertificates, options.ca]
      }
    }
    this.pool = new Http1Pool({ host, port, tls: tlsOptions, maxSockets: options.maxSockets ?? Infinity })

    const fixedHeaders: Record<string, string> = {}
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      // The same rule WEBHOOK_HEADERS is checked by at start; the problem never quotes the value.
      const problem = webhookHeaderProblem(name, value)
      if (problem !== undefined) throw new AppError('ERR_CONFIG_INVALID', `webhook header: ${problem}`)
      fixedHeaders[name.toLowerCase()] = value
    }
    // user:password in the URL is basic auth, unless an explicit authorization header is configured.
    const auth = urlToHttpOptions(url).auth
    if (auth && fixedHeaders.authorization === undefined) {
      fixedHeaders.authorization = `Basic ${Buffer.from(auth, 'utf8').toString('base64')}`
    }
    if (avr && options.secret !== undefined) {
      // The same rule WEBHOOK_SECRET is checked by at start with WEBHOOK_FORMAT=avr; never quoted.
      if (webhookHeaderProblem(AVR_SECRET_HEADER, options.secret) !== undefined) {
        throw new AppError('ERR_CONFIG_INVALID', `the webhook secret is sent as the ${AVR_SECRET_HEADER} header, and a header value cannot hold control characters or line breaks`)
      }
      if (Object.keys(fixedHeaders).includes(AVR_SECRET_HEADER.toLowerCase())) {
        throw new AppError('ERR_CONFIG_INVALID', `webhook header: ${AVR_SECRET_HEADER} is sent from the webhook secret with the avr format`)
      }
      fixedHeaders[AVR_SECRET_HEADER] = options.secret
    }
    fixedHeaders['user-agent'] = `audiosocket-soniox/${options.version ?? '0'}`
    fixedHeaders['content-type'] = 'application/json'
    // Persistent is HTTP/1.1's default; saying so also keeps an HTTP/1.0 intermediary from closing.
    let headPrefix = `POST ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\nconnection: keep-alive\r\n`
    for (const [name, value] of Object.entries(fixedHeaders)) headPrefix += `${name}: ${value}\r\n`
    this.headPrefix = headPrefix
  }

  /**
   * POSTs `body` (the serialised envelope) for event `id`. For a 2xx the outcome is known once the
   * answer is known to be valid HTTP: at the end of its head, or for a chunked body at its last
   * chunk; for anything else once a body excerpt is read. The deadline covers the whole exchange,
   * so a stalled body cannot pin a pooled socket.
   */
  post(id: string, body: string): PostHandle {
    let abort: () => void = () => {}
    const done = new Promise<PostOutcome>((resolve) => {
      abort = this.attempt(id, body, false, resolve)
    })
    return { done, abort: () => abort() }
  }

  /** Closes pooled connections, idle or busy; a request still running fails (abort it first). */
  close(): void {
    this.pool.close()
  }

  /** Starts one request; returns its abort function. `resolve` is called exactly once. */
  private attempt(id: string, body: string, isStaleSocketRetry: boolean, resolve: (outcome: PostOutcome) => void): () => void {
    let settled = false
    let retryAbort: (() => void) | undefined
    const settle = (outcome: PostOutcome): void => {
      if (settled) return
      settled = true
      resolve(outcome)
    }

    /** Set when a 2xx arrives with a chunked body: delivered at its end, unless its framing proves invalid. */
    let deliveredStatus: number | undefined
    /** Set once a non-2xx status line arrived: whatever happens next, that status is the outcome. */
    let failure: { status: number; retryAfter: string | undefined; chunks: Buffer[]; kept: number } | undefined
    const finishFailure = (): void => {
      if (failure === undefined) return
      settle(classifyFailure(failure.status, failure.retryAfter, Buffer.concat(failure.chunks), this.clock.now()))
    }

    if (!HEADER_TOKEN.test(id)) {
      // The id becomes the webhook-id header; one that could break the request's framing (a dead-letter
      // file edited by hand) is refused here, as node:http refused invalid header values. Retrying cannot help.
      settle({ kind: 'failed', retriable: false, err: new AppError('ERR_WEBHOOK_NETWORK', `the webhook request could not be created: event id ${JSON.stringify(id.slice(0, 80))} is not a valid header value`) })
      return () => {}
    }
    // The deadline covers the whole exchange, body included, so a stalled body cannot pin a connection.
    let deadline: ClockTimer | undefined
    const exchange: Exchange = this.pool.request(this.requestHead(id, body), body, {
      onHead: ({ status, headers, framing }) => {
        if (status >= 200 && status < 300) {
          // The head is valid (the parser checked it whole). Only a chunked body can still break
          // HTTP (a bad chunk size), which node:http refuses too: such a 2xx waits for its end. The
          // rest of any body is read (and discarded) by the pool.
          if (framing === 'chunked') deliveredStatus = status
          else settle({ kind: 'delivered', status })
          return
        }
        failure = { status, retryAfter: headers.get('retry-after'), chunks: [], kept: 0 }
      },
      onBody: (bytes) => {
        if (failure === undefined || failure.kept >= BODY_EXCERPT_BYTES) return
        // Copied: the bytes are a view of a socket chunk.
        const part = Buffer.from(bytes.subarray(0, BODY_EXCERPT_BYTES - failure.kept))
        failure.chunks.push(part)
        failure.kept += part.length
      },
      onEnd: () => {
        this.clock.clearTimeout(deadline)
        if (deliveredStatus !== undefined) settle({ kind: 'delivered', status: deliveredStatus })
        finishFailure()
      },
      onError: (error, { reusedSocket, responseStarted }) => {
        this.clock.clearTimeout(deadline)
        if (settled) return
        if (failure !== undefined) {
          // A body that stalled or broke after the status line: the status still decides.
          finishFailure()
          return
        }
        // A pooled keep-alive connection the server closed while idle fails before any answer; that
        // says nothing about the receiver, so resend once on a new connection without counting an
        // attempt. At worst the receiver got the first copy too: the same id, which it deduplicates.
        const connectionLost = !isAppError(error) || error.code === 'ERR_WEBHOOK_NETWORK'
        if (reusedSocket && !responseStarted && !isStaleSocketRetry && connectionLost) {
          settled = true
          retryAbort = this.attempt(id, body, true, resolve)
          return
        }
        if (isAppError(error) && error.code === 'ERR_WEBHOOK_TIMEOUT') {
          settle({ kind: 'failed', retriable: true, err: error })
          return
        }
        if (error instanceof HttpProtocolError) {
          // The receiver answered, but not in HTTP that node:http would accept: worth another attempt
          // (a proxy or receiver being redeployed), on a new connection (the pool dropped this one).
          settle({ kind: 'failed', retriable: true, err: new AppError('ERR_WEBHOOK_PROTOCOL', undefined, { cause: error }) })
          return
        }
        // The cause's message ("connect ECONNREFUSED ...") is appended by pino's err serializer.
        settle({ kind: 'failed', retriable: true, err: new AppError('ERR_WEBHOOK_NETWORK', undefined, { cause: error }) })
      },
    }, { fresh: isStaleSocketRetry })
    deadline = this.clock.setTimeout(() => {
      exchange.cancel(new AppError('ERR_WEBHOOK_TIMEOUT', `no response within ${this.timeoutMs} ms`))
    }, this.timeoutMs)

    return () => {
      if (retryAbort) {
        retryAbort()
        return
      }
      this.clock.clearTimeout(deadline)
      settle({ kind: 'aborted' })
      exchange.cancel()
    }
  }

  /** The request line and headers for one attempt, ending in the empty line. */
  private requestHead(id: string, body: string): string {
    let head = `${this.headPrefix}content-length: ${Buffer.byteLength(body, 'utf8')}\r\n`
    if (this.secretKey) {
      // Refreshed per attempt: receivers reject timestamps older than a few minutes.
      const signature = webhookHeaders(this.secretKey, id, Math.floor(this.clock.now() / 1000), body)
      head += `webhook-id: ${signature['webhook-id']}\r\nwebhook-timestamp: ${signature['webhook-timestamp']}\r\nwebhook-signature: ${signature['webhook-signature']}\r\n`
    }
    return `${head}\r\n`
  }
}

/**
 * Node accepts any string as `ca` and only fails at the first handshake, with an unrelated-looking
 * certificate error. Parse every certificate now so a wrong file is reported at start.
 */
function checkCertificates(ca: string | Buffer): void {
  const blocks = pemCertificates(ca.toString('latin1'))
  if (blocks.length === 0) throw new AppError('ERR_CONFIG_INVALID', 'the webhook CA holds no PEM certificate')
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block)
    } catch (cause) {
      throw new AppError('ERR_CONFIG_INVALID', `certificate ${index + 1} of the webhook CA cannot be parsed`, { cause })
    }
  }
}

/** A non-2xx answer: 408, 429 and 5xx are worth retrying; anything else (3xx, other 4xx) is final. */
function classifyFailure(status: number, retryAfter: string | undefined, excerpt: Buffer, nowMs: number): FailedPost {
  const retriable = status === 408 || status === 429 || status >= 500
  const err = new AppError('ERR_WEBHOOK_STATUS', `the webhook answered ${status}`)
  const outcome: FailedPost = { kind: 'failed', retriable, status, err }
  if (excerpt.length > 0) outcome.bodyExcerpt = excerpt.toString('utf8')
  if (RETRY_AFTER_STATUSES.has(status)) {
    const retryAfterMs = parseRetryAfter(retryAfter, nowMs)
    if (retryAfterMs !== undefined) outcome.retryAfterMs = retryAfterMs
  }
  return outcome
}

/** `Retry-After` as delay-seconds or an HTTP date, in milliseconds from now; undefined if unusable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  // Every HTTP-date form starts with a day name; without this check V8 would read "-5" as a year.
  if (!/^[A-Za-z]{3}/.test(trimmed)) return undefined
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs)
}
