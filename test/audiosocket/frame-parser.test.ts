import t from 'tap'
import { HEADER_LENGTH, Kind, MAX_PAYLOAD_LENGTH, sampleRateOfKind } from '../../src/audiosocket/constants.js'
import type { Frame } from '../../src/audiosocket/frame.js'
import { FrameParser, type FrameHandler } from '../../src/audiosocket/frame-parser.js'
import { AppError } from '../../src/shared/errors.js'
import { captureStems, chunk, frames, loadCapture, loadCaptureSummary, seededRandom } from '../support/frames.js'

function parseChunks(chunks: Buffer[], parser = new FrameParser()): Frame[] {
  const out: Frame[] = []
  for (const c of chunks) out.push(...parser.push(c))
  const violation = parser.end()
  if (violation !== null) throw violation
  return out
}

function payloadOf(frame: Frame): Buffer | undefined {
  return 'payload' in frame ? frame.payload : undefined
}

/**
 * Describes the first difference between two frame lists, or returns null. Hand-rolled instead of
 * t.same because the split tests compare tens of thousands of lists of ~800 frames each.
 */
function firstDifference(actual: Frame[], expected: Frame[]): string | null {
  if (actual.length !== expected.length) return `${actual.length} frames, expected ${expected.length}`
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as Frame
    const e = expected[i] as Frame
    const same =
      a.type === e.type &&
      ('kind' in a ? a.kind : -1) === ('kind' in e ? e.kind : -1) &&
      ('uuid' in a ? a.uuid : '') === ('uuid' in e ? e.uuid : '') &&
      ('digit' in a ? a.digit : '') === ('digit' in e ? e.digit : '') &&
      (payloadOf(a)?.equals(payloadOf(e) as Buffer) ?? payloadOf(e) === undefined)
    if (!same) return `frame ${i} differs`
  }
  return null
}

function kindAndLength(frame: Frame): { kind: number; length: number } {
  switch (frame.type) {
    case 'uuid':
      return { kind: Kind.Uuid, length: 16 }
    case 'dtmf':
      return { kind: Kind.Dtmf, length: 1 }
    case 'hangup':
      return { kind: Kind.Hangup, length: 0 }
    case 'error':
      return { kind: Kind.Error, length: frame.payload.length }
    default:
      return { kind: frame.kind, length: frame.payload.length }
  }
}


t.test('real Asterisk 22.10.1 captures', async (t) => {
  const stems = captureStems()
  t.ok(stems.length >= 5, 'all five captures are present')

  for (const stem of stems) {
    t.test(stem, async (t) => {
      const { bytes, frames: listed } = loadCapture(stem)
      const summary = loadCaptureSummary(stem)
      t.equal(bytes.length, summary.bytesReceived, '.bin has the byte count in .json')

      const parser = new FrameParser()
      const whole = parser.push(bytes)
      t.equal(parser.end(), null, 'nothing is left over at the end')
      t.equal(parser.bufferedBytes, 0)
      t.equal(parser.frameCount, listed.length, 'frameCount counts every frame')
      t.same(
        whole.map(kindAndLength),
        listed.map(({ kind, length }) => ({ kind, length })),
        'one push yields the frames in .frames.tsv',
      )
      t.same(whole[0], { type: 'uuid', uuid: summary.uuid }, 'the first frame is the UUID from .json')
      t.same(
        whole.flatMap((f) => (f.type === 'dtmf' ? [f.digit] : [])),
        summary.dtmf.map((d) => d.digit),
        'DTMF digits match .json',
      )
      t.ok(whole.slice(1).every((f) => f.type === 'audio' || f.type === 'dtmf'), 'only audio and DTMF after the UUID')

      // Every split point across the UUID and the first audio frames (at least 2000 bytes), then a
      // sample of the rest. The stride grows with the file so the 1.6 MB capture stays affordable.
      let prefixEnd = 0
      for (const f of listed.slice(0, 4)) prefixEnd += HEADER_LENGTH + f.length
      prefixEnd = Math.max(prefixEnd, 2000)
      const stride = bytes.length > 600_000 ? 997 : 97
      const failures: string[] = []
      let splits = 0
      for (let i = 1; i < bytes.length; i += i < prefixEnd ? 1 : stride) {
        splits++
        const diff = firstDifference(parseChunks([bytes.subarray(0, i), bytes.subarray(i)]), whole)
        if (diff !== null) failures.push(`split at ${i}: ${diff}`)
      }
      t.same(failures, [], `${splits} two-chunk splits all yield the same frames`)

      const random = seededRandom(0x5eed + bytes.length)
      for (const maxChunk of [7, 400, 5000]) {
        const chunks = chunk(bytes, () => 1 + Math.floor(random() * maxChunk))
        const diff = firstDifference(parseChunks(chunks), whole)
        t.equal(diff, null, `random chunks of 1-${maxChunk} bytes (${chunks.length} pushes)`)
      }
    })
  }

  t.test('app-8k-dtmf fed one byte at a time', async (t) => {
    const { bytes } = loadCapture('app-8k-dtmf')
    const expected = new FrameParser().push(bytes)
    const parser = new FrameParser()
    const got: Frame[] = []
    let maxBuffered = 0
    for (let i = 0; i < bytes.length; i++) {
      got.push(...parser.push(bytes.subarray(i, i + 1)))
      if (parser.bufferedBytes > maxBuffered) maxBuffered = parser.bufferedBytes
    }
    t.equal(parser.end(), null, 'ends on a frame boundary')
    t.equal(firstDifference(got, expected), null, `${bytes.length} one-byte pushes yield the same frames`)
    t.equal(maxBuffered, HEADER_LENGTH + 320 - 1, 'at most one unfinished 320-byte frame is ever held')
  })
})

t.test('coalesced and split synthetic streams', async (t) => {
  t.test('20,000 audio frames in one chunk', async (t) => {
    const one = frames.audio(Kind.Slin8, 320)
    const stream = Buffer.concat([frames.uuid('40325ec2-5efd-4bd3-805f-53576e581d13'), ...new Array<Buffer>(20_000).fill(one)])
    const parser = new FrameParser()
    const got = parser.push(stream)
    t.equal(got.length, 20_001)
    t.same(got[0], { type: 'uuid', uuid: '40325ec2-5efd-4bd3-805f-53576e581d13' })
    const expectedPayload = one.subarray(HEADER_LENGTH)
    const bad = got
      .slice(1)
      .findIndex((f) => f.type !== 'audio' || f.sampleRate !== 8000 || !f.payload.equals(expectedPayload))
    t.equal(bad, -1, 'every audio frame has the right rate and bytes')
    t.equal(parser.bufferedBytes, 0)
    t.equal(parser.frameCount, 20_001)
  })

  t.test('a 65535-byte payload, whole and split', async (t) => {
    const big = frames.audio(Kind.Slin48, MAX_PAYLOAD_LENGTH)
    const stream = Buffer.concat([big, frames.hangup()])
    const whole = new FrameParser().push(stream)
    t.equal(whole.length, 2)
    t.equal(payloadOf(whole[0] as Frame)?.length, MAX_PAYLOAD_LENGTH)
    t.ok(payloadOf(whole[0] as Frame)?.equals(big.subarray(HEADER_LENGTH)), 'payload bytes intact')
    for (const at of [1, 2, 3, 4, 1000, 65537, stream.length - 3, stream.length - 1]) {
      t.equal(firstDifference(parseChunks([stream.subarray(0, at), stream.subarray(at)]), whole), null, `split at ${at}`)
    }
  })

  t.test('every split point of a mixed stream, in two and three pieces', async (t) => {
    const stream = Buffer.concat([
      frames.uuid('e19e5fa9-ba02-4bac-a2bf-7aa12ec945df'),
      frames.audio(Kind.Slin16, 6),
      frames.raw(Kind.Slin16, []),
      frames.dtmf('#'),
      frames.raw(0x02, [1, 2, 3]),
      frames.hangup(),
      frames.raw(Kind.Error, [0x04]),
      frames.audio(Kind.Slin16, 5),
    ])
    const whole = new FrameParser().push(stream)
    t.same(
      whole.map((f) => f.type),
      ['uuid', 'audio', 'audio', 'dtmf', 'unknown', 'hangup', 'error', 'audio'],
    )
    const failures: string[] = []
    for (let i = 0; i <= stream.length; i++) {
      for (let j = i; j <= stream.length; j++) {
        const pieces = [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]
        const diff = firstDifference(parseChunks(pieces), whole)
        if (diff !== null) failures.push(`[${i}, ${j}]: ${diff}`)
      }
    }
    t.same(failures, [], 'every 3-piece cut (including empty pieces) yields the same frames')
  })

  t.test('an empty chunk is harmless anywhere', async (t) => {
    const parser = new FrameParser()
    t.same(parser.push(Buffer.alloc(0)), [])
    t.same(parser.push(frames.dtmf('1').subarray(0, 2)), [])
    t.same(parser.push(Buffer.alloc(0)), [])
    t.same(parser.push(frames.dtmf('1').subarray(2)), [{ type: 'dtmf', digit: '1' }])
  })
})

t.test('payload lengths and kinds that are valid frames', async (t) => {
  t.test('zero-length payloads', async (t) => {
    const got = new FrameParser().push(Buffer.concat([frames.raw(Kind.Slin8, []), frames.hangup(), frames.raw(0x7f, [])]))
    t.same(got, [
      { type: 'audio', kind: Kind.Slin8, sampleRate: 8000, payload: Buffer.alloc(0) },
      { type: 'hangup' },
      { type: 'unknown', kind: 0x7f, payload: Buffer.alloc(0) },
    ])
  })

  t.test('a zero-length frame whose header straddles chunks', async (t) => {
    const parser = new FrameParser()
    t.same(parser.push(Buffer.from([0x00, 0x00])), [])
    t.equal(parser.bufferedBytes, 2)
    t.same(parser.push(Buffer.from([0x00])), [{ type: 'hangup' }])
    t.equal(parser.bufferedBytes, 0)
  })

  t.test('odd-length audio', async (t) => {
    const odd = frames.audio(Kind.Slin16, 321)
    const [frame] = new FrameParser().push(odd)
    t.equal(frame?.type, 'audio')
    t.equal(payloadOf(frame as Frame)?.length, 321)
    t.ok(payloadOf(frame as Frame)?.equals(odd.subarray(HEADER_LENGTH)))
  })

  t.test('unknown kinds are skipped by length and returned as unknown', async (t) => {
    const got = new FrameParser().push(
      Buffer.concat([
        frames.audio(Kind.Slin8, 4),
        frames.raw(0x02, [0xaa, 0xbb]),
        frames.raw(0x7f, Buffer.alloc(300, 0x01)), // its bytes look like headers; must not resync on them
        frames.audio(Kind.Slin8, 2),
      ]),
    )
    t.same(
      got.map((f) => f.type),
      ['audio', 'unknown', 'unknown', 'audio'],
    )
    t.same(got[1], { type: 'unknown', kind: 0x02, payload: Buffer.from([0xaa, 0xbb]) })
    t.same(got[2], { type: 'unknown', kind: 0x7f, payload: Buffer.alloc(300, 0x01) })
    t.equal(payloadOf(got[3] as Frame)?.length, 2, 'the frame after them is found at the right offset')
  })

  t.test('0xff error frames with and without a code byte', async (t) => {
    const got = new FrameParser().push(
      Buffer.concat([frames.raw(Kind.Error, [0x04]), frames.raw(Kind.Error, []), frames.raw(Kind.Error, [0x02, 0x99])]),
    )
    t.same(got, [
      { type: 'error', code: 0x04, payload: Buffer.from([0x04]) },
      { type: 'error', code: undefined, payload: Buffer.alloc(0) },
      { type: 'error', code: 0x02, payload: Buffer.from([0x02, 0x99]) },
    ])
  })
})

/** Pushes one chunk and returns the frames it yielded and the violation it recorded, if any. */
function pushOnce(parser: FrameParser, chunk: Buffer): { frames: Frame[]; code: string | undefined } {
  const got = parser.push(chunk)
  return { frames: got, code: parser.error?.code }
}

t.test('framing violations', async (t) => {
  t.test('UUID frame of the wrong length', async (t) => {
    for (const n of [0, 15, 17]) {
      const parser = new FrameParser()
      const frame = frames.raw(Kind.Uuid, Buffer.alloc(n))
      t.equal(pushOnce(parser, frame).code, 'ERR_AUDIOSOCKET_BAD_UUID', `${n} bytes`)
    }
  })

  t.test('DTMF frame of the wrong length or with a bad digit', async (t) => {
    t.equal(pushOnce(new FrameParser(), frames.raw(Kind.Dtmf, [])).code, 'ERR_AUDIOSOCKET_BAD_DTMF', 'empty')
    t.equal(pushOnce(new FrameParser(), frames.dtmf('12')).code, 'ERR_AUDIOSOCKET_BAD_DTMF', 'two bytes')
    const x = new FrameParser()
    x.push(frames.dtmf('x'))
    t.match(x.error, { code: 'ERR_AUDIOSOCKET_BAD_DTMF', message: /0x78/ }, 'x names the byte')
    const a = new FrameParser()
    a.push(frames.dtmf('a'))
    t.match(a.error, { code: 'ERR_AUDIOSOCKET_BAD_DTMF', message: /0x61/ }, 'lowercase a')
  })

  t.test('a violation in a straddling frame is caught when the frame completes', async (t) => {
    const bad = frames.raw(Kind.Uuid, Buffer.alloc(3))
    const parser = new FrameParser()
    t.same(parser.push(bad.subarray(0, 4)), [])
    t.equal(parser.error, null, 'nothing wrong yet')
    t.equal(pushOnce(parser, bad.subarray(4)).code, 'ERR_AUDIOSOCKET_BAD_UUID')
  })

  t.test('frames before a violation in the same chunk are still returned', async (t) => {
    // TCP coalesces: the UUID frame and a bad frame can arrive in one chunk. The UUID must not be
    // lost with the bad frame, or the call could not even be named in the error report.
    const id = '40325ec2-5efd-4bd3-805f-53576e581d13'
    const parser = new FrameParser({ maxPayloadLength: 1024 })
    const { frames: got, code } = pushOnce(parser, Buffer.concat([frames.uuid(id), frames.audio(Kind.Slin8, 320), Buffer.from([Kind.Slin8, 0x08, 0x00])]))
    t.same(got.map((f) => f.type), ['uuid', 'audio'], 'the frames before the violation')
    t.match(got[0], { type: 'uuid', uuid: id })
    t.equal(code, 'ERR_AUDIOSOCKET_FRAME_TOO_LARGE')
  })

  t.test('FRAME_TOO_LARGE as soon as the header arrives', async (t) => {
    const parser = new FrameParser({ maxPayloadLength: 100 })
    t.same(parser.push(frames.audio(Kind.Slin8, 100)).length, 1, 'exactly the limit is fine')
    // Only the header of a 101-byte frame: no payload byte has been sent yet.
    t.same(parser.push(Buffer.from([Kind.Slin8, 0x00, 101])), [])
    t.match(parser.error, { code: 'ERR_AUDIOSOCKET_FRAME_TOO_LARGE', message: /kind 0x10 .*101-byte payload.*100-byte limit/ })
    t.equal(parser.bufferedBytes, 0, 'nothing of the oversized frame was buffered')

    const split = new FrameParser({ maxPayloadLength: 100 })
    t.same(split.push(Buffer.from([0x7f])), [], 'one header byte proves nothing yet')
    split.push(Buffer.from([0xff, 0xff]))
    t.match(split.error, { code: 'ERR_AUDIOSOCKET_FRAME_TOO_LARGE', message: /0x7f.*65535/ })
  })

  t.test('the parser is dead after an error', async (t) => {
    const parser = new FrameParser()
    const got = parser.push(Buffer.concat([frames.audio(Kind.Slin8, 4), frames.dtmf('?')]))
    t.equal(got.length, 1, 'the audio frame before the bad DTMF is returned')
    const first = parser.error
    t.ok(first instanceof AppError, 'the violation is recorded')
    for (const next of [frames.audio(Kind.Slin8, 4), Buffer.alloc(0)]) {
      t.same(parser.push(next), [], 'a later push delivers nothing, and does not throw')
      t.equal(parser.error, first, 'the very same error stays recorded')
    }
    t.equal(parser.end(), first, 'end() returns it too')
  })

  t.test('end() with a partial header', async (t) => {
    const parser = new FrameParser()
    parser.push(Buffer.concat([frames.audio(Kind.Slin8, 2), Buffer.from([Kind.Slin16, 0x02])]))
    t.equal(parser.bufferedBytes, 2)
    t.match(parser.end(), {
      code: 'ERR_AUDIOSOCKET_TRUNCATED',
      message: 'connection ended inside the header of a kind 0x12 frame: 2 of 3 header bytes received',
    })
    t.same(parser.push(frames.hangup()), [], 'dead afterwards')
    t.equal(parser.error?.code, 'ERR_AUDIOSOCKET_TRUNCATED', 'the violation stays recorded')
  })

  t.test('end() with a partial payload', async (t) => {
    const parser = new FrameParser()
    const frame = frames.audio(Kind.Slin8, 320)
    parser.push(frame.subarray(0, 100))
    parser.push(frame.subarray(100, 200))
    t.match(parser.end(), {
      code: 'ERR_AUDIOSOCKET_TRUNCATED',
      message: 'connection ended inside the payload of a kind 0x10 frame: 197 of 320 payload bytes received',
    })
  })

  t.test('end() on a clean boundary', async (t) => {
    const parser = new FrameParser()
    t.equal(parser.end(), null, 'nothing received')
    parser.push(frames.hangup())
    t.equal(parser.end(), null, 'after whole frames')
  })

  t.test('expectUuidFirst: the first header is judged byte by byte, at every split', async (t) => {
    const stream = Buffer.concat([frames.uuid('40325ec2-5efd-4bd3-805f-53576e581d13'), frames.audio(Kind.Slin8, 320)])
    for (let split = 0; split <= stream.length; split++) {
      const got = parseChunks([stream.subarray(0, split), stream.subarray(split)], new FrameParser({ expectUuidFirst: true }))
      if (got.length !== 2 || got[0]?.type !== 'uuid') t.fail(`split at ${split}: ${got.map((f) => f.type).join(',')}`)
    }
    t.pass('a UUID-first stream parses the same at every split')

    const http = new FrameParser({ expectUuidFirst: true })
    t.same(http.push(Buffer.from('G')), [], 'one byte is enough to know')
    t.match(http.error, { code: 'ERR_AUDIOSOCKET_FIRST_FRAME', message: 'the first frame has kind 0x47, not the UUID frame 0x01 (is this an AudioSocket peer?)' })

    const audioFirst = new FrameParser({ expectUuidFirst: true })
    t.same(audioFirst.push(frames.audio(Kind.Slin8, 320)), [], 'audio before the UUID is not delivered')
    t.match(audioFirst.error, { code: 'ERR_AUDIOSOCKET_FIRST_FRAME', message: /kind 0x10/ })

    const long = new FrameParser({ expectUuidFirst: true })
    long.push(Buffer.from([Kind.Uuid, 0x43]))
    t.equal(long.error, null, 'the length is judged once both of its bytes are in')
    long.push(Buffer.from([0x20, 0x2f]))
    t.match(long.error, { code: 'ERR_AUDIOSOCKET_BAD_UUID', message: 'the UUID frame announces 17184 bytes; a UUID is 16' })
    t.ok(long.bufferedBytes < HEADER_LENGTH, 'nothing of the announced payload was buffered')
    t.equal(long.end(), long.error, 'end() returns the violation')

    const later = new FrameParser({ expectUuidFirst: true })
    later.push(frames.uuid('40325ec2-5efd-4bd3-805f-53576e581d13'))
    t.same(later.push(frames.uuid('40325ec2-5efd-4bd3-805f-53576e581d13')).map((f) => f.type), ['uuid'], 'only the first frame is judged (a second UUID is the caller\'s to refuse)')
    t.same(new FrameParser().push(frames.audio(Kind.Slin8, 2)).length, 1, 'off by default')
  })

  t.test('maxPayloadLength is validated', async (t) => {
    for (const bad of [-1, 65536, 1.5, Number.NaN]) {
      t.throws(() => new FrameParser({ maxPayloadLength: bad }), RangeError, String(bad))
    }
    t.doesNotThrow(() => new FrameParser({ maxPayloadLength: 0 }))
  })
})

t.test('memory', async (t) => {
  t.test('bufferedBytes never exceeds HEADER_LENGTH + maxPayloadLength', async (t) => {
    const max = 500
    const random = seededRandom(42)
    const parts: Buffer[] = []
    for (let i = 0; i < 300; i++) parts.push(frames.audio(Kind.Slin8, Math.floor(random() * (max + 1))))
    const stream = Buffer.concat(parts)
    const parser = new FrameParser({ maxPayloadLength: max })
    let peak = 0
    let count = 0
    for (const c of chunk(stream, () => 1 + Math.floor(random() * 1500))) {
      count += parser.push(c).length
      peak = Math.max(peak, parser.bufferedBytes)
    }
    t.equal(count, 300)
    t.ok(peak <= HEADER_LENGTH + max, `peak ${peak}`)
    t.ok(peak > max / 2, 'the run did hold large partial frames, so the bound was exercised')
  })

  t.test('bufferedBytes tracks a straddling frame exactly', async (t) => {
    const big = frames.audio(Kind.Slin16, MAX_PAYLOAD_LENGTH)
    const parser = new FrameParser()
    parser.push(big.subarray(0, 1))
    t.equal(parser.bufferedBytes, 1)
    parser.push(big.subarray(1, 40_000))
    t.equal(parser.bufferedBytes, 40_000)
    parser.push(big.subarray(40_000, big.length - 1))
    t.equal(parser.bufferedBytes, HEADER_LENGTH + MAX_PAYLOAD_LENGTH - 1)
    t.equal(parser.push(big.subarray(big.length - 1)).length, 1)
    t.equal(parser.bufferedBytes, 0)
  })

  t.test('payloads handed out are never changed by later pushes', async (t) => {
    const stream = Buffer.concat([
      frames.audio(Kind.Slin8, 320, 0x11),
      frames.audio(Kind.Slin8, 320, 0x22),
      frames.audio(Kind.Slin8, 320, 0x33),
      frames.audio(Kind.Slin8, 320, 0x44),
    ])
    const parser = new FrameParser()
    // Cut inside the first frame and inside the second, so both the first and second are assembled.
    const held: Buffer[] = []
    for (const c of [stream.subarray(0, 200), stream.subarray(200, 500), stream.subarray(500, 700), stream.subarray(700)]) {
      for (const f of parser.push(c)) held.push(payloadOf(f) as Buffer)
    }
    t.equal(held.length, 4)
    t.same(
      held.map((p) => [p.length, p.every((b) => b === p[0]) ? p[0] : -1]),
      [
        [320, 0x11],
        [320, 0x22],
        [320, 0x33],
        [320, 0x44],
      ],
      'each payload still holds its own bytes after the later pushes',
    )
  })

  t.test('the unfinished tail is copied, not kept as a view of the caller chunk', async (t) => {
    // A socket with `onread` buffer reuse overwrites the chunk after each read.
    const frame = frames.audio(Kind.Slin8, 320, 0x55)
    const reused = Buffer.from(frame.subarray(0, 100))
    const parser = new FrameParser()
    t.same(parser.push(reused), [])
    reused.fill(0xee)
    const [got] = parser.push(frame.subarray(100))
    t.ok(payloadOf(got as Frame)?.equals(frame.subarray(HEADER_LENGTH)), 'payload has the original bytes')
  })

  t.test('a frame inside one chunk is a zero-copy view of it', async (t) => {
    const c = Buffer.concat([frames.audio(Kind.Slin8, 320), frames.audio(Kind.Slin8, 320)])
    const [first, second] = new FrameParser().push(c)
    t.equal(payloadOf(first as Frame)?.buffer, c.buffer, 'same backing memory')
    t.equal(payloadOf(second as Frame)?.byteOffset, c.byteOffset + 323 + HEADER_LENGTH)
  })
})

t.test('feed: frames to a handler, audio as arguments', async (t) => {
  /** Records every handler call, audio and the rest apart, in one ordered log. */
  function recordingHandler(): FrameHandler & { log: Array<[string, number, number]>; controlFrames: Frame[] } {
    const log: Array<[string, number, number]> = []
    const controlFrames: Frame[] = []
    return {
      log,
      controlFrames,
      onAudio(kind, sampleRate, payload) {
        log.push(['audio', kind, payload.length])
        if (sampleRate !== sampleRateOfKind(kind)) log.push(['wrong sample rate', kind, sampleRate])
      },
      onFrame(frame) {
        const { kind, length } = kindAndLength(frame)
        log.push([frame.type, kind, length])
        controlFrames.push(frame)
      },
    }
  }

  t.test('a real capture in random chunks: every frame, in order, audio never as an object', async (t) => {
    const { bytes, frames: listed } = loadCapture('app-8k-dtmf')
    const random = seededRandom(0xfeed)
    const parser = new FrameParser()
    const handler = recordingHandler()
    for (const piece of chunk(bytes, () => 1 + Math.floor(random() * 700))) parser.feed(piece, handler)
    t.equal(parser.end(), null, 'ends on a frame boundary')
    t.same(
      handler.log.map(([type, kind, length]) => ({ audio: type === 'audio', kind, length })),
      listed.map(({ kind, length }) => ({ audio: sampleRateOfKind(kind) !== undefined, kind, length })),
      'the handler heard the frames of .frames.tsv, audio through onAudio with its sample rate',
    )
    t.ok(handler.controlFrames.length >= 2 && handler.controlFrames.every((f) => f.type === 'uuid' || f.type === 'dtmf'), 'onFrame got the UUID and the digits')
    t.equal(parser.frameCount, listed.length)
  })

  t.test('after a violation the handler hears nothing more', async (t) => {
    const parser = new FrameParser()
    const handler = recordingHandler()
    parser.feed(Buffer.concat([frames.audio(Kind.Slin16, 640), frames.dtmf('?'), frames.audio(Kind.Slin16, 640)]), handler)
    t.same(handler.log, [['audio', Kind.Slin16, 640]], 'only the frame before the bad DTMF')
    t.equal(parser.error?.code, 'ERR_AUDIOSOCKET_BAD_DTMF')
    const first = parser.error
    t.doesNotThrow(() => parser.feed(frames.audio(Kind.Slin16, 640), handler), 'a later feed does not throw')
    t.equal(parser.error, first, 'the same error stays recorded')
    t.equal(handler.log.length, 1)
  })

  t.test('onFrame gets the raw payload; a handler with onInvalidFrame hears a bad payload and parsing goes on', async (t) => {
    // Recorded streams are analysed after the fact (inspect): a bad UUID or DTMF payload leaves the
    // framing in sync, so every frame after it is still worth reading.
    const stream = Buffer.concat([frames.uuid('40325ec2-5efd-4bd3-805f-53576e581d13'), frames.dtmf('x'), frames.raw(Kind.Uuid, Buffer.alloc(3)), frames.hangup()])
    const seen: Array<[string, number, number]> = []
    const parser = new FrameParser()
    parser.feed(stream, {
      onAudio() {},
      onFrame(frame, payload) {
        seen.push([frame.type, payload.byteOffset - stream.byteOffset, payload.length])
      },
      onInvalidFrame(kind, payload, error) {
        seen.push([error.code, kind, payload.length])
      },
    })
    t.same(seen, [
      ['uuid', 3, 16],
      ['ERR_AUDIOSOCKET_BAD_DTMF', Kind.Dtmf, 1],
      ['ERR_AUDIOSOCKET_BAD_UUID', Kind.Uuid, 3],
      ['hangup', 19 + 4 + 6 + 3, 0],
    ], 'payloads are views of the chunk at their stream offsets')
    t.equal(parser.error, null, 'the parser is still alive')
    t.equal(parser.frameCount, 2, 'invalid frames are not counted as decoded')
  })

  t.test('a handler that throws: the exception comes out of feed as it is', async (t) => {
    const parser = new FrameParser()
    const bug = new TypeError('handler bug')
    const handler: FrameHandler = {
      onAudio() {
        throw bug
      },
      onFrame() {},
    }
    t.throws(() => parser.feed(frames.audio(Kind.Slin8, 320), handler), bug)
    t.equal(parser.error, null, 'not recorded as a framing violation')
  })
})
