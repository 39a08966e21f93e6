import t from 'tap'
import { Kind, MAX_PAYLOAD_LENGTH } from '../../src/audiosocket/constants.js'
import { encodeAudio, encodeDtmf, encodeFrame, encodeHangup, encodeUuid } from '../../src/audiosocket/frame-encoder.js'
import { FrameParser } from '../../src/audiosocket/frame-parser.js'
import { frames } from '../support/frames.js'

function parseOne(bytes: Buffer) {
  const parser = new FrameParser()
  const got = parser.push(bytes)
  parser.end()
  return got
}

t.test('encodeHangup is exactly 00 00 00', async (t) => {
  t.same(encodeHangup(), Buffer.from([0x00, 0x00, 0x00]))
  const a = encodeHangup()
  a[0] = 0x10
  t.same(encodeHangup(), Buffer.from([0, 0, 0]), 'each call returns a fresh buffer')
})

t.test('encodeFrame', async (t) => {
  t.same(encodeFrame(0x10, Buffer.alloc(258, 7)).subarray(0, 3), Buffer.from([0x10, 0x01, 0x02]), 'length is big-endian')
  t.same(encodeFrame(0x7f, Buffer.from([1, 2])), frames.raw(0x7f, [1, 2]), 'matches the hand-built fixture')
  t.same(encodeFrame(0x10, new Uint8Array(0)), Buffer.from([0x10, 0, 0]), 'empty payload')

  const pcm = Buffer.alloc(320, 0x33)
  const message = encodeFrame(Kind.Slin8, pcm)
  t.equal(message.length, 323, 'header and payload in one buffer')
  pcm.fill(0)
  t.ok(message.subarray(3).every((b) => b === 0x33), 'the payload was copied, so the caller may reuse its buffer')

  const max = encodeFrame(Kind.Slin48, Buffer.alloc(MAX_PAYLOAD_LENGTH))
  t.same(max.subarray(0, 3), Buffer.from([0x16, 0xff, 0xff]))
  t.throws(() => encodeFrame(Kind.Slin48, Buffer.alloc(MAX_PAYLOAD_LENGTH + 1)), RangeError, '65536 bytes')
  for (const kind of [-1, 256, 1.5]) {
    t.throws(() => encodeFrame(kind, Buffer.alloc(1)), RangeError, `kind ${kind}`)
  }
})

t.test('encodeUuid uses network byte order (reference example)', async (t) => {
  t.same(
    encodeUuid('40325ec2-5efd-4bd3-805f-53576e581d13'),
    Buffer.from('010010' + '40325ec25efd4bd3805f53576e581d13', 'hex'),
  )
  t.same(encodeUuid('40325EC2-5EFD-4BD3-805F-53576E581D13'), encodeUuid('40325ec2-5efd-4bd3-805f-53576e581d13'))
  t.throws(() => encodeUuid('{40325ec2-5efd-4bd3-805f-53576e581d13}'), TypeError)
})

t.test('encodeDtmf', async (t) => {
  t.same(encodeDtmf('5'), Buffer.from([0x03, 0x00, 0x01, 0x35]))
  for (const bad of ['', '55', 'a', 'x', ' ', '٥']) {
    t.throws(() => encodeDtmf(bad), RangeError, JSON.stringify(bad))
  }
})

t.test('encodeAudio', async (t) => {
  t.same(encodeAudio(Kind.Slin16, Buffer.from([1, 2])), Buffer.from([0x12, 0x00, 0x02, 1, 2]))
  t.throws(() => encodeAudio(Kind.Slin8, Buffer.alloc(0)), RangeError, 'zero-length audio kills 20.14+ calls')
  t.throws(() => encodeAudio(Kind.Dtmf, Buffer.alloc(2)), RangeError, 'not an audio kind')
  t.throws(() => encodeAudio(0x19, Buffer.alloc(2)), RangeError, 'just past the audio range')
})

t.test('every kind round-trips through the parser', async (t) => {
  const uuid = 'ab82fbae-162e-441d-a908-afb919f0e66a'
  t.same(parseOne(encodeUuid(uuid)), [{ type: 'uuid', uuid }])
  t.same(parseOne(encodeHangup()), [{ type: 'hangup' }])
  for (const digit of '0123456789*#ABCD') {
    t.same(parseOne(encodeDtmf(digit)), [{ type: 'dtmf', digit }], `DTMF ${digit}`)
  }
  const rates = [8000, 12000, 16000, 24000, 32000, 44100, 48000, 96000, 192000]
  for (let kind = Kind.Slin8; kind <= Kind.Slin192; kind++) {
    const pcm = Buffer.from(Int16Array.from({ length: 160 }, (_, i) => i * 101 - 8000).buffer)
    const sampleRate = rates[kind - Kind.Slin8]
    t.same(parseOne(encodeAudio(kind, pcm)), [{ type: 'audio', kind, sampleRate, payload: pcm }], `audio 0x${kind.toString(16)}`)
  }
  t.same(parseOne(encodeFrame(Kind.Error, Buffer.from([0x04]))), [{ type: 'error', code: 0x04, payload: Buffer.from([0x04]) }])
  t.same(parseOne(encodeFrame(Kind.Error, Buffer.alloc(0))), [{ type: 'error', code: undefined, payload: Buffer.alloc(0) }])
  t.same(parseOne(encodeFrame(0x02, Buffer.from([9, 9]))), [{ type: 'unknown', kind: 0x02, payload: Buffer.from([9, 9]) }])

  const stream = Buffer.concat([encodeUuid(uuid), encodeAudio(Kind.Slin8, Buffer.alloc(320)), encodeDtmf('#'), encodeHangup()])
  t.same(
    parseOne(stream).map((f) => f.type),
    ['uuid', 'audio', 'dtmf', 'hangup'],
    'concatenated messages parse back in order',
  )
})
