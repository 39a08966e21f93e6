/**
 * src/webhook/dead-letter.ts: one JSON line per dead letter, tombstones for redelivered events,
 * tolerance of a torn last line, and compaction.
 */
import { appendFile, chown, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { DeadLetterFile, formatDeadLetter, parseDeadLetters, type DeadLetterInfo } from '../../src/webhook/dead-letter.js'

const T0 = Date.parse('2026-11-20T22:00:00.000Z')

function info(callId: string, seq: number, overrides: Partial<DeadLetterInfo> = {}): DeadLetterInfo {
  const event = { id: `evt_${callId}_${seq}`, type: 'transcript.final', call_id: callId, seq, time: '2026-11-20T22:00:00.000Z', data: { text: 'é "q"' } }
  return {
    id: event.id,
    callId,
    seq,
    type: event.type,
    bodyText: JSON.stringify(event),
    reason: 'rejected',
    status: 400,
    bodyExcerpt: '{"error":"bad"}',
    error: { code: 'ERR_WEBHOOK_REJECTED', message: 'the webhook answered 400' },
    attempts: 1,
    firstAttemptAtMs: T0,
    lastAttemptAtMs: T0 + 1000,
    deadLetteredAtMs: T0 + 1001,
    ...overrides,
  }
}

t.test('a dead letter is one self-describing JSON line holding the envelope as sent', async (t) => {
  const line = formatDeadLetter(info('c1', 3))
  t.ok(line.endsWith('\n'))
  t.equal(line.split('\n').length, 2, 'exactly one line')
  const parsed = JSON.parse(line)
  t.same(parsed, {
    v: 1,
    kind: 'dead_letter',
    id: 'evt_c1_3',
    call_id: 'c1',
    seq: 3,
    type: 'transcript.final',
    reason: 'rejected',
    status: 400,
    body_excerpt: '{"error":"bad"}',
    error: { code: 'ERR_WEBHOOK_REJECTED', message: 'the webhook answered 400' },
    attempts: 1,
    first_attempt_at: '2026-11-20T22:00:00.000Z',
    last_attempt_at: '2026-11-20T22:00:01.000Z',
    dead_lettered_at: '2026-11-20T22:00:01.001Z',
    event: JSON.parse(info('c1', 3).bodyText),
  })
  const [entry] = parseDeadLetters(line).entries
  t.equal(entry?.bodyText, info('c1', 3).bodyText, 'read back, the envelope is the same bytes')
})

t.test('append, read, redelivered tombstones, and a dead letter that comes back', async (t) => {
  const file = new DeadLetterFile(join(t.testdir(), 'dead-letter.jsonl'))
  t.same(await file.read(), { entries: [], redelivered: 0, damaged: 0 }, 'a missing file is an empty one')
  await file.append(info('c1', 0))
  await file.append(info('c1', 1, { reason: 'expired', status: null, bodyExcerpt: null }))
  await file.append(info('c2', 0))
  await file.appendRedelivered('evt_c1_0', 204, T0 + 5000)
  let contents = await file.read()
  t.same(
    contents.entries.map((e) => [e.id, e.reason, e.status]),
    [
      ['evt_c1_1', 'expired', null],
      ['evt_c2_0', 'rejected', 400],
    ],
  )
  t.equal(contents.redelivered, 1)

  // Redelivered, then refused again later: it is a dead letter again.
  await file.append(info('c1', 0, { status: 410 }))
  contents = await file.read()
  t.same(
    contents.entries.map((e) => [e.id, e.status]),
    [
      ['evt_c1_1', null],
      ['evt_c2_0', 400],
      ['evt_c1_0', 410],
    ],
  )
})

t.test('a torn last line is skipped, and the next append does not glue to it', async (t) => {
  const path = join(t.testdir(), 'dead-letter.jsonl')
  const whole = formatDeadLetter(info('c1', 0))
  await writeFile(path, whole + formatDeadLetter(info('c1', 1)).slice(0, 50))
  const file = new DeadLetterFile(path)
  let contents = await file.read()
  t.same(
    contents.entries.map((e) => e.id),
    ['evt_c1_0'],
  )
  t.equal(contents.damaged, 1)

  await file.append(info('c1', 2))
  contents = await file.read()
  t.same(
    contents.entries.map((e) => e.id),
    ['evt_c1_0', 'evt_c1_2'],
    'the new line is whole',
  )
  t.equal(contents.damaged, 1, 'the fragment stays one damaged line')
})

t.test('compaction keeps exactly the live dead letters, verbatim', async (t) => {
  const path = join(t.testdir(), 'dead-letter.jsonl')
  const file = new DeadLetterFile(path)
  t.equal(await file.compact(), 0, 'no file: nothing to do')
  await file.append(info('a', 0))
  await file.append(info('a', 1))
  t.equal(await file.compact(), 0, 'nothing redelivered: the file is left as is')
  await file.appendRedelivered('evt_a_0', 200, T0)
  await appendFile(path, '{not json\n')
  const before = (await file.read()).entries.map((e) => e.line)
  t.equal(await file.compact(), 3, 'the redelivered entry, its tombstone and the damaged line go')
  t.equal(await readFile(path, 'utf8'), `${before.join('\n')}\n`)
  t.same(
    (await file.read()).entries.map((e) => e.id),
    ['evt_a_1'],
  )
})

t.test(
  "compaction as root keeps the file's owner (sudo dead-letters redeliver in the service's spool)",
  { skip: process.getuid?.() === 0 ? false : 'needs root to give the file another owner' },
  async (t) => {
    const path = join(t.testdir(), 'dead-letter.jsonl')
    const file = new DeadLetterFile(path)
    await file.append(info('a', 0))
    await file.append(info('a', 1))
    await file.appendRedelivered('evt_a_0', 200, T0)
    // The service's DynamicUser= owns the spool; root runs the command.
    await chown(path, 4242, 4343)
    t.equal(await file.compact(), 2)
    const after = await stat(path)
    t.same([after.uid, after.gid], [4242, 4343], 'the rewritten file still belongs to the service')
    t.equal(after.mode & 0o777, 0o600)
  },
)
