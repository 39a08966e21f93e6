import t from 'tap'
import { Kind } from '../../src/audiosocket/constants.js'
import { decodeFrame, uuidToBytes, uuidToString } from '../../src/audiosocket/frame.js'
import { isAppError } from '../../src/shared/errors.js'

// The example from the protocol reference (2.4): the wire bytes are the hex digits in order.
const EXAMPLE_UUID = '40325ec2-5efd-4bd3-805f-53576e581d13'
const EXAMPLE_BYTES = Buffer.from([
  0x40, 0x32, 0x5e, 0xc2, 0x5e, 0xfd, 0x4b, 0xd3, 0x80, 0x5f, 0x53, 0x57, 0x6e, 0x58, 0x1d, 0x13,
])

t.test('decodeFrame', async (t) => {
  t.test('uuid', async (t) => {
    t.same(decodeFrame(Kind.Uuid, EXAMPLE_BYTES), { type: 'uuid', uuid: EXAMPLE_UUID })
    t.throws(() => decodeFrame(Kind.Uuid, Buffer.alloc(15)), {
      code: 'ERR_AUDIOSOCKET_BAD_UUID',
      message: 'UUID frame carries 15 bytes, expected 16',
    })
    t.throws(() => decodeFrame(Kind.Uuid, Buffer.alloc(0)), { code: 'ERR_AUDIOSOCKET_BAD_UUID' })
  })

  t.test('audio of every kind carries its sample rate and the payload itself', async (t) => {
    const rates: [number, number][] = [
      [Kind.Slin8, 8000],
      [Kind.Slin12, 12000],
      [Kind.Slin16, 16000],
      [Kind.Slin24, 24000],
      [Kind.Slin32, 32000],
      [Kind.Slin44, 44100],
      [Kind.Slin48, 48000],
      [Kind.Slin96, 96000],
      [Kind.Slin192, 192000],
    ]
    for (const [kind, sampleRate] of rates) {
      const payload = Buffer.from([1, 2, 3, 4])
      const frame = decodeFrame(kind, payload)
      t.same(frame, { type: 'audio', kind, sampleRate, payload }, `0x${kind.toString(16)}`)
      t.equal(frame.type === 'audio' && frame.payload, payload, 'not copied')
    }
    t.same(
      decodeFrame(Kind.Slin8, Buffer.alloc(0)),
      { type: 'audio', kind: 0x10, sampleRate: 8000, payload: Buffer.alloc(0) },
      'empty is a frame',
    )
    t.equal(decodeFrame(Kind.Slin8, Buffer.alloc(3)).type, 'audio', 'odd length is a frame')
  })

  t.test('dtmf accepts exactly 0-9 * # A-D', async (t) => {
    const accepted: string[] = []
    for (let byte = 0; byte < 256; byte++) {
      try {
        const frame = decodeFrame(Kind.Dtmf, Buffer.from([byte]))
        if (frame.type === 'dtmf') accepted.push(frame.digit)
      } catch (err) {
        if (!isAppError(err) || err.code !== 'ERR_AUDIOSOCKET_BAD_DTMF') throw err
      }
    }
    t.same(accepted.sort(), [...'#*0123456789ABCD'].sort())
    t.throws(() => decodeFrame(Kind.Dtmf, Buffer.from('a')), {
      code: 'ERR_AUDIOSOCKET_BAD_DTMF',
      message: 'DTMF frame carries byte 0x61, which is not one of 0-9 * # A-D',
    })
    t.throws(() => decodeFrame(Kind.Dtmf, Buffer.from('55')), {
      code: 'ERR_AUDIOSOCKET_BAD_DTMF',
      message: 'DTMF frame carries 2 bytes, expected 1',
    })
  })

  t.test('hangup, error and unknown', async (t) => {
    t.same(decodeFrame(Kind.Hangup, Buffer.alloc(0)), { type: 'hangup' })
    t.same(decodeFrame(Kind.Hangup, Buffer.from([9])), { type: 'hangup' }, 'a hangup payload is ignored, as Asterisk does')
    t.ok(Object.isFrozen(decodeFrame(Kind.Hangup, Buffer.alloc(0))), 'the shared hangup frame cannot be mutated')
    t.same(decodeFrame(Kind.Error, Buffer.from([0x01, 0x02])), { type: 'error', code: 0x01, payload: Buffer.from([0x01, 0x02]) })
    t.same(decodeFrame(Kind.Error, Buffer.alloc(0)), { type: 'error', code: undefined, payload: Buffer.alloc(0) })
    for (const kind of [0x02, 0x04, 0x0f, 0x19, 0x7f, 0xfe]) {
      const payload = Buffer.from([kind])
      t.same(decodeFrame(kind, payload), { type: 'unknown', kind, payload }, `0x${kind.toString(16)}`)
    }
  })
})

t.test('uuidToString', async (t) => {
  t.equal(uuidToString(EXAMPLE_BYTES), EXAMPLE_UUID, 'network byte order, lowercase')
  t.equal(uuidToString(new Uint8Array(16)), '00000000-0000-0000-0000-000000000000')
  const inside = Buffer.concat([Buffer.from([0xaa, 0xbb, 0xcc]), EXAMPLE_BYTES, Buffer.from([0xdd])])
  t.equal(uuidToString(inside.subarray(3, 19)), EXAMPLE_UUID, 'honours the byteOffset of a view')
  t.throws(() => uuidToString(new Uint8Array(17)), RangeError)
})

t.test('uuidToBytes', async (t) => {
  t.same(uuidToBytes(EXAMPLE_UUID), EXAMPLE_BYTES)
  t.same(uuidToBytes(EXAMPLE_UUID.toUpperCase()), EXAMPLE_BYTES, 'uppercase is accepted')
  t.same(uuidToBytes('00000000-0000-0000-0000-000000000000'), Buffer.alloc(16), 'the nil UUID is accepted')
  t.same(uuidToBytes('ffffffff-ffff-ffff-ffff-ffffffffffff'), Buffer.alloc(16, 0xff), 'version/variant bits are not checked')
  t.equal(uuidToString(uuidToBytes('AbCdEf01-2345-6789-aBcD-eF0123456789')), 'abcdef01-2345-6789-abcd-ef0123456789')

  const rejected: [string, string][] = [
    [`{${EXAMPLE_UUID}}`, 'braces'],
    [EXAMPLE_UUID.replaceAll('-', ''), 'no hyphens'],
    [`${EXAMPLE_UUID}\n`, 'trailing newline (uuidgen without tr)'],
    [EXAMPLE_UUID.slice(0, 35), 'one character short'],
    ['', 'empty'],
    ['40325ec2-5efd-4bd3-805f-53576e581d1g', 'non-hex digit'],
    ['40325ec25-efd-4bd3-805f-53576e581d13', 'hyphen in the wrong place'],
    ['40325ec2-5efd-4bd3-805f+53576e581d13', 'wrong separator'],
    ['1700000000.12', 'an Asterisk UNIQUEID'],
  ]
  for (const [input, why] of rejected) {
    t.throws(() => uuidToBytes(input), { name: 'TypeError', message: /^invalid UUID/ }, why)
  }
  t.throws(() => uuidToBytes(`${EXAMPLE_UUID}\n`), { message: /expected 36 characters .*got 37/ }, 'says what is wrong')
  t.throws(() => uuidToBytes('40325ec2-5efd-4bd3-805f-53576e581d1g'), { message: /hex digit at position 35/ })
})
