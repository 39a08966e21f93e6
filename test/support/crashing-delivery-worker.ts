/**
 * The real delivery worker (src/webhook/delivery-worker.ts) plus one fault for the tests of
 * WebhookWorkerSink: while the file named by CRASH_MARKER exists, the worker dies with an uncaught
 * exception on the publish message that brings its count of events to CRASH_AFTER_EVENTS, right
 * after the real worker has handled (and spooled) those events and before it can report so. The marker is deleted first,
 * so the replacement worker does not crash again.
 */
import { existsSync, unlinkSync } from 'node:fs'
import { parentPort } from 'node:worker_threads'
import '../../src/webhook/delivery-worker.js'

const marker = process.env['CRASH_MARKER']
const crashAfter = Number(process.env['CRASH_AFTER_EVENTS'] ?? '0')
let published = 0

parentPort?.on('message', (message: { type: string; events?: unknown[] }) => {
  if (message.type !== 'publish' || marker === undefined) return
  // A publish message carries the events of one turn of the main thread: count events, not messages.
  const before = published
  published += message.events?.length ?? 0
  if (before < crashAfter && published >= crashAfter && existsSync(marker)) {
    unlinkSync(marker)
    throw new Error('injected delivery worker crash')
  }
})
