/**
 * The delivery promise end to end, with the built server as a separate process: two real Asterisk
 * captures are replayed while the webhook refuses events (503), so they pile up in the spool; the
 * server is killed with SIGKILL; the receiver comes back; a new server on the same SPOOL_DIR
 * delivers every event of both calls, in seq order per call, signed, and duplicates (an event whose
 * 2xx arrived but whose ack did not reach the spool) only ever repeat the same id and bytes.
 */
import { randomUUID } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { parseSegment } from '../../src/webhook/spool-format.js'
import { startFakeSoniox } from '../support/fake-soniox.js'
import { loadCapture } from '../support/frames.js'
import { replayCapture } from '../support/replay.js'
import { spawnCli, type ServerProcess } from '../support/spawn-server.js'
import { waitUntil } from '../support/wait.js'
import { startWebhookReceiver, type ReceivedRequest } from '../support/webhook-receiver.js'

const SECRET = 'whsec_' + Buffer.from('durability-test-secret-32-bytes!').toString('base64')

/** Every event record in the spool's segment files, acknowledged or not, and the acks. */
function readSpool(dir: string): { events: Map<string, { callId: string; seq: number; type: string }>; acks: Set<string> } {
  const events = new Map<string, { callId: string; seq: number; type: string }>()
  const acks = new Set<string>()
  for (const name of readdirSync(dir).filter((n) => n.startsWith('segment-'))) {
    const content = parseSegment(readFileSync(join(dir, name)))
    if (content.status !== 'ok') continue
    for (const e of content.events) events.set(e.id, { callId: e.callId, seq: e.seq, type: e.type })
    for (const id of content.acks) acks.add(id)
  }
  return { events, acks }
}

t.test('SIGKILL with events pending: after a restart every event arrives, in order per call, signed', async (t) => {
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  const callA = randomUUID()
  const callB = randomUUID()
  // Phase 1: call A's first three events are accepted, everything else is refused.
  let receiverUp = false
  const receiver = await startWebhookReceiver({
    secret: SECRET,
    respond: (req) => (receiverUp || (req.body?.call_id === callA && req.body.seq < 3) ? undefined : { status: 503, body: 'down for maintenance' }),
  })
  t.teardown(() => receiver.close())

  const spoolDir = t.testdir()
  const env = {
    AUDIOSOCKET_PORT: '0',
    SONIOX_API_KEY: 'test-key',
    SONIOX_WEBSOCKET_URL: soniox.url,
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_RETRY_INITIAL_MS: '50',
    WEBHOOK_RETRY_MAX_MS: '200',
    SPOOL_DIR: spoolDir,
  }
  const processes: ServerProcess[] = []
  t.teardown(() => {
    for (const p of processes) p.child.kill('SIGKILL')
  })

  const first = spawnCli(['serve'], env)
  processes.push(first)
  const listening = await first.waitForLog((r) => r.msg === 'AudioSocket server listening')
  await Promise.all([
    replayCapture(loadCapture('app-8k-dtmf'), { port: listening.port as number, speed: 8, uuidBytes: uuidToBytes(callA) }),
    replayCapture(loadCapture('app-8k-speech'), { port: listening.port as number, speed: 8, uuidBytes: uuidToBytes(callB) }),
  ])
  // Both calls are over, and their last events are on disk, unacknowledged.
  await waitUntil(() => {
    const { events, acks } = readSpool(spoolDir)
    const ended = [...events.entries()].filter(([id, e]) => e.type === 'call.ended' && !acks.has(id))
    return ended.length === 2
  }, 'both call.ended events in the spool', 20_000)
  // And call A is stuck at seq 3 behind the outage.
  await waitUntil(() => receiver.requests.some((r) => r.body?.call_id === callA && r.body.seq === 3), 'call A retrying seq 3')

  first.child.kill('SIGKILL')
  t.equal(await first.exited, 'SIGKILL')
  t.ok(existsSync(join(spoolDir, 'spool.lock')), 'a killed server leaves its lock behind')

  const spooled = readSpool(spoolDir).events
  const expected = new Map<string, string[]>([
    [callA, []],
    [callB, []],
  ])
  for (const [id, e] of [...spooled.entries()].sort((x, y) => x[1].seq - y[1].seq)) expected.get(e.callId)?.push(id)
  const countA = expected.get(callA)?.length ?? 0
  const countB = expected.get(callB)?.length ?? 0
  t.ok(countA > 5 && countB > 5, `both calls produced events (${countA} and ${countB})`)
  t.same(
    receiver.events.map((e) => e.seq),
    [0, 1, 2],
    'before the kill only call A seq 0-2 were accepted',
  )

  const acceptedBeforeKill = receiver.events.length
  receiverUp = true
  const second = spawnCli(['serve'], env)
  processes.push(second)
  await second.waitForLog((r) => r.msg === 'AudioSocket server listening')
  await receiver.waitFor((events) => {
    const ids = new Set(events.map((e) => e.id))
    return [...spooled.keys()].every((id) => ids.has(id))
  }, 20_000)

  for (const [callId, ids] of expected) {
    const accepted = receiver.events.filter((e) => e.call_id === callId)
    const firstSeen: number[] = []
    const seen = new Set<string>()
    for (const e of accepted) {
      if (seen.has(e.id)) continue
      seen.add(e.id)
      firstSeen.push(e.seq)
    }
    t.same(
      firstSeen,
      ids.map((_, i) => i),
      `call ${callId === callA ? 'A' : 'B'}: every event, gapless, first delivered in seq order`,
    )
    // Within one run a call's events are strictly ordered; a repeat can only come from the restart.
    const secondRun = receiver.events.slice(acceptedBeforeKill).filter((e) => e.call_id === callId).map((e) => e.seq)
    t.same(
      secondRun,
      [...secondRun].sort((a, b) => a - b),
      'the restarted server never sends an earlier event of a call after a later one',
    )
    t.equal(accepted.at(-1)?.type, 'call.ended')
  }

  // At least once: a repeat is the same event (same id, same bytes), never a different one.
  const bodiesById = new Map<string, Set<string>>()
  for (const r of receiver.requests.filter((x: ReceivedRequest) => x.status === 204)) {
    const set = bodiesById.get(r.body.id) ?? new Set<string>()
    set.add(r.rawBody)
    bodiesById.set(r.body.id, set)
  }
  t.ok(
    receiver.requests.every((r) => r.headers['webhook-id'] === r.body?.id),
    'webhook-id is the event id on every attempt',
  )
  t.ok(
    [...bodiesById.values()].every((bodies) => bodies.size === 1),
    'each id always carried the same bytes',
  )
  t.equal(bodiesById.size, countA + countB, 'exactly the spooled events were delivered, none invented')
  t.ok(
    receiver.requests.every((r) => r.signatureValid === true),
    'every request of both runs was signed, each attempt over its own timestamp',
  )
  const duplicates = receiver.events.length - bodiesById.size
  t.ok(duplicates <= 3, `duplicates only where a 2xx may have beaten its ack to the disk (${duplicates})`)

  const recoveredLog = await second.waitForLog((r) => r.msg === 'delivering events spooled by a previous run first')
  t.equal(recoveredLog.calls, 2)

  second.child.kill('SIGTERM')
  t.equal(await second.exited, 0)
  t.same(
    readdirSync(spoolDir).filter((n) => n.startsWith('segment-')),
    [],
    'everything delivered: the segment files are gone',
  )
  t.notOk(existsSync(join(spoolDir, 'spool.lock')), 'a clean stop releases the lock')
})
