/**
 * src/capture/recorder.ts: a recording is written in the background, complete and correctly
 * named; when the disk fails in any way the recording of that call stops with one warn line and
 * the caller never sees an exception.
 */
import t from 'tap'
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Socket } from 'node:net'
import { CaptureRecorder, createCaptureTaps, readCaptureFile, type CaptureFileOps, type RecorderLogger } from '../../src/capture/index.js'
import { frames } from '../support/frames.js'

const ID = 'c0ffee00-1234-4abc-8def-001122334455'

function logSink(): RecorderLogger & { warns: Array<{ obj: Record<string, unknown>; msg: string }> } {
  const warns: Array<{ obj: Record<string, unknown>; msg: string }> = []
  return { warns, warn: (obj, msg) => warns.push({ obj: obj as Record<string, unknown>, msg }), debug: () => {} }
}

function header() {
  return { tool: 'test', mode: 'server' as const, asterisk: { address: '127.0.0.1', port: 40000 }, server: { address: '127.0.0.1', port: 9092 } }
}

/** A manual microsecond clock. */
function clock(): { nowUs: () => number; advance(ms: number): void } {
  let us = 5_000_000
  return { nowUs: () => us, advance: (ms) => void (us += Math.round(ms * 1000)) }
}

t.test('a recording: header, every read and write with its time, FIN, end; named by time and UUID', async (t) => {
  const dir = join(t.testdir(), 'captures')
  const log = logSink()
  const c = clock()
  const recorder = new CaptureRecorder({ dir, logger: log, header: header(), nowUs: c.nowUs, wallClockMs: () => Date.parse('2026-11-20T22:00:00.123Z') })
  // The UUID frame split across two reads; the call's own parser names the call (the recorder
  // does not parse frames).
  const uuid = frames.uuid(ID)
  c.advance(1)
  recorder.data('in', uuid.subarray(0, 7))
  c.advance(0.5)
  recorder.data('in', Buffer.concat([uuid.subarray(7), frames.audio(0x10, 320)]))
  recorder.callIdentified(ID)
  c.advance(20)
  recorder.data('in', frames.audio(0x10, 320))
  recorder.data('out', frames.audio(0x10, 320, 0))
  c.advance(5)
  recorder.fin('in')
  recorder.data('out', frames.hangup())
  recorder.fin('out')
  c.advance(1)
  t.equal(recorder.uuid, ID, 'the UUID the call gave')
  const path = await recorder.close()
  t.equal(path, join(dir, `2026-11-20T22-00-00.123Z-${ID}.ascap`))
  t.same(readdirSync(dir), [`2026-11-20T22-00-00.123Z-${ID}.ascap`], 'only the finished file: no .part left')
  t.equal(statSync(path!).mode & 0o777, 0o600, 'owner-only: captures hold call audio')
  t.equal(statSync(dir).mode & 0o777, 0o700)

  const capture = await readCaptureFile(path!)
  t.match(capture.header, { capturedAt: '2026-11-20T22:00:00.123Z', mode: 'server', asterisk: { port: 40000 } })
  t.same(
    capture.records.map((r) => [r.offsetUs, r.type, r.direction, r.data.length]),
    [
      [1000, 'data', 'in', 7],
      [1500, 'data', 'in', 12 + 323],
      [21500, 'data', 'in', 323],
      [21500, 'data', 'out', 323],
      [26500, 'fin', 'in', 0],
      [26500, 'data', 'out', 3],
      [26500, 'fin', 'out', 0],
    ],
  )
  t.equal(capture.endUs, 27500)
  t.same(log.warns, [], 'nothing to warn about')
  t.equal(await recorder.close(), path, 'close is idempotent')
  recorder.data('in', Buffer.from([1]))
  t.equal(recorder.state, 'closed', 'data after close is ignored')
})

t.test('a connection that never sent a UUID is named by its peer', async (t) => {
  const dir = t.testdir()
  const recorder = new CaptureRecorder({ dir, logger: logSink(), header: header(), wallClockMs: () => 0 })
  recorder.data('in', Buffer.from('GET / HTTP/1.1\r\n\r\n'))
  const path = await recorder.close()
  t.equal(path, join(dir, '1970-01-01T00-00-00.000Z-127.0.0.1-40000.ascap'))
})

t.test("the server's tap: CallSession's bytes and the UUID it parsed make one named capture", async (t) => {
  const dir = t.testdir()
  const taps = createCaptureTaps({ dir, logger: logSink(), tool: 'test' })
  // An unconnected socket: the tap only listens to its FIN and reset events.
  const tap = taps(new Socket())
  tap.inbound(frames.uuid(ID))
  tap.callIdentified(ID)
  tap.outbound(frames.hangup())
  tap.close()
  await taps.drain()
  const [name] = readdirSync(dir)
  t.match(name, new RegExp(`Z-${ID}\\.ascap$`), 'named by the call id')
  const capture = await readCaptureFile(join(dir, name!))
  t.same(capture.records.map((r) => [r.type, r.direction, r.data.length]), [['data', 'in', 19], ['data', 'out', 3]])
})

t.test('a write error stops that recording: one warn, the partial file removed, the caller unaffected', async (t) => {
  const dir = t.testdir()
  const log = logSink()
  let writes = 0
  const unlinked: string[] = []
  let partialRemoved!: () => void
  const removed = new Promise<void>((resolve) => (partialRemoved = resolve))
  const failingDisk: Partial<CaptureFileOps> = {
    open: async () => ({
      writev: async () => {
        writes++
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
      },
      close: async () => {},
    }),
    unlink: async (path) => {
      unlinked.push(path)
      partialRemoved()
    },
  }
  const recorder = new CaptureRecorder({ dir, logger: log, header: header(), fileOps: failingDisk })
  t.doesNotThrow(() => recorder.data('in', frames.uuid(ID)), 'recording a read never throws')
  // 64 KiB waiting makes the recorder write at once (no timer: its flush timer does not hold the process).
  recorder.data('in', Buffer.alloc(64 * 1024))
  await removed // the failure's last step
  t.equal(recorder.state, 'failed')
  t.doesNotThrow(() => {
    for (let i = 0; i < 100; i++) recorder.data('in', frames.audio(0x10, 320))
    recorder.fin('in')
  }, 'later reads are dropped silently')
  t.equal(await recorder.close(), undefined, 'close resolves (with no file) instead of rejecting')
  t.equal(writes, 1, 'no write is attempted after the failure')
  t.equal(log.warns.length, 1, 'exactly one warn line')
  t.match(log.warns[0], { msg: /recording stopped; the call continues/, obj: { err: { code: 'ERR_CAPTURE_WRITE', message: /ENOSPC/ } } })
  t.equal(unlinked.length, 1, 'the partial file is removed')
  t.match(unlinked[0], /\.ascap\.part$/)
})

t.test('a directory that cannot be created: one warn, nothing thrown', async (t) => {
  const root = t.testdir()
  const blocker = join(root, 'not-a-dir')
  writeFileSync(blocker, 'x')
  const log = logSink()
  const recorder = new CaptureRecorder({ dir: join(blocker, 'captures'), logger: log, header: header() })
  recorder.data('in', frames.uuid(ID))
  t.equal(await recorder.close(), undefined)
  t.equal(log.warns.length, 1)
  t.match(log.warns[0]?.obj, { err: { code: 'ERR_CAPTURE_WRITE' } })
  t.notOk(existsSync(join(blocker, 'captures')))
})

t.test('a disk that hangs: the backlog is bounded, then the recording is abandoned', async (t) => {
  const log = logSink()
  const hungDisk: Partial<CaptureFileOps> = { mkdir: async () => {}, open: () => new Promise(() => {}), unlink: async () => {} }
  const recorder = new CaptureRecorder({ dir: t.testdir(), logger: log, header: header(), fileOps: hungDisk, maxBacklogBytes: 10_000 })
  for (let i = 0; i < 40; i++) recorder.data('in', frames.audio(0x10, 320))
  t.equal(recorder.state, 'failed', 'abandoned once 10 KB were waiting')
  t.match(log.warns[0]?.obj, { err: { code: 'ERR_CAPTURE_WRITE', message: /fell \d+ bytes behind/ } })
  t.equal(log.warns.length, 1)
  t.equal(await recorder.close(), undefined)
})
