/**
 * WEBHOOK_URL and EVENTS_FILE together (the fan-out built by src/delivery.ts): a replayed call
 * reaches both, the same events in the same order.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { loadCapture } from '../support/frames.js'
import { startHarness } from '../support/harness.js'
import { replayCapture } from '../support/replay.js'

t.test('a call is delivered to the webhook and appended to EVENTS_FILE', async (t) => {
  const eventsFile = join(t.testdir(), 'events.jsonl')
  const h = await startHarness({ env: { EVENTS_FILE: eventsFile } })
  let stopped = false
  t.teardown(() => (stopped ? undefined : h.stop()))
  const id = randomUUID()
  await replayCapture(loadCapture('app-8k-dtmf'), { port: h.port, speed: 8, uuidBytes: uuidToBytes(id) })
  await h.receiver.waitFor((events) => events.some((e) => e.type === 'call.ended' && e.call_id === id), 10_000)
  await h.stop()
  stopped = true

  const lines = readFileSync(eventsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  t.ok(lines.length >= 6, `the file holds the call (${lines.length} events)`)
  t.same(
    lines.map((e) => e.seq),
    lines.map((_, i) => i),
    'in seq order',
  )
  t.same(lines, h.receiver.eventsFor(id), 'exactly what the webhook received')
})
