/**
 * src/capture/format.ts: the capture file format round-trips exactly, and readers reject a
 * truncated, foreign or wrong-version file with a message that says which and where.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import {
  CAPTURE_MAGIC,
  decodeCapture,
  directionStream,
  encodeCapture,
  readCaptureFile,
  writeCaptureFile,
} from '../../src/capture/index.js'
import { AppError } from '../../src/shared/errors.js'
import { captureOf } from '../support/capture-builders.js'
import { frames } from '../support/frames.js'

const ID = '40325ec2-5efd-4bd3-805f-53576e581d13'

function sample() {
  return captureOf(
    (c) => {
      c.at(0.843).in(frames.uuid(ID))
      c.at(499.426).in(frames.audio(0x10, 320))
      c.at(519.5).in(Buffer.concat([frames.audio(0x10, 320), frames.dtmf('5').subarray(0, 2)]))
      c.at(519.6).in(frames.dtmf('5').subarray(2))
      c.at(600).out(frames.hangup()).finOut()
      c.at(600.25).finIn().end(601)
    },
    { capturedAt: '2026-11-20T22:00:00.000Z', asterisk: { address: '127.0.0.1', port: 53422 }, server: { address: '127.0.0.1', port: 9092 }, mode: 'listen' },
  )
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return err instanceof AppError ? err.code : `not an AppError: ${String(err)}`
  }
  return undefined
}

t.test('encode then decode gives back the header, every record and the end time', async (t) => {
  const capture = sample()
  const bytes = encodeCapture(capture)
  t.ok(bytes.subarray(0, 8).equals(CAPTURE_MAGIC), 'starts with the magic')
  t.equal(bytes.readUInt16BE(8), 1, 'format version 1, big-endian')
  const back = decodeCapture(bytes)
  t.same(back.header, capture.header)
  t.equal(back.endUs, 601000)
  t.equal(back.records.length, capture.records.length)
  back.records.forEach((r, i) => {
    const want = capture.records[i]!
    t.same({ offsetUs: r.offsetUs, type: r.type, direction: r.direction }, { offsetUs: want.offsetUs, type: want.type, direction: want.direction }, `record ${i}`)
    t.ok(r.data.equals(want.data), `record ${i} bytes`)
  })
  t.equal(back.records[0]?.offsetUs, 843, 'microsecond times survive')
  t.notOk(back.truncated)
})

t.test('the record layout is as documented: u64 time, type and direction letters, u32 length', async (t) => {
  const bytes = encodeCapture(captureOf((c) => c.at(1.5).in(Buffer.from([1, 2, 3])).end(2)))
  const headerLength = bytes.readUInt32BE(10)
  const r = 14 + headerLength
  t.equal(Number(bytes.readBigUInt64BE(r)), 1500)
  t.equal(String.fromCharCode(bytes[r + 8]!, bytes[r + 9]!), 'DI', "'D'ata, 'I'n")
  t.equal(bytes.readUInt32BE(r + 10), 3)
  t.same([...bytes.subarray(r + 14, r + 17)], [1, 2, 3])
  const end = r + 17
  t.equal(String.fromCharCode(bytes[end + 8]!, bytes[end + 9]!), 'E-', 'the end record')
  t.equal(Number(bytes.readBigUInt64BE(end)), 2000)
  t.equal(bytes.length, end + 14, 'nothing after the end record')
})

t.test('a file cut off anywhere is rejected as truncated, never misread', async (t) => {
  const bytes = encodeCapture(sample())
  let checked = 0
  for (let cut = 0; cut < bytes.length; cut++) {
    const code = codeOf(() => decodeCapture(bytes.subarray(0, cut), { name: 'call.ascap' }))
    if (code !== 'ERR_CAPTURE_TRUNCATED') {
      t.fail(`cut at ${cut} of ${bytes.length}: got ${code}`)
      return
    }
    checked++
  }
  t.equal(checked, bytes.length, `every one of the ${bytes.length} cut points gives ERR_CAPTURE_TRUNCATED`)
  try {
    decodeCapture(bytes.subarray(0, bytes.length - 14), { name: 'call.ascap' })
  } catch (err) {
    t.match((err as Error).message, /call\.ascap is cut off at byte \d+: the end record is missing after 7 records/, 'the message names the file, the byte and what is missing')
  }
})

t.test('allowTruncated salvages the records before the cut', async (t) => {
  const bytes = encodeCapture(sample())
  const cutInsideLastData = bytes.length - 14 * 3 - 2
  const salvaged = decodeCapture(bytes.subarray(0, cutInsideLastData), { allowTruncated: true })
  t.ok(salvaged.truncated, 'says it was truncated')
  t.ok(salvaged.records.length >= 3 && salvaged.records.length < 7, `kept the ${salvaged.records.length} whole records`)
  t.equal(salvaged.endUs, salvaged.records.at(-1)?.offsetUs, 'the end is the last record read')
})

t.test('wrong version, wrong magic, a pcap, a corrupt record: each named', async (t) => {
  const bytes = Buffer.from(encodeCapture(sample()))
  const v2 = Buffer.from(bytes)
  v2.writeUInt16BE(2, 8)
  t.throws(() => decodeCapture(v2, { name: 'new.ascap' }), { code: 'ERR_CAPTURE_VERSION', message: /new\.ascap uses capture format version 2; this tool reads version 1 .*upgrade/ })

  t.throws(() => decodeCapture(Buffer.from('hello world, not a capture')), { code: 'ERR_CAPTURE_NOT_A_CAPTURE' })
  const pcap = readFileSync(new URL('../../fixtures/asterisk-22.10.1/app-8k-speech.pcap', import.meta.url))
  t.throws(() => decodeCapture(pcap, { name: 'call.pcap' }), { code: 'ERR_CAPTURE_NOT_A_CAPTURE', message: /packet capture .*import-pcap/ }, 'a pcap is recognised and the right command named')

  const badType = Buffer.from(bytes)
  const firstRecord = 14 + bytes.readUInt32BE(10)
  badType[firstRecord + 8] = 0x5a
  t.throws(() => decodeCapture(badType), { code: 'ERR_CAPTURE_CORRUPT', message: /record 0 at byte \d+: unknown record type 0x5a/ })

  const backwards = encodeCapture(captureOf((c) => c.at(5).in(Buffer.from([1])).at(6).in(Buffer.from([2]))))
  const second = 14 + backwards.readUInt32BE(10) + 15
  backwards.writeBigUInt64BE(1000n, second)
  t.throws(() => decodeCapture(backwards), { code: 'ERR_CAPTURE_CORRUPT', message: /time goes backwards/ })

  const trailing = Buffer.concat([bytes, Buffer.from([0])])
  t.throws(() => decodeCapture(trailing), { code: 'ERR_CAPTURE_CORRUPT', message: /1 bytes follow the end record/ })

  const badHeader = Buffer.from(bytes)
  badHeader[14] = 0x5b // '[': the header is no longer a JSON object
  t.throws(() => decodeCapture(badHeader), { code: 'ERR_CAPTURE_CORRUPT' })
})

t.test('directionStream joins one direction and keeps where each read started', async (t) => {
  const capture = sample()
  const inbound = directionStream(capture, 'in')
  const sent = Buffer.concat([frames.uuid(ID), frames.audio(0x10, 320), frames.audio(0x10, 320), frames.dtmf('5')])
  t.ok(inbound.bytes.equals(sent), 'the bytes, in order, whatever the chunking')
  t.same(inbound.reads.map((r) => r.offset), [0, 19, 342, 667])
  t.equal(inbound.finUs, 600250)
  const outbound = directionStream(capture, 'out')
  t.ok(outbound.bytes.equals(frames.hangup()))
  t.equal(outbound.finUs, 600000)
})

t.test('file round trip, owner-only permissions', async (t) => {
  const dir = t.testdir()
  const path = `${dir}/call.ascap`
  await writeCaptureFile(path, sample())
  const back = await readCaptureFile(path)
  t.equal(back.records.length, 7)
  const { statSync } = await import('node:fs')
  t.equal(statSync(path).mode & 0o777, 0o600, 'captures hold call audio: 0600')
  await t.rejects(readCaptureFile(`${dir}/missing.ascap`), { code: 'ENOENT' })
})
