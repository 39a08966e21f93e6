/**
 * The real delivery worker (src/webhook/delivery-worker.ts) plus what the tests of
 * WebhookWorkerSink need inside it:
 *
 * - A record of every message it receives, sent back as a log line (the worker's own channel to
 *   the main logger's destination): `{"msg":"test worker received","threadId":…,"type":…,"ids":[…]}`,
 *   `ids` being the event ids of a `publish` message, in order. A test reads them from its logger,
 *   which tells which worker (threadId) got which events in how many messages.
 * - One fault: while the file named by CRASH_MARKER exists, the worker dies with an uncaught
 *   exception on the publish message that brings its count of events to CRASH_AFTER_EVENTS, right
 *   after the real worker has handled (and spooled) those events and before it can report so. The
 *   marker is deleted first, so the replacement worker does not crash again.
 */
import { existsSync, unlinkSync } from 'node:fs'
import { parentPort, threadId } from 'node:worker_threads'
import '../../src/webhook/delivery-worker.js'
import type { FromWorker, ToWorker } from '../../src/webhook/worker-messages.js'

const marker = process.env['CRASH_MARKER']
const crashAfter = Number(process.env['CRASH_AFTER_EVENTS'] ?? '0')
let published = 0

parentPort?.on('message', (message: ToWorker) => {
  const ids = message.type === 'publish' ? message.events.map((e) => e.event.id) : []
  const line = JSON.stringify({ msg: 'test worker received', threadId, type: message.type, ids }) + '\n'
  parentPort?.postMessage({ type: 'log', line } satisfies FromWorker)

  if (message.type !== 'publish' || marker === undefined) return
  // A publish message carries the events of one turn of the main thread: count events, not messages.
  const before = published
  published += message.events.length
  if (before < crashAfter && published >= crashAfter && existsSync(marker)) {
    unlinkSync(marker)
    throw new Error('injected delivery worker crash')
  }
})
