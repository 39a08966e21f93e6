/**
 * src/webhook/spool.ts: append and ack, recovery, segment retirement, the size bound, write failures
 * and the directory lock. The byte format itself is tested in spool-format.test.ts.
 */
import fs from 'node:fs'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import { AppError } from '../../src/shared/errors.js'
import { ackRecord, eventRecord, parseSegment, segmentFileName, segmentHeader } from '../../src/webhook/spool-format.js'
import { SPOOL_LOCK_FILE } from '../../src/webhook/spool-lock.js'
import { fileSpoolIo, Spool, type SpoolIo, type SpoolRef } from '../../src/webhook/spool.js'

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
  t.throws(() => spool.append('evt_more', 0, body('c', 999)), { code: 'ERR_SPOOL_FULL' })
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
    ...fileSpoolIo,
    writev: (fd, buffers) => {
      if (diskFull) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' })
      return fileSpoolIo.writev(fd, buffers)
    },
  }
  const spool = new Spool({ dir, maxBytes: 1 << 20, logger: logs.logger, io })
  await spool.open()
  for (let seq = 0; seq < 3; seq++) t.throws(() => spool.append(`evt_c_${seq}`, seq, body('c', seq)), { code: 'ERR_SPOOL_WRITE' })
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
    ...fileSpoolIo,
    // Writes only the first `cutAfter` bytes, as a disk filling up mid-write does.
    writev(fd, buffers) {
      if (cutAfter === undefined) return fileSpoolIo.writev(fd, buffers)
      const bytes = Buffer.concat(buffers).subarray(0, cutAfter)
      cutAfter = undefined
      return fileSpoolIo.writev(fd, [bytes])
    },
  }
  const spool = new Spool({ dir, maxBytes: 1 << 20, logger: captureLogs().logger, io })
  await spool.open()
  const zero = spool.append('evt_c_0', 0, body('c', 0))
  spool.append('evt_c_1', 1, body('c', 1))
  // Two records in one write (the waiting ack of evt_c_0 rides with evt_c_2); the cut falls inside the second.
  spool.ack(zero, 'evt_c_0')
  cutAfter = ackRecord('evt_c_0').length + 20
  t.throws(() => spool.append('evt_c_2', 2, body('c', 2)), { code: 'ERR_SPOOL_WRITE' }, 'the torn event failed')
  t.match(spool.stats(), { liveEvents: 1, writeFailures: 1 }, 'the record entirely written (the ack) succeeded')
  spool.append('evt_c_3', 3, body('c', 3))
  await spool.close()

  const parsed = parseSegment(await readFile(join(dir, segmentFileName(1))))
  if (parsed.status !== 'ok') return t.fail(parsed.status)
  t.same(
    parsed.events.map((e) => e.id),
    ['evt_c_0', 'evt_c_1', 'evt_c_3'],
  )
  t.same(parsed.acks, ['evt_c_0'])
  t.equal(parsed.damaged, 1, 'the fragment is isolated on its own line')
})

t.test('an event is in the file when append returns; acks ride along with the next event, or are flushed at close', async (t) => {
  const dir = t.testdir()
  const writes: number[] = []
  const io: SpoolIo = { ...fileSpoolIo, writev: (fd, buffers) => (writes.push(buffers.length), fileSpoolIo.writev(fd, buffers)) }
  const spool = new Spool({ dir, maxBytes: 1 << 20, logger: captureLogs().logger, io })
  await spool.open()
  const file = join(dir, segmentFileName(1))
  const idsOnDisk = (): string[] => {
    const parsed = parseSegment(fs.readFileSync(file))
    return parsed.status === 'ok' ? parsed.events.map((e) => e.id) : []
  }
  const refs: SpoolRef[] = []
  for (let seq = 0; seq < 5; seq++) {
    refs.push(spool.append(`evt_c_${seq}`, seq, body('c', seq)))
    t.equal(idsOnDisk().length, seq + 1, `evt_c_${seq} is on disk when append returns`)
  }
  t.same(writes, [2, 1, 1, 1, 1], 'one write per event (the first with the header)')
  spool.ack(refs[0] as SpoolRef, 'evt_c_0')
  spool.ack(refs[1] as SpoolRef, 'evt_c_1')
  spool.append('evt_c_5', 5, body('c', 5))
  t.same(writes.slice(5), [3], 'two waiting acks and the next event: one write')
  spool.ack(refs[2] as SpoolRef, 'evt_c_2')
  await spool.close()
  t.same(writes.slice(6), [1], 'an ack with no event to carry it is written by the flush')
  const parsed = parseSegment(await readFile(file))
  t.same(parsed.status === 'ok' && parsed.acks, ['evt_c_0', 'evt_c_1', 'evt_c_2'])
  t.same(idsOnDisk(), ['evt_c_0', 'evt_c_1', 'evt_c_2', 'evt_c_3', 'evt_c_4', 'evt_c_5'], 'in the order appended')
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
  t.throws(() => spool.append('evt_x', 0, body('x', 0)), { code: 'ERR_SPOOL_CLOSED' })
  await spool.open()
  const ref = spool.append('evt_x', 0, body('x', 0))
  await spool.close()
  t.throws(() => spool.append('evt_y', 0, body('y', 0)), { code: 'ERR_SPOOL_CLOSED' })
  t.doesNotThrow(() => spool.ack(ref, 'evt_x'))
  t.equal(await spool.close(), undefined, 'close is idempotent')
})

t.test('an AVR body is spooled with its fields beside it and recovered as it was written', async (t) => {
  const dir = t.testdir()
  const logs = captureLogs()
  const avr = (type: string, payload: object): string => JSON.stringify({ uuid: 'c1', type, timestamp: '2026-11-20T22:00:00.000Z', payload })
  const first = new Spool({ dir, maxBytes: 1 << 20, logger: logs.logger })
  await first.open()
  const started = first.append('evt_s', 10, avr('call_started', {}), { callId: 'c1', seq: 0, type: 'call_started' })
  first.append('evt_e.error', 11, avr('error', { message: 'it failed' }), { callId: 'c1', seq: 3, type: 'error' })
  first.append('evt_e', 11, avr('call_ended', {}), { callId: 'c1', seq: 3, type: 'call_ended' })
  first.append('evt_c2_0', 12, body('c2', 0))
  first.ack(started, 'evt_s')
  await first.close()

  const second = new Spool({ dir, maxBytes: 1 << 20, logger: logs.logger })
  const recovered = await second.open()
  t.same(
    recovered.map((r) => [r.id, r.callId, r.seq, r.type, r.enqueuedAtMs, r.bodyText]),
    [
      ['evt_e.error', 'c1', 3, 'error', 11, avr('error', { message: 'it failed' })],
      ['evt_e', 'c1', 3, 'call_ended', 11, avr('call_ended', {})],
      ['evt_c2_0', 'c2', 0, 'transcript.final', 12, body('c2', 0)],
    ],
    'AVR and standard records side by side, in the order written, the bodies byte for byte',
  )
  t.equal(second.stats().skippedRecords, 0)
  await second.close()
})
