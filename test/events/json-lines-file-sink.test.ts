/**
 * src/events/json-lines-file-sink.ts (EVENTS_FILE): JSON lines appended to a file, never truncated, flushed
 * by close(); an unusable path fails start() with ERR_EVENTS_FILE.
 */
import { mkdirSync, readFileSync, renameSync, statSync, type WriteStream } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import type { EventEnvelope } from '../../src/events/envelope.js'
import { JsonLinesFileSink } from '../../src/events/json-lines-file-sink.js'
import { waitUntil } from '../support/wait.js'

function event(callId: string, seq: number): EventEnvelope {
  return { id: `evt_${callId}_${seq}`, type: 'transcript.final', call_id: callId, seq, time: '2026-11-20T22:00:00.000Z', data: { text: `é ${seq}\nnext line` } }
}

function lines(path: string): any[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l))
}

t.test('events are appended as JSON lines, across runs, and flushed by close()', async (t) => {
  const path = join(t.testdir(), 'events.jsonl')
  const sink = new JsonLinesFileSink({ path, logger: pino({ level: 'silent' }) })
  await sink.start()
  for (let seq = 0; seq < 100; seq++) sink.publish(event('c1', seq))
  await sink.close(2000)
  t.same(
    lines(path),
    Array.from({ length: 100 }, (_, seq) => event('c1', seq)),
    'every event, in order, one per line (newlines inside text are escaped)',
  )
  t.equal(statSync(path).mode & 0o077, 0, 'events hold transcripts: a new file is not readable by others')

  const again = new JsonLinesFileSink({ path, logger: pino({ level: 'silent' }) })
  await again.start()
  again.publish(event('c2', 0))
  await again.close(2000)
  t.equal(lines(path).length, 101, 'the second run appended, it did not truncate')
  t.same(lines(path)[100], event('c2', 0))
  t.equal(await again.close(10), undefined, 'close is idempotent')
})

t.test('a path that cannot be opened fails start() naming EVENTS_FILE', async (t) => {
  const path = join(t.testdir(), 'missing-dir', 'events.jsonl')
  const sink = new JsonLinesFileSink({ path, logger: pino({ level: 'silent' }) })
  await t.rejects(sink.start(), { code: 'ERR_EVENTS_FILE', message: /EVENTS_FILE/ })
  t.doesNotThrow(() => sink.publish(event('c1', 0)), 'publish still never throws')
  await sink.close(100)
})

t.test('reopen() after logrotate renamed the file: old lines stay in the renamed file, new ones go to a new EVENTS_FILE, none lost', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'events.jsonl')
  const records: any[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line)) })
  const sink = new JsonLinesFileSink({ path, logger })
  await sink.start()
  for (let seq = 0; seq < 50; seq++) sink.publish(event('r', seq))
  renameSync(path, `${path}.1`)
  // Published after the rename and before the reopen: they follow the open descriptor into the renamed file.
  for (let seq = 50; seq < 60; seq++) sink.publish(event('r', seq))
  const reopened = sink.reopen()
  sink.publish(event('r', 60))
  await reopened
  for (let seq = 61; seq < 80; seq++) sink.publish(event('r', seq))
  await sink.close(2000)

  const rotated = lines(`${path}.1`)
  const current = lines(path)
  t.same([...rotated, ...current].map((e) => e.seq), [...Array(80).keys()], 'every event exactly once, in order across the two files')
  t.ok(rotated.length >= 60, 'what was published before the reopen stayed with the renamed file')
  t.equal(current.at(-1)?.seq, 79, 'the new file has the latest events')
  t.equal(statSync(path).mode & 0o077, 0, 'the new file is private too')
  t.equal(records.filter((r) => r.msg === 'EVENTS_FILE reopened').length, 1, 'logged once')
})

t.test('reopen() that cannot open the path keeps writing to the old file and says so', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'sub', 'events.jsonl')
  mkdirSync(join(dir, 'sub'))
  const records: any[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line)) })
  const sink = new JsonLinesFileSink({ path, logger })
  await sink.start()
  sink.publish(event('k', 0))
  renameSync(join(dir, 'sub'), join(dir, 'moved'))
  await sink.reopen()
  sink.publish(event('k', 1))
  await sink.close(2000)
  t.same(lines(join(dir, 'moved', 'events.jsonl')).map((e) => e.seq), [0, 1], 'both events in the file still open')
  const failed = records.filter((r) => r.msg === 'cannot reopen EVENTS_FILE; still appending to the file open before')
  t.equal(failed.length, 1)
  t.equal(failed[0]?.level, 50)
  t.equal(failed[0]?.err?.code, 'ERR_EVENTS_FILE')
  t.equal(records.filter((r) => r.level >= 50).length, 1, 'one error line for one failure')
})

t.test('close() during a reopen keeps its own bound while the rotated file is still flushing', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'events.jsonl')
  const logger = pino({ level: 'silent' })
  const sink = new JsonLinesFileSink({ path, logger })
  await sink.start()
  sink.publish(event('b', 0))
  // The rotated file's flush never finishes (a stalled disk): reopen() waits for it up to its own bound.
  const old = (sink as unknown as { stream: WriteStream }).stream
  const end = old.end.bind(old) as (...args: unknown[]) => WriteStream
  const held: unknown[][] = []
  old.end = ((...args: unknown[]) => {
    held.push(args)
    return old
  }) as unknown as WriteStream['end']
  renameSync(path, `${path}.1`)
  const reopened = sink.reopen()
  await waitUntil(() => held.length > 0, 'reopen() to be flushing the rotated file')
  let timer: NodeJS.Timeout | undefined
  const outcome = await Promise.race([
    sink.close(200).then(() => 'closed'),
    new Promise((resolve) => (timer = setTimeout(() => resolve('still waiting after 5 s'), 5000))),
  ])
  clearTimeout(timer)
  t.equal(outcome, 'closed', 'close(200) did not wait for the 10 s flush bound of the rotated file')
  // The disk recovers: the held end() calls go through and the reopen completes.
  for (const args of held) end(...args)
  await reopened
  t.same(lines(`${path}.1`).map((e) => e.seq), [0], 'the rotated file kept its line')
})
