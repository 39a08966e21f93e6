/**
 * Incremental parser of one HTTP/1.1 response (RFC 9112), for the webhook client: the status, the
 * headers, the body as it arrives, and whether the connection may carry another request.
 *
 * Framing (RFC 9112 §6.3), which decides where this response ends and so whether a connection can
 * be reused without ever attributing one response's bytes to the next request:
 * - 1xx (not 101) are interim: skipped, the final response follows on the same stream.
 * - 204 and 304 have no body.
 * - Transfer-Encoding ending in `chunked`: chunked body, trailers skipped. Any other
 *   Transfer-Encoding: the body runs until the server closes.
 * - Content-Length: exactly that many bytes.
 * - Neither: the body runs until the server closes.
 *
 * What it refuses is what Node's own parser (llhttp, strict as Node runs it by default) refuses, so
 * that an answer counts here as it would with node:http (each rule was checked against node:http):
 * - A line that does not end in CRLF (a bare LF), or a CR anywhere else. CR and LF bytes before a
 *   status line are skipped.
 * - A status line other than `HTTP/1.0` or `HTTP/1.1`, a space, three digits, then a space and a
 *   reason or the end of the line (llhttp also takes HTTP/0.9 and 2.0; not a receiver we can talk to).
 *   An answer whose first bytes cannot begin one fails at once, not when its first line ends.
 * - A header (or trailer) name that is not a token or is followed by anything but the colon; a value
 *   holding a control character other than HTAB (NUL, a lone CR, DEL); obsolete line folding.
 * - Content-Length that is not plain digits (a sign, a list, a tab), that appears twice (even with
 *   the same value), that is over 2^53-1, or that comes with Transfer-Encoding (in either order);
 *   Content-Length in the trailers.
 * - A chunk size that is not hex digits (whitespace, a sign, 0x) or is over 2^53-1; chunk extensions
 *   (`;name=value`, `;name="quoted"`) are allowed, without whitespace, as llhttp allows them.
 * - Chunk data not followed by CRLF; 101; a head or trailer section over MAX_HEAD_BYTES.
 * Each is an HttpProtocolError, and the connection is never reused after one.
 */
import { AppError } from '../shared/errors.js'

/** Status line plus headers; a receiver sending more is broken. Node's own default is 16 KB. */
export const MAX_HEAD_BYTES = 16 * 1024

/** A chunk-size line, with room for chunk extensions. */
const MAX_CHUNK_LINE_BYTES = 1024

/** How the body is delimited. Only a chunked body carries framing of its own, which may still prove invalid after the head. */
export type BodyFraming = 'none' | 'length' | 'chunked' | 'close'

export interface ResponseHead {
  status: number
  /** Lowercase names; repeated headers joined with ", " (RFC 9110 §5.3). */
  headers: Map<string, string>
  framing: BodyFraming
}

export interface ResponseHandler {
  /** The final (non-1xx) status line and headers, once the whole head is known to be valid. */
  onHead(head: ResponseHead): void
  /** Body bytes, de-chunked. Views of the fed chunk or copies: use them at once. */
  onBody(bytes: Buffer): void
  /** The response is complete; `reusable` says whether the connection may carry the next request. */
  onEnd(reusable: boolean): void
}

/**
 * The answer broke HTTP/1.1 (as opposed to the connection ending early): the receiver is not
 * speaking HTTP/1.1 as node:http would accept it.
 */
export class HttpProtocolError extends Error {
  override name = 'HttpProtocolError'
}

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-data-end' | 'trailers' | 'until-close' | 'done' | 'failed'

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]"
const HEADER_NAME = new RegExp(`^${TOKEN}+$`)
/** Control characters a field value must not hold: all but HTAB, DEL included. */
const FIELD_VALUE_CTL = /[\x00-\x08\x0a-\x1f\x7f]/
const DIGITS = /^\d+$/
/** RFC 9112 §7.1.1 without whitespace, as llhttp reads it (a name, or a value, may be empty; not both). */
const QUOTED = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*"'
const CHUNK_EXT = `;(?:${TOKEN}+(?:=(?:${TOKEN}*|${QUOTED}))?|=(?:${TOKEN}*|${QUOTED}))`
const CHUNK_SIZE_LINE = new RegExp(`^([0-9A-Fa-f]+)(?:${CHUNK_EXT})*$`)

/** The status line's first bytes: "HTTP/1.", the minor version, a space, three digits, then a space or the line's CR. */
const STATUS_PREFIX_LENGTH = 13

export class ResponseParser {
  private state: State = 'head'
  /** The current line's bytes so far, latin1: header bytes are octets. */
  private pending = ''
  /** Bytes of the head (or trailer section) read so far, line ends included. */
  private sectionBytes = 0
  /** The status line of the head being read; -1 until it has arrived. */
  private status = -1
  private minorVersion = 1
  private headers = new Map<string, string>()
  private remaining = 0
  private keepAlive = false
  private errorValue: Error | null = null
  private startedValue = false

  constructor(private readonly handler: ResponseHandler) {}

  /** What stopped the parser (an HttpProtocolError, or an Error for a connection cut short), or null. */
  get error(): Error | null {
    return this.errorValue
  }

  /** True once some byte of the response has arrived (a stale keep-alive socket fails before this). */
  get started(): boolean {
    return this.startedValue
  }

  /**
   * Feeds bytes from the connection. Returns false on a protocol error (see `error`), and also if
   * bytes arrive after the response ended: a server that sends them is out of step with us.
   */
  feed(chunk: Buffer): boolean {
    if (chunk.length > 0) this.startedValue = true
    let offset = 0
    while (offset < chunk.length) {
      switch (this.state) {
        case 'head':
        case 'chunk-size':
        case 'chunk-data-end': // the CRLF after a chunk's data, read as a line that must be empty
        case 'trailers':
          offset = this.readLine(chunk, offset)
          break
        case 'length':
        case 'chunk-data': {
          const n = Math.min(this.remaining, chunk.length - offset)
          this.handler.onBody(chunk.subarray(offset, offset + n))
          this.remaining -= n
          offset += n
          if (this.remaining === 0) {
            if (this.state === 'length') this.finish(this.keepAlive)
            else this.state = 'chunk-data-end'
          }
          break
        }
        case 'until-close':
          this.handler.onBody(chunk.subarray(offset))
          offset = chunk.length
          break
        case 'done':
          return this.fail('the receiver sent bytes after its response ended')
        case 'failed':
          return false
      }
      if ((this.state as State) === 'failed') return false
    }
    return true
  }

  /**
   * The server closed the connection. A body delimited by the close ends here; anywhere else the
   * response was cut short. Returns false (with `error` set) in that case.
   */
  end(): boolean {
    if (this.state === 'until-close') {
      this.finish(false)
      return true
    }
    if (this.state === 'done' || this.state === 'failed') return this.state === 'done'
    this.state = 'failed'
    // Not a protocol error: the connection ended, which says nothing about what the receiver sent.
    this.errorValue = new AppError('ERR_WEBHOOK_NETWORK', this.started ? 'the connection closed in the middle of the response' : 'the connection closed before any response')
    return false
  }

  /** Accumulates one CRLF-terminated line of the current state, then acts on it. */
  private readLine(chunk: Buffer, offset: number): number {
    const inSection = this.state === 'head' || this.state === 'trailers'
    if (this.state === 'head' && this.status === -1 && this.pending === '') {
      // Empty lines before a status line are skipped (RFC 9112 §2.2), bare CR or LF included as llhttp does.
      const start = offset
      while (offset < chunk.length && (chunk[offset] === 0x0d || chunk[offset] === 0x0a)) offset++
      this.sectionBytes += offset - start
      if (!this.withinLimit(inSection) || offset === chunk.length) return offset
    }
    const lf = chunk.indexOf(0x0a, offset)
    const upTo = lf === -1 ? chunk.length : lf + 1
    const before = this.pending.length
    this.pending += chunk.toString('latin1', offset, upTo)
    if (!this.withinLimit(inSection)) return upTo
    // A CR is allowed only right before the LF that ends the line (the line holds no LF before its end).
    const cr = this.pending.indexOf('\r', Math.max(0, before - 1))
    if (cr !== -1 && cr + 1 < this.pending.length && this.pending.charCodeAt(cr + 1) !== 0x0a) {
      this.fail('a CR not followed by LF in the response')
      return upTo
    }
    if (lf === -1) {
      this.checkIncompleteLine()
      return upTo
    }
    if (this.pending.length < 2 || this.pending.charCodeAt(this.pending.length - 2) !== 0x0d) {
      this.fail('a line of the response ends in a bare LF (HTTP/1.1 requires CRLF)')
      return upTo
    }
    const line = this.pending.slice(0, -2)
    this.pending = ''
    switch (this.state) {
      case 'head':
        this.sectionBytes += line.length + 2
        if (this.status === -1) this.onStatusLine(line)
        else if (line !== '') this.onHeaderLine(line)
        else this.onHeadEnd()
        break
      case 'trailers':
        this.sectionBytes += line.length + 2
        if (line !== '') {
          // Trailer fields are not used, but are held to the same rules as header fields.
          const field = parseField(line)
          if (typeof field === 'string') this.fail(field)
          else if (field[0] === 'content-length') this.fail('Content-Length in the trailers of a chunked response')
        } else {
          this.finish(this.keepAlive)
        }
        break
      case 'chunk-size':
        this.onChunkSizeLine(line)
        break
      case 'chunk-data-end':
        if (line !== '') this.fail('chunk data is longer than its size')
        else this.state = 'chunk-size'
        break
    }
    return upTo
  }

  /** False (and failed) once the line being read, with its section so far, is over its bound. */
  private withinLimit(inSection: boolean): boolean {
    const limit = inSection ? MAX_HEAD_BYTES : MAX_CHUNK_LINE_BYTES
    if ((inSection ? this.sectionBytes : 0) + this.pending.length <= limit) return true
    const what = this.state === 'head' ? 'head' : this.state === 'trailers' ? 'trailer section' : 'chunk framing line'
    this.fail(`the response ${what} is larger than ${limit} bytes`)
    return false
  }

  /**
   * Fails now what cannot become a valid line whatever follows, rather than waiting for the line's
   * end: a non-HTTP service may never send a LF, and would hold the request until its timeout.
   */
  private checkIncompleteLine(): void {
    if (this.state === 'head' && this.status === -1 && !canBeginStatusLine(this.pending)) this.failStatusLine(this.pending)
    else if (this.state === 'chunk-data-end' && !'\r\n'.startsWith(this.pending)) this.fail('chunk data is longer than its size')
  }

  private onStatusLine(line: string): void {
    const match = STATUS_LINE.exec(line)
    if (match === null) {
      this.failStatusLine(line)
      return
    }
    this.minorVersion = Number(match[1])
    this.status = Number(match[2])
    this.headers = new Map()
  }

  private failStatusLine(text: string): void {
    this.fail(`not an HTTP/1.x status line: ${JSON.stringify(text.slice(0, 60))}`)
  }

  private onHeaderLine(line: string): void {
    const field = parseField(line)
    if (typeof field === 'string') {
      this.fail(field)
      return
    }
    const [key, value] = field
    const earlier = this.headers.get(key)
    if (earlier !== undefined && key === 'content-length') {
      // llhttp refuses a repeat even of the same value: two lengths are a smuggling attempt or a bug.
      this.fail('more than one Content-Length')
      return
    }
    this.headers.set(key, earlier === undefined ? value : `${earlier}, ${value}`)
  }

  private onHeadEnd(): void {
    const { status, minorVersion, headers } = this
    this.status = -1
    this.sectionBytes = 0
    // Framing headers are checked on every head, 1xx and 204/304 included, as llhttp does.
    const transferEncoding = headers.get('transfer-encoding')
    const contentLength = headers.get('content-length')
    if (transferEncoding !== undefined && contentLength !== undefined) {
      this.fail('both Content-Length and Transfer-Encoding (the length cannot be trusted)')
      return
    }
    const length = contentLength === undefined ? 0 : DIGITS.test(contentLength) ? Number(contentLength) : Number.NaN
    if (!Number.isSafeInteger(length)) {
      this.fail(`bad Content-Length ${JSON.stringify((contentLength ?? '').slice(0, 40))}`)
      return
    }

    if (status === 101) {
      this.fail('the receiver switched protocols (101), which was not asked for')
      return
    }
    if (status >= 100 && status < 200) return // interim: the final response follows

    const connection = (headers.get('connection') ?? '').toLowerCase().split(',').map((token) => token.trim())
    this.keepAlive = minorVersion === 1 ? !connection.includes('close') : connection.includes('keep-alive')
    let framing: BodyFraming
    if (status === 204 || status === 304) framing = 'none'
    else if (transferEncoding !== undefined) framing = lastCoding(transferEncoding) === 'chunked' ? 'chunked' : 'close'
    else if (contentLength !== undefined) framing = 'length'
    else framing = 'close'
    if (framing === 'close') this.keepAlive = false

    this.handler.onHead({ status, headers, framing })
    if ((this.state as State) === 'failed') return
    switch (framing) {
      case 'none':
        this.finish(this.keepAlive)
        break
      case 'length':
        this.remaining = length
        if (length === 0) this.finish(this.keepAlive)
        else this.state = 'length'
        break
      case 'chunked':
        this.state = 'chunk-size'
        break
      case 'close':
        this.state = 'until-close'
        break
    }
  }

  private onChunkSizeLine(line: string): void {
    const match = CHUNK_SIZE_LINE.exec(line)
    const size = match === null ? Number.NaN : Number.parseInt(match[1] as string, 16)
    if (!Number.isSafeInteger(size)) {
      this.fail(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`)
      return
    }
    if (size === 0) {
      this.state = 'trailers'
    } else {
      this.remaining = size
      this.state = 'chunk-data'
    }
  }

  private finish(reusable: boolean): void {
    this.state = 'done'
    this.handler.onEnd(reusable)
  }

  private fail(message: string): false {
    this.state = 'failed'
    this.errorValue = new HttpProtocolError(message)
    return false
  }
}

/** Whether `text` (part of a first line, no LF) can still begin a status line STATUS_LINE accepts. */
function canBeginStatusLine(text: string): boolean {
  const n = Math.min(text.length, STATUS_PREFIX_LENGTH)
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    const ok =
      i < 7 ? c === 'HTTP/1.'.charCodeAt(i)
      : i === 7 ? c === 0x30 || c === 0x31
      : i === 8 ? c === 0x20
      : i < 12 ? c >= 0x30 && c <= 0x39
      : c === 0x20 || c === 0x0d
    if (!ok) return false
  }
  return true
}

/** A header or trailer line (no line end) as [lowercase name, value without surrounding SP/HTAB], or what is wrong with it. */
function parseField(line: string): [string, string] | string {
  const first = line.charCodeAt(0)
  if (first === 0x20 || first === 0x09) return 'obsolete line folding in the response head'
  const colon = line.indexOf(':')
  const name = colon > 0 ? line.slice(0, colon) : ''
  if (!HEADER_NAME.test(name)) return `bad header line ${JSON.stringify(line.slice(0, 60))}`
  let start = colon + 1
  let end = line.length
  while (start < end && (line.charCodeAt(start) === 0x20 || line.charCodeAt(start) === 0x09)) start++
  while (end > start && (line.charCodeAt(end - 1) === 0x20 || line.charCodeAt(end - 1) === 0x09)) end--
  const value = line.slice(start, end)
  if (FIELD_VALUE_CTL.test(value)) return `a control character in the value of the ${JSON.stringify(name.slice(0, 40))} header`
  return [name.toLowerCase(), value]
}

/** The last transfer coding named, lowercase. */
function lastCoding(transferEncoding: string): string {
  const comma = transferEncoding.lastIndexOf(',')
  return transferEncoding.slice(comma + 1).replace(/^[ \t]+|[ \t]+$/g, '').toLowerCase()
}
