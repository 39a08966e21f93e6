import t, { type Test } from 'tap'
import { MAX_HEAD_BYTES, ResponseParser, type ResponseHead } from '../../src/webhook/http1-response.js'

interface Parsed {
  heads: Array<{ status: number; headers: Record<string, string> }>
  body: string
  ended: boolean
  reusable: boolean | undefined
  error: string | undefined
}

/** Feeds `pieces` in order (then end() if `close`), recording everything the handler hears. */
function parse(pieces: Buffer[], close = false): Parsed {
  const out: Parsed = { heads: [], body: '', ended: false, reusable: undefined, error: undefined }
  const parser = new ResponseParser({
    onHead: (head: ResponseHead) => out.heads.push({ status: head.status, headers: Object.fromEntries(head.headers) }),
    onBody: (bytes) => (out.body += bytes.toString('latin1')),
    onEnd: (reusable) => {
      out.ended = true
      out.reusable = reusable
    },
  })
  for (const piece of pieces) {
    if (!parser.feed(piece)) break
  }
  if (close && parser.error === null) parser.end()
  out.error = parser.error?.message
  return out
}

/** The same response fed whole, then split in two at every byte: all must agree. */
function parseAllSplits(t: Test, text: string, close = false): Parsed {
  const bytes = Buffer.from(text, 'latin1')
  const whole = parse([bytes], close)
  const differing: number[] = []
  for (let i = 1; i < bytes.length; i++) {
    const split = parse([bytes.subarray(0, i), bytes.subarray(i)], close)
    if (JSON.stringify(split) !== JSON.stringify(whole)) differing.push(i)
  }
  t.same(differing, [], `all ${bytes.length - 1} two-piece splits parse as the whole does`)
  return whole
}

t.test('Content-Length body; the connection is reusable', async (t) => {
  const got = parseAllSplits(t, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello')
  t.same(got.heads, [{ status: 200, headers: { 'content-type': 'text/plain', 'content-length': '5', 'x-a': '1, 2' } }], 'names lowercased, repeats joined')
  t.equal(got.body, 'hello')
  t.same([got.ended, got.reusable, got.error], [true, true, undefined])
})

t.test('chunked body with extensions and trailers', async (t) => {
  const got = parseAllSplits(t, 'HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n')
  t.equal(got.heads[0]?.status, 400)
  t.equal(got.body, 'hello, world', 'de-chunked')
  t.same([got.ended, got.reusable], [true, true])
})

t.test('interim 1xx responses are skipped; 204 and 304 have no body', async (t) => {
  const got = parseAllSplits(t, 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n')
  t.same(got.heads.map((h) => h.status), [204], 'only the final status reaches the handler')
  t.same([got.ended, got.reusable, got.body], [true, true, ''])
  const notModified = parse([Buffer.from('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n')])
  t.same([notModified.ended, notModified.body], [true, ''], '304 ends at its head whatever Content-Length says')
})

t.test('when the connection may not carry the next request', async (t) => {
  t.equal(parse([Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')]).reusable, false, 'Connection: close')
  t.equal(parse([Buffer.from('HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n')]).reusable, false, 'close among other tokens')
  t.equal(parse([Buffer.from('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n')]).reusable, false, 'HTTP/1.0 without keep-alive')
  t.equal(parse([Buffer.from('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n')]).reusable, true, 'HTTP/1.0 with keep-alive')
  const both = parse([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2\r\nok\r\n0\r\n\r\n')])
  t.same([both.body, both.reusable], ['ok', false], 'chunked wins over Content-Length, and the connection is not trusted after')
})

t.test('a body without a length runs until the server closes', async (t) => {
  const got = parseAllSplits(t, 'HTTP/1.1 500 Internal Server Error\r\n\r\nsomething broke', true)
  t.same([got.body, got.ended, got.reusable], ['something broke', true, false])
  const gzip = parse([Buffer.from('HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: gzip\r\n\r\nxyz')], true)
  t.same([gzip.body, gzip.ended, gzip.reusable], ['xyz', true, false], 'a transfer coding other than chunked is read until the close')
  const open = parse([Buffer.from('HTTP/1.1 500 Internal Server Error\r\n\r\npartial')])
  t.equal(open.ended, false, 'not ended while the connection is open')
})

t.test('bare LF line endings and a stray empty line before the status line are accepted', async (t) => {
  const got = parse([Buffer.from('HTTP/1.1 201 Created\nContent-Length: 2\n\nok')])
  t.same([got.heads[0]?.status, got.body, got.ended], [201, 'ok', true])
  const stray = parseAllSplits(t, '\r\nHTTP/1.1 204 No Content\r\n\r\n')
  t.same([stray.heads[0]?.status, stray.ended, stray.error], [204, true, undefined])
})

t.test('anything that cannot be framed with certainty is an error', async (t) => {
  const cases: Array<[string, RegExp, boolean?]> = [
    ['SSH-2.0-OpenSSH\r\n\r\n', /not an HTTP\/1\.x status line/],
    ['HTTP/2 200\r\n\r\n', /not an HTTP\/1\.x status line/],
    ['HTTP/1.1 20 OK\r\n\r\n', /not an HTTP\/1\.x status line/],
    ['HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n', /switched protocols/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n', /bad Content-Length/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n', /bad Content-Length/],
    ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /bad Content-Length/],
    ['HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n', /line folding/],
    ['HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n', /bad header line/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /bad chunk size/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n', /longer than its size/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA', /bytes after its response ended/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok', /closed in the middle of the response/, true],
    ['', /closed before any response/, true],
  ]
  for (const [text, message, close] of cases) {
    const got = parse([Buffer.from(text, 'latin1')], close)
    t.match(got.error, message, JSON.stringify(text.slice(0, 50)))
  }
  const huge = parse([Buffer.from(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(MAX_HEAD_BYTES)}\r\n\r\n`)])
  t.match(huge.error, /head is larger than 16384 bytes/, 'a head over the limit')
  t.equal(huge.heads.length, 0)
  const manyTrailers = parse([Buffer.from(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n${'X-T: 0123456789\r\n'.repeat(1200)}\r\n`)])
  t.match(manyTrailers.error, /trailer section is larger than 16384 bytes/, 'many small trailer lines count together')
  t.equal(manyTrailers.ended, false)
})

t.test('started: a stale connection fails before any byte, a broken response after some', async (t) => {
  const parser = new ResponseParser({ onHead() {}, onBody() {}, onEnd() {} })
  t.equal(parser.started, false)
  t.equal(parser.end(), false)
  t.equal(parser.started, false, 'nothing arrived')
  const cut = new ResponseParser({ onHead() {}, onBody() {}, onEnd() {} })
  cut.feed(Buffer.from('HTTP/1.1 2'))
  t.equal(cut.started, true)
})
