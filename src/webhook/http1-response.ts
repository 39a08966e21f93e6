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
 * - Content-Length (one value, or the same value repeated): exactly that many bytes.
 * - Neither: the body runs until the server closes.
 * Anything that cannot be framed with certainty (a bad status line, a bad or conflicting length, a
 * bad chunk size, a head over MAX_HEAD_BYTES, 101) is a protocol error, and the connection is
 * never reused after one.
 */

/** Status line plus headers; a receiver sending more is broken. Node's own default is 16 KB. */
export const MAX_HEAD_BYTES = 16 * 1024

/** A chunk-size line, with room for chunk extensions. */
const MAX_CHUNK_LINE_BYTES = 1024

export interface ResponseHead {
  status: number
  /** Lowercase names; repeated headers joined with ", " (RFC 9110 §5.3). */
  headers: Map<string, string>
}

export interface ResponseHandler {
  /** The final (non-1xx) status line and headers. */
  onHead(head: ResponseHead): void
  /** Body bytes, de-chunked. Views of the fed chunk or copies: use them at once. */
  onBody(bytes: Buffer): void
  /** The response is complete; `reusable` says whether the connection may carry the next request. */
  onEnd(reusable: boolean): void
}

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-data-end' | 'trailers' | 'until-close' | 'done' | 'failed'

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const DIGITS = /^\d+$/
const CHUNK_SIZE = /^([0-9A-Fa-f]+)[ \t]*(?:;.*)?$/

export class ResponseParser {
  private state: State = 'head'
  /** The current line's bytes so far, latin1: header bytes are octets. */
  private pending = ''
  /** Complete lines of the head (or trailer section) being read, and their size with line ends. */
  private sectionLines: string[] = []
  private sectionBytes = 0
  private remaining = 0
  private keepAlive = false
  private errorValue: Error | null = null
  private startedValue = false

  constructor(private readonly handler: ResponseHandler) {}

  /** The protocol error that stopped the parser, or null. */
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
        case 'chunk-data-end':
          // The CRLF after a chunk's data, read as a line that must be empty.
          offset = this.readLine(chunk, offset)
          break
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
    return this.fail(this.started ? 'the connection closed in the middle of the response' : 'the connection closed before any response')
  }

  /** Accumulates one CRLF-terminated line of the current state, then acts on it. */
  private readLine(chunk: Buffer, offset: number): number {
    const lf = chunk.indexOf(0x0a, offset)
    const upTo = lf === -1 ? chunk.length : lf + 1
    this.pending += chunk.toString('latin1', offset, upTo)
    const inSection = this.state === 'head' || this.state === 'trailers'
    const limit = inSection ? MAX_HEAD_BYTES : MAX_CHUNK_LINE_BYTES
    if ((inSection ? this.sectionBytes : 0) + this.pending.length > limit) {
      const what = this.state === 'head' ? 'head' : this.state === 'trailers' ? 'trailer section' : 'chunk framing line'
      this.fail(`the response ${what} is larger than ${limit} bytes`)
      return upTo
    }
    if (lf === -1) return upTo
    switch (this.state) {
      case 'head':
      case 'trailers': {
        this.sectionBytes += this.pending.length
        const line = this.takeLine()
        if (line !== '') {
          this.sectionLines.push(line)
          break
        }
        // A stray empty line before the status line is tolerated (RFC 9112 §2.2).
        if (this.state === 'head' && this.sectionLines.length === 0) break
        const lines = this.sectionLines
        this.sectionLines = []
        this.sectionBytes = 0
        // Trailer fields are not used: the empty line ends the message.
        if (this.state === 'head') this.onHead(lines)
        else this.finish(this.keepAlive)
        break
      }
      case 'chunk-size': {
        const line = this.takeLine()
        const match = CHUNK_SIZE.exec(line)
        if (match === null || (match[1] as string).length > 8) {
          this.fail(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`)
          break
        }
        const size = Number.parseInt(match[1] as string, 16)
        if (size === 0) {
          this.state = 'trailers'
        } else {
          this.remaining = size
          this.state = 'chunk-data'
        }
        break
      }
      case 'chunk-data-end':
        if (this.takeLine() !== '') this.fail('chunk data is longer than its size')
        else this.state = 'chunk-size'
        break
    }
    return upTo
  }

  private takeLine(): string {
    const line = this.pending.endsWith('\r\n') ? this.pending.slice(0, -2) : this.pending.slice(0, -1)
    this.pending = ''
    return line
  }

  /** `lines`: the status line and the header lines, without line ends. */
  private onHead(lines: string[]): void {
    const statusLine = lines.shift() ?? ''
    const status = STATUS_LINE.exec(statusLine)
    if (status === null) {
      this.fail(`not an HTTP/1.x status line: ${JSON.stringify(statusLine.slice(0, 60))}`)
      return
    }
    const minorVersion = Number(status[1])
    const code = Number(status[2])
    const headers = new Map<string, string>()
    for (const line of lines) {
      if (line.startsWith(' ') || line.startsWith('\t')) {
        this.fail('obsolete line folding in the response head')
        return
      }
      const colon = line.indexOf(':')
      const name = colon > 0 ? line.slice(0, colon) : ''
      if (!HEADER_NAME.test(name)) {
        this.fail(`bad header line ${JSON.stringify(line.slice(0, 60))}`)
        return
      }
      const key = name.toLowerCase()
      const value = line.slice(colon + 1).trim()
      const earlier = headers.get(key)
      headers.set(key, earlier === undefined ? value : `${earlier}, ${value}`)
    }

    if (code === 101) {
      this.fail('the receiver switched protocols (101), which was not asked for')
      return
    }
    if (code >= 100 && code < 200) return // interim: the final response follows

    const connection = (headers.get('connection') ?? '').toLowerCase().split(',').map((token) => token.trim())
    this.keepAlive = minorVersion === 1 ? !connection.includes('close') : connection.includes('keep-alive')
    this.handler.onHead({ status: code, headers })
    if (this.state === 'failed') return

    const transferEncoding = headers.get('transfer-encoding')
    const contentLength = headers.get('content-length')
    if (code === 204 || code === 304) {
      this.finish(this.keepAlive)
    } else if (transferEncoding !== undefined) {
      const codings = transferEncoding.toLowerCase().split(',').map((coding) => coding.trim())
      if (codings[codings.length - 1] === 'chunked') {
        this.state = 'chunk-size'
        // With both headers the length is not to be trusted for the next response (RFC 9112 §6.3).
        if (contentLength !== undefined) this.keepAlive = false
      } else {
        this.untilClose()
      }
    } else if (contentLength !== undefined) {
      const values = new Set(contentLength.split(',').map((value) => value.trim()))
      const [only] = values
      if (values.size !== 1 || only === undefined || !DIGITS.test(only) || only.length > 15) {
        this.fail(`bad Content-Length ${JSON.stringify(contentLength.slice(0, 40))}`)
        return
      }
      this.remaining = Number(only)
      if (this.remaining === 0) this.finish(this.keepAlive)
      else this.state = 'length'
    } else {
      this.untilClose()
    }
  }

  private untilClose(): void {
    this.keepAlive = false
    this.state = 'until-close'
  }

  private finish(reusable: boolean): void {
    this.state = 'done'
    this.handler.onEnd(reusable)
  }

  private fail(message: string): false {
    this.state = 'failed'
    this.errorValue = new Error(message)
    return false
  }
}
