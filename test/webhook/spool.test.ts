/**
 * src/webhook/spool.ts: the on-disk format (records, checksums, header, torn and damaged records),
 * recovery, segment retirement, the size bound, write failures and the directory lock.
 */
import fs from 'node:fs'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import zlib from 'node:zlib'
import { pino } from 'pino'
import t from 'tap'
import { AppError } from '../../src/shared/errors.js'
import {
  ackRecord,
  crc32Portable,
  encodeRecord,
  eventRecord,
  nodeSpoolIo,
  parseSegment,
  segmentFileName,
  segmentHeader,
  Spool,
  SPOOL_LOCK_FILE,
  type SpoolIo,
  type SpoolRef,
} from '../../src/webhook/spool.js'

const WARN = 40
const ERROR = 50

function captureLogs() {
  const records: any[] = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line)) })
  return { logger, records, at: (level: number) => records.filter((r) => r.level === level) }
}

/** An envelope as the sink serialises it; `text` lets a test put non-ASCII into the body. */
function body(callId: string, seq: number, text = `words ${seq}`): string {
  return JSON.stringify({ id: `evt_${callId}_${seq}`, type: 'transcript.final', call_id: callId, seq, time: '2026-11-20T22:00:00.000Z', data: { text } })
}

async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.startsWith('segment-')).sort()
}

t.test('CRC-32: the portable implementation is the standard one', async (t) => {
  // The check value of CRC-32/ISO-HDLC, the one zlib, PNG and Ethernet use.
  t.equal(crc32Portable(Buffer.from('123456789')), 0xcbf43926)
  t.equal(crc32Portable(Buffer.alloc(0)), 0)
  if (typeof zlib.crc32 === 'function') {
    for (const sample of ['', 'a', 'é ünïcödé 🎧', 'x'.repeat(10_000)]) {
      const bytes = Buffer.from(sample)
      t.equal(crc32Portable(bytes), zlib.crc32(bytes), `agrees with zlib.crc32 on ${bytes.length} bytes`)
    }
  }
})

t.test('record encoding: checksum, space, body, newline', async (t) => {
  const line = encodeRecord('a "evt_1"')
  const text = line.toString('utf8')
  t.match(text, /^[0-9a-f]{8} a "evt_1"\n$/)
  t.equal(Number.parseInt(text.slice(0, 8), 16), crc32Portable(Buffer.from('a "evt_1"')))
  t.same(ackRecord('evt_1'), line, 'an ack is `a <id as JSON>`')
  const event = eventRecord(1_700_000_000_123, body('c1', 0)).toString('utf8')
  t.equal(event.slice(9), `e 1700000000123 ${body('c1', 0)}\n`, 'an event is `e <enqueuedAtMs> <envelope>`')
  t.equal(segmentHeader().toString(), 'audiosocket-soniox-spool 1\n', 'the header names the format and its version')
})

t.test('parseSegment reads events and acks back byte for byte', async (t) => {
  const bodies = [body('c1', 0), body('c1', 1, 'é ünïcödé 🎧 "quoted" \\ back\nslash'), body('c2', 0)]
  const bytes = Buffer.concat([
    segmentHeader(),
    eventRecord(1000, bodies[0] as string),
    eventRecord(2000, bodies[1] as string),
    ackRecord('evt_c1_0'),
    eventRecord(3000, bodies[2] as string),
  ])
  const parsed = parseSegment(bytes)
  if (parsed.status !== 'ok') return t.fail(`status ${parsed.status}`)
  t.same(
    parsed.events.map((e) => [e.id, e.callId, e.seq, e.type, e.enqueuedAtMs]),
    [
      ['evt_c1_0', 'c1', 0, 'transcript.final', 1000],
      ['evt_c1_1', 'c1', 1, 'transcript.final', 2000],
      ['evt_c2_0', 'c2', 0, 'transcript.final', 3000],
    ],
  )
  t.same(
    parsed.events.map((e) => e.bodyText),
    bodies,
    'the exact bytes that were POSTed, non-ASCII and escapes included',
  )
  t.same(parsed.acks, ['evt_c1_0'])
  t.equal(parsed.damaged, 0)
  t.equal(parsed.tornTail, false)
})

t.test('a half-written last record is detected and ignored, at every cut point', async (t) => {
  const good = Buffer.concat([segmentHeader(), eventRecord(1, body('c1', 0)), eventRecord(2, body('c1', 1))])
  const last = eventRecord(3, body('c1', 2, 'the record a crash cut short'))
  let checked = 0
  for (let cut = 0; cut < last.length; cut++) {
    const parsed = parseSegment(Buffer.concat([good, last.subarray(0, cut)]))
    if (parsed.status !== 'ok') return t.fail(`cut ${cut}: status ${parsed.status}`)
    const intact = parsed.events.length === 2 && parsed.damaged === 0 && parsed.tornTail === (cut > 0)
    if (!intact) return t.fail(`cut at byte ${cut} of ${last.length}: ${JSON.stringify(parsed)}`)
    checked++
  }
  t.equal(checked, last.length, `the two complete records survive every one of ${last.length} cut points`)
  const whole = parseSegment(Buffer.concat([good, last]))
  t.equal(whole.status === 'ok' && whole.events.length, 3, 'with its newline the record counts')
})

t.test('after a torn record, the separator newline keeps the next record whole', async (t) => {
  const torn = eventRecord(3, body('c1', 2)).subarray(0, 40)
  const bytes = Buffer.concat([segmentHeader(), eventRecord(1, body('c1', 0)), torn, Buffer.from('\n'), ackRecord('evt_c1_0'), eventRecord(4, body('c1', 3))])
  const parsed = parseSegment(bytes)
  if (parsed.status !== 'ok') return t.fail(parsed.status)
  t.same(
    parsed.events.map((e) => e.seq),
    [0, 3],
  )
  t.same(parsed.acks, ['evt_c1_0'])
  t.equal(parsed.damaged, 1, 'the fragment is one damaged line')
  t.equal(parsed.tornTail, false)
})

t.test('a flipped byte fails the checksum of that record only', async (t) => {
  const records = [eventRecord(1, body('c1', 0)), eventRecord(2, body('c1', 1)), eventRecord(3, body('c1', 2))]
  const bytes = Buffer.concat([segmentHeader(), ...records])
  const offset = segmentHeader().length + (records[0]?.length ?? 0) + 30
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x01
  const parsed = parseSegment(bytes)
  if (parsed.status !== 'ok') return t.fail(parsed.status)
  t.same(
    parsed.events.map((e) => e.seq),
    [0, 2],
  )
  t.equal(parsed.damaged, 1)
})

t.test('headers: empty and torn headers, other versions, foreign files', async (t) => {
  t.same(parseSegment(Buffer.alloc(0)), { status: 'empty' })
  t.same(parseSegment(segmentHeader().subarray(0, 10)), { status: 'empty' }, 'a header cut short: nothing was ever written after it')
  t.same(parseSegment(segmentHeader()), { status: 'ok', events: [], acks: [], damaged: 0, tornTail: false })
  t.match(parseSegment(Buffer.from('audiosocket-soniox-spool 2\nwhatever\n')), { status: 'unsupported', header: 'audiosocket-soniox-spool 2' })
  t.match(parseSegment(Buffer.from('hello')), { status: 'unsupported' })
})

t.test('append, ack, close, reopen: the unacknowledged events come back in order', async (t) => {
  const dir = t.testdir()
  const logs = captureLogs()
  const first = new Spool({ dir, maxBytes: 1 << 20, logger: logs.logger })
  t.same(await first.open(), [], 'a fresh directory holds nothing')
  const refs: SpoolRef[] = []
  for (const [callId, seq] of [
    ['a', 0],
    ['b', 0],
    ['a', 1],
    ['b', 1],
  ] as const) {
    refs.push(await first.append(`evt_${callId}_${seq}`, 1000 + seq, body(callId, seq)))
  }
  first.ack(refs[0] as SpoolRef, 'evt_a_0')
  first.ack(refs[3] as SpoolRef, 'evt_b_1')
  t.match(first.stats(), { segments: 1, liveEvents: 2, writeFailures: 0 })
  await first.close()
  t.notOk(fs.existsSync(join(dir, SPOOL_LOCK_FILE)), 'close releases the lock')

  const second = new Spool({ dir, maxBytes: 1 << 20, logger: logs.logger })
  const recovered = await second.open()
  t.same(
    recovered.map((r) => [r.id, r.callId, r.seq, r.enqueuedAtMs, r.bodyText]),
    [
      ['evt_b_0', 'b', 0, 1000, body('b', 0)],
      ['evt_a_1', 'a', 1, 1001, body('a', 1)],
    ],
  )
  t.equal(JSON.parse(fs.readFileSync(join(dir, SPOOL_LOCK_FILE), 'utf8')).pid, process.pid, 'the lock names this process')
  for (const r of recovered) second.ack(r.ref, r.id)
  await second.close()
  t.same(await segmentFiles(dir), [], 'a segment whose events are all acknowledged is deleted')
  t.same(logs.at(WARN), [])
  t.same(logs.at(ERROR), [])
})

t.test('recovery after a crash mid-write: torn tail skipped, later acks still readable', async (t) => {
  const dir = t.testdir()
  const torn = eventRecord(3, body('c1', 2)).subarray(0, 25)
  await writeFile(join(dir, segmentFileName(7)), Buffer.concat([segmentHeader(), eventRecord(1, body('c1', 0)), eventRecord(2, body('c1', 1)), torn]))
  const logs = captureLogs()
  const spool = new Spool({ dir, maxBytes: 1 << 20, logger: logs.logger })
  const recovered = await spool.open()
  t.same(
    recovered.map((r) => r.seq),
    [0, 1],
    'the torn event is not recovered (it was never acknowledged to the sink either)',
  )
  t.match(logs.at(WARN), [{ tornRecords: 1, damagedRecords: 0 }], 'one warning with the count')
  t.equal(spool.stats().skippedRecords, 1)

  // An ack appended to that file must not glue itself to the fragment.
  spool.ack(recovered[0]?.ref as SpoolRef, 'evt_c1_0')
  const newRef = await spool.append('evt_c2_0', 5, body('c2', 0))
  t.equal(newRef.segmentNumber, 8, 'new events go to a new segment, numbered after the existing ones')
  await spool.close()

  const parsed = parseSegment(await readFile(join(dir, segmentFileName(7))))
  if (parsed.status !== 'ok') return t.fail(parsed.status)
  t.same(parsed.acks, ['evt_c1_0'], 'the ack was written whole after a separator')
  t.equal(parsed.damaged, 1, 'the fragment is now a damaged line of its own')

  const again = new Spool({ dir, maxBytes: 1 << 20, logger: captureLogs().logger })
  t.same(
    (await again.open()).map((r) => r.id),
    ['evt_c1_1', 'evt_c2_0'],
  )
  await again.close()
})

t.test('open: empty and fully acknowledged segments are deleted, other versions left alone', async (t) => {
  const dir = t.testdir({
    [segmentFileName(1)]: '',
    [segmentFileName(2)]: Buffer.concat([segmentHeader(), eventRecord(1, body('x', 0)), ackRecord('evt_x_0')]),
    [segmentFileName(3)]: 'audiosocket-soniox-spool 2\nfuture stuff\n',
    'notes.txt': 'not a segment',
  })
  const logs = captureLogs()
  const spool = new Spool({ dir, maxBytes: 1 << 20, logger: logs.logger })
  t.same(await spool.open(), [])
  await spool.close()
  t.same(await segmentFiles(dir), [segmentFileName(3)], 'only the unreadable (newer format) segment remains')
  t.ok(fs.existsSync(join(dir, 'notes.txt')), 'files that are not segments are not touched')
  t.match(logs.at(ERROR), [{ file: join(dir, segmentFileName(3)), header: 'audiosocket-soniox-spool 2' }])
})

t.test('segments roll over and are deleted once delivered: steady state stays small', async (t) => {
  const dir = t.testdir()
  const spool = new Spool({ dir, maxBytes: 1 << 20, segmentBytes: 2048, logger: captureLogs().logger })
  await spool.open()
  const seen = new Set<string>()
  for (let seq = 0; seq < 200; seq++) {
    const ref = await spool.append(`evt_c_${seq}`, seq, body('c', seq))
    for (const name of await segmentFiles(dir)) seen.add(name)
    spool.ack(ref, `evt_c_${seq}`)
  }
  await spool.close()
  t.ok(seen.size > 5, `many segments were used (${seen.size})`)
  const left = await segmentFiles(dir)
  t.ok(left.length <= 1, `at most the active segment is left (${left.length})`)
  const stats = spool.stats()
  t.ok(stats.bytes <= 2048 + 512, `the spool holds about one segment (${stats.bytes} bytes)`)
})

t.test('the size bound: ERR_SPOOL_FULL naming SPOOL_MAX_BYTES, logged once, and room again after delivery', async (t) => {
  const dir = t.testdir()
  const logs = captureLogs()
  const spool = new Spool({ dir, maxBytes: 4096, logger: logs.logger })
  await spool.open()
  const refs: Array<[SpoolRef, string]> = []
  let rejected: unknown
  for (let seq = 0; seq < 100 && rejected === undefined; seq++) {
    try {
      refs.push([await spool.append(`evt_c_${seq}`, seq, body('c', seq)), `evt_c_${seq}`])
    } catch (err) {
      rejected = err
    }
  }
  t.ok(rejected instanceof AppError, 'refused past the bound')
  t.equal((rejected as AppError).code, 'ERR_SPOOL_FULL')
  t.match((rejected as AppError).message, /SPOOL_MAX_BYTES is 4096/)
  t.ok(spool.stats().bytes <= 4096, 'never above the bound')
  await t.rejects(spool.append('evt_more', 0, body('c', 999)), { code: 'ERR_SPOOL_FULL' })
  t.equal(logs.records.filter((r) => r.msg === 'spool full').length, 1, 'one error line for the whole episode')
  t.equal(spool.stats().rejectedFull, 2)

  for (const [ref, id] of refs) spool.ack(ref, id)
  await spool.append('evt_after', 0, body('c', 1000))
  t.equal(logs.records.filter((r) => r.msg === 'spool has room again').length, 1)
  await spool.close()
})

t.test('write failures (disk full) reject the append with ERR_SPOOL_WRITE, logged once per episode', async (t) => {
  const dir = t.testdir()
  const logs = captureLogs()
  let diskFull = true
  const io: SpoolIo = {
    ...nodeSpoolIo,
    writev: (fd, buffers) =>
      diskFull ? Promise.reject(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' })) : nodeSpoolIo.writev(fd, buffers),
  }
  const spool = new Spool({ dir, maxBytes: 1 << 20, logger: logs.logger, io })
  await spool.open()
  for (let seq = 0; seq < 3; seq++) await t.rejects(spool.append(`evt_c_${seq}`, seq, body('c', seq)), { code: 'ERR_SPOOL_WRITE' })
  t.equal(spool.stats().writeFailures, 3)
  t.match(logs.at(ERROR), [{ msg: /spool write failed/, err: { code: 'ERR_SPOOL_WRITE' } }], 'one error line for three failures')
  t.equal(spool.stats().bytes, 0, 'nothing written is nothing counted')

  diskFull = false
  await spool.append('evt_c_3', 3, body('c', 3))
  t.match(
    logs.records.filter((r) => r.msg === 'spool writes succeed again'),
    [{ writeFailures: 3 }],
  )
  await spool.close()
  const again = new Spool({ dir, maxBytes: 1 << 20, logger: captureLogs().logger })
  t.same(
    (await again.open()).map((r) => r.id),
    ['evt_c_3'],
    'the header was written with the first successful write',
  )
  await again.close()
})

t.test('a short write in a running process: the whole records count, the torn one fails, the next one is whole', async (t) => {
  const dir = t.testdir()
  let cutAfter: number | undefined
  const io: SpoolIo = {
    ...nodeSpoolIo,
    // Writes only the first `cutAfter` bytes, as a disk filling up mid-write does.
    async writev(fd, buffers) {
      if (cutAfter === undefined) return nodeSpoolIo.writev(fd, buffers)
      const bytes = Buffer.concat(buffers).subarray(0, cutAfter)
      cutAfter = undefined
      return nodeSpoolIo.writev(fd, [bytes])
    },
  }
  const spool = new Spool({ dir, maxBytes: 1 << 20, logger: captureLogs().logger, io })
  await spool.open()
  await spool.append('evt_c_0', 0, body('c', 0))
  // Two records in one batch; the cut falls inside the second.
  const first = eventRecord(1, body('c', 1))
  cutAfter = first.length + 20
  const results = await Promise.allSettled([spool.append('evt_c_1', 1, body('c', 1)), spool.append('evt_c_2', 2, body('c', 2))])
  t.same(
    results.map((r) => r.status),
    ['fulfilled', 'rejected'],
    'the record entirely written succeeded; the torn one failed',
  )
  await spool.append('evt_c_3', 3, body('c', 3))
  await spool.close()

  const parsed = parseSegment(await readFile(join(dir, segmentFileName(1))))
  if (parsed.status !== 'ok') return t.fail(parsed.status)
  t.same(
    parsed.events.map((e) => e.id),
    ['evt_c_0', 'evt_c_1', 'evt_c_3'],
  )
  t.equal(parsed.damaged, 1, 'the fragment is isolated on its own line')
})

t.test('appends complete in the order made, batched while a write is in flight', async (t) => {
  const dir = t.testdir()
  let calls = 0
  const io: SpoolIo = { ...nodeSpoolIo, writev: (fd, buffers) => (calls++, nodeSpoolIo.writev(fd, buffers)) }
  const spool = new Spool({ dir, maxBytes: 1 << 20, logger: captureLogs().logger, io })
  await spool.open()
  const order: number[] = []
  await Promise.all(Array.from({ length: 50 }, (_, seq) => spool.append(`evt_c_${seq}`, seq, body('c', seq)).then(() => order.push(seq))))
  t.same(
    order,
    Array.from({ length: 50 }, (_, i) => i),
  )
  t.ok(calls < 50, `50 records took ${calls} writes`)
  await spool.close()
  const parsed = parseSegment(await readFile(join(dir, segmentFileName(1))))
  t.equal(parsed.status === 'ok' && parsed.events.length, 50)
})

t.test('the lock: a live holder refuses, a dead one is taken over', async (t) => {
  const dir = t.testdir({ [SPOOL_LOCK_FILE]: `${process.ppid}\n` })
  const spool = new Spool({ dir, maxBytes: 1 << 20, logger: captureLogs().logger })
  await t.rejects(spool.open(), { code: 'ERR_SPOOL_LOCKED', message: new RegExp(`in use by process ${process.ppid}`) })

  // Above Linux's largest pid_max (2^22): no such process can exist.
  const stale = t.testdir({ [SPOOL_LOCK_FILE]: '4194305\n', [segmentFileName(1)]: Buffer.concat([segmentHeader(), eventRecord(1, body('k', 0))]) })
  const taker = new Spool({ dir: stale, maxBytes: 1 << 20, logger: captureLogs().logger })
  t.same(
    (await taker.open()).map((r) => r.id),
    ['evt_k_0'],
    'a lock left by a killed process does not block recovery',
  )
  t.equal(JSON.parse(fs.readFileSync(join(stale, SPOOL_LOCK_FILE), 'utf8')).pid, process.pid)
  await taker.close()
})

t.test('open creates a missing directory; an impossible one is ERR_SPOOL_OPEN', async (t) => {
  const base = t.testdir({ 'a-file': 'x' })
  const nested = join(base, 'state', 'spool')
  const spool = new Spool({ dir: nested, maxBytes: 1 << 20, logger: captureLogs().logger })
  t.same(await spool.open(), [])
  t.ok(fs.statSync(nested).isDirectory())
  await spool.close()
  const blocked = new Spool({ dir: join(base, 'a-file', 'spool'), maxBytes: 1 << 20, logger: captureLogs().logger })
  await t.rejects(blocked.open(), { code: 'ERR_SPOOL_OPEN', message: /SPOOL_DIR/ })
})

t.test('append before open or after close is refused, ack after close is ignored', async (t) => {
  const dir = t.testdir()
  const spool = new Spool({ dir, maxBytes: 1 << 20, logger: captureLogs().logger })
  await t.rejects(spool.append('evt_x', 0, body('x', 0)), { code: 'ERR_SPOOL_CLOSED' })
  await spool.open()
  const ref = await spool.append('evt_x', 0, body('x', 0))
  await spool.close()
  await t.rejects(spool.append('evt_y', 0, body('y', 0)), { code: 'ERR_SPOOL_CLOSED' })
  t.doesNotThrow(() => spool.ack(ref, 'evt_x'))
  t.equal(await spool.close(), undefined, 'close is idempotent')
})
