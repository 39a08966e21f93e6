/**
 * `audiosocket-soniox dead-letters list|redeliver` (src/cli/dead-letters.ts), in process against a
 * real receiver, plus one run of the built binary.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import t, { type Test } from 'tap'
import { deadLetters } from '../../src/cli/dead-letters.js'
import { DeadLetterFile, type DeadLetterInfo } from '../../src/webhook/dead-letter.js'
import { spawnCli } from '../support/spawn-server.js'
import { startWebhookReceiver, type WebhookReceiverOptions } from '../support/webhook-receiver.js'

const SECRET = 'whsec_' + Buffer.from('dead-letter-cli-test-secret-32b!').toString('base64')
const T0 = Date.parse('2026-11-20T22:00:00.000Z')

function info(callId: string, seq: number): DeadLetterInfo {
  const envelope = { id: `evt_${callId}_${seq}`, type: 'transcript.final', call_id: callId, seq, time: '2026-11-20T22:00:00.000Z', data: { text: `utterance ${seq}` } }
  return {
    id: envelope.id,
    callId,
    seq,
    type: envelope.type,
    bodyText: JSON.stringify(envelope),
    reason: seq === 0 ? 'rejected' : 'expired',
    status: seq === 0 ? 400 : 503,
    bodyExcerpt: null,
    error: { code: 'ERR_WEBHOOK_REJECTED', message: 'the webhook answered 400' },
    attempts: 3,
    firstAttemptAtMs: T0,
    lastAttemptAtMs: T0 + 1000,
    deadLetteredAtMs: T0 + 1000,
  }
}

/** A spool directory holding dead letters for call A (seq 2, then 1: out of order on purpose) and call B. */
async function spoolWithDeadLetters(t: Test, lockedBy?: number): Promise<{ dir: string; file: DeadLetterFile }> {
  const dir = t.testdir(lockedBy === undefined ? {} : { 'spool.lock': `${lockedBy}\n` })
  const file = new DeadLetterFile(join(dir, 'dead-letter.jsonl'))
  await file.append(info('A', 2))
  await file.append(info('B', 0))
  await file.append(info('A', 1))
  return { dir, file }
}

/** Runs the command in process; returns its exit code and what it printed. */
async function run(args: string[], env: Record<string, string>) {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  const out: string[] = []
  const err: string[] = []
  stdout.on('data', (c: Buffer) => out.push(c.toString()))
  stderr.on('data', (c: Buffer) => err.push(c.toString()))
  const code = await deadLetters(args, { env, stdout, stderr, now: () => T0 + 60_000 })
  return { code, stdout: out.join(''), stderr: err.join('') }
}

async function receiver(t: Test, options: WebhookReceiverOptions = {}) {
  const r = await startWebhookReceiver({ secret: SECRET, ...options })
  t.teardown(() => r.close())
  return r
}

t.test('list: one line per dead letter, or the stored JSON lines', async (t) => {
  const empty = await run(['list'], { SPOOL_DIR: t.testdir() })
  t.equal(empty.code, 0)
  t.match(empty.stdout, /^no dead letters in .*dead-letter\.jsonl\n$/)

  const { dir } = await spoolWithDeadLetters(t)
  // No SONIOX_API_KEY and no WEBHOOK_URL: listing needs neither.
  const listed = await run(['list'], { SPOOL_DIR: dir })
  t.equal(listed.code, 0, listed.stderr)
  const lines = listed.stdout.trim().split('\n')
  t.equal(lines.length, 4)
  t.match(lines[0], /2026-11-20T22:00:01\.000Z {2}evt_A_2 {2}call=A seq=2 transcript\.final {2}expired status=503 attempts=3/)
  t.match(lines[1], /evt_B_0 .*rejected status=400/)
  t.match(lines[3], /^3 dead letter\(s\) in /)

  const json = await run(['list', '--json'], { SPOOL_DIR: dir })
  const records = json.stdout.trim().split('\n').map((l) => JSON.parse(l))
  t.same(
    records.map((r) => [r.kind, r.id, r.event.seq]),
    [
      ['dead_letter', 'evt_A_2', 2],
      ['dead_letter', 'evt_B_0', 0],
      ['dead_letter', 'evt_A_1', 1],
    ],
  )
})

t.test('redeliver: posts every dead letter, signed, in seq order per call, and empties the file', async (t) => {
  const r = await receiver(t)
  const { dir, file } = await spoolWithDeadLetters(t)
  const result = await run(['redeliver'], { SPOOL_DIR: dir, WEBHOOK_URL: r.url, WEBHOOK_SECRET: SECRET })
  t.equal(result.code, 0, result.stderr)
  t.match(result.stdout, /3 delivered, 0 not/)
  t.same(
    r.events.filter((e) => e.call_id === 'A').map((e) => e.seq),
    [1, 2],
    'call A in seq order although the file had seq 2 first',
  )
  t.same(
    r.requests.map((x) => x.signatureValid),
    [true, true, true],
    'signed with the current secret',
  )
  t.same(
    r.requests.map((x) => x.headers['webhook-id']),
    r.requests.map((x) => x.body.id),
    'the same id as the original event, so a receiver that got it before deduplicates',
  )
  t.same((await file.read()).entries, [])
  t.equal(readFileSync(file.path, 'utf8'), '', 'with no server running, the file is compacted')
})

t.test('redeliver: a failure keeps that event and the rest of its call, in order; other calls go on', async (t) => {
  const r = await receiver(t, { respond: (req) => (req.body.id === 'evt_A_1' ? { status: 500 } : undefined) })
  const { dir, file } = await spoolWithDeadLetters(t)
  const result = await run(['redeliver'], { SPOOL_DIR: dir, WEBHOOK_URL: r.url, WEBHOOK_SECRET: SECRET })
  t.equal(result.code, 1)
  t.match(result.stdout, /evt_A_1 .*failed: status 500; kept/)
  t.match(result.stdout, /1 later event\(s\) of call A not attempted/)
  t.same(
    r.requests.map((x) => x.body.id),
    ['evt_A_1', 'evt_B_0'],
    'seq 2 of call A was not sent after seq 1 failed',
  )
  t.same(
    (await file.read()).entries.map((e) => e.id),
    ['evt_A_2', 'evt_A_1'],
  )
})

t.test('redeliver --id: only the given events; an unknown id is reported', async (t) => {
  const r = await receiver(t)
  const { dir, file } = await spoolWithDeadLetters(t)
  const result = await run(['redeliver', '--id', 'evt_B_0', '--id', 'evt_nope'], { SPOOL_DIR: dir, WEBHOOK_URL: r.url })
  t.equal(result.code, 1, 'not everything asked for was delivered')
  t.match(result.stderr, /evt_nope: not in /)
  t.same(
    r.requests.map((x) => x.body.id),
    ['evt_B_0'],
  )
  t.same(
    (await file.read()).entries.map((e) => e.id),
    ['evt_A_2', 'evt_A_1'],
  )
})

t.test('redeliver while the server runs: tombstones instead of a rewrite', async (t) => {
  const r = await receiver(t)
  // A live process (the test runner) holds the spool, as a running server would.
  const { dir, file } = await spoolWithDeadLetters(t, process.ppid)
  const result = await run(['redeliver', '--id', 'evt_B_0'], { SPOOL_DIR: dir, WEBHOOK_URL: r.url })
  t.equal(result.code, 0)
  const contents = await file.read()
  t.same(
    contents.entries.map((e) => e.id),
    ['evt_A_2', 'evt_A_1'],
  )
  t.equal(contents.redelivered, 1, 'the redelivery is recorded by appending, never by rewriting under the server')
  t.match(readFileSync(file.path, 'utf8'), /"kind":"redelivered","id":"evt_B_0","status":204,"at":"2026-11-20T22:01:00.000Z"/)
})

t.test('usage and configuration errors', async (t) => {
  const dir = t.testdir()
  t.equal((await run([], { SPOOL_DIR: dir })).code, 2)
  t.match((await run(['purge'], { SPOOL_DIR: dir })).stderr, /unknown command "purge"/)
  t.equal((await run(['list', '--id', 'x'], { SPOOL_DIR: dir })).code, 2)
  t.equal((await run(['list', '--frobnicate'], { SPOOL_DIR: dir })).code, 2)
  const noUrl = await run(['redeliver'], { SPOOL_DIR: dir })
  t.equal(noUrl.code, 78)
  t.match(noUrl.stderr, /WEBHOOK_URL is not set/)
  const bad = await run(['list'], { SPOOL_DIR: dir, SPOOL_MAX_BYTES: 'lots' })
  t.equal(bad.code, 78)
  t.match(bad.stderr, /SPOOL_MAX_BYTES/)
})

t.test('the built command: audiosocket-soniox dead-letters list', async (t) => {
  const { dir } = await spoolWithDeadLetters(t)
  const p = spawnCli(['dead-letters', 'list'], { SPOOL_DIR: dir })
  t.equal(await p.exited, 0, p.stderrLines.join('\n'))
  t.equal(p.stdoutLines.length, 4)
  t.match(p.stdoutLines[3], /^3 dead letter\(s\)/)
})
