/**
 * Event delivery wiring: which sinks a Config asks for, built with their real parts (spool,
 * dead-letter file, CA). Used by the composition root (app.ts) and by the `dead-letters` command,
 * so both reach the webhook with exactly the same settings.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import type { Config } from './config/index.js'
import type { Logger } from './shared/logger.js'
import { AppError } from './shared/errors.js'
import { VERSION } from './version.js'
import { DEAD_LETTER_FILE } from './webhook/dead-letter.js'
import type { EventSink } from './events/envelope.js'
import { FanOutSink } from './events/fan-out-sink.js'
import { JsonLinesFileSink } from './events/json-lines-file-sink.js'
import type { WebhookMetrics, WebhookSinkStats } from './webhook/delivery-queue.js'
import type { WebhookTransportOptions } from './webhook/http-transport.js'
import type { SpoolStats } from './webhook/spool.js'
import { JsonLinesSink } from './events/json-lines-sink.js'
import { WebhookWorkerSink } from './webhook/worker-sink.js'

/** SPOOL_DIR as an absolute path (relative settings are taken from the working directory at start). */
export function spoolDirectory(config: Config): string {
  return path.resolve(config.spool.dir)
}

export function deadLetterPath(config: Config): string {
  return path.join(spoolDirectory(config), DEAD_LETTER_FILE)
}

/**
 * Everything needed to POST to WEBHOOK_URL. Reads WEBHOOK_CA_FILE (once, at start; config
 * validation has already checked it is readable PEM). Throws ERR_CONFIG_INVALID without WEBHOOK_URL.
 */
export function webhookTransportOptions(config: Config): WebhookTransportOptions & { ca: string | undefined } {
  const w = config.webhook
  if (w.url === null) throw new AppError('ERR_CONFIG_INVALID', 'WEBHOOK_URL is not set')
  return {
    url: w.url,
    secret: w.secret ?? undefined,
    timeoutMs: w.timeoutMs,
    headers: w.headers,
    ca: w.caFile === null ? undefined : readFileSync(w.caFile, 'utf8'),
    maxSockets: w.concurrency,
    version: VERSION,
    format: w.format,
  }
}

/** The webhook sink's figures, for /metrics. */
export interface WebhookStatus {
  stats(): WebhookSinkStats
  spoolStats(): SpoolStats | undefined
}

/**
 * WEBHOOK_URL (spooled, retried, dead-lettered) and/or EVENTS_FILE (JSON lines); stdout JSON lines
 * when neither is set. Also hands back the webhook sink's figures, counted in `metrics`. The
 * webhook (spool, retries, dead letters) runs in a worker thread: see webhook/delivery-worker.ts.
 * The caller must `start()` the sink before taking calls.
 */
export function createDelivery(
  config: Config,
  logger: Logger,
  options: { webhookMetrics?: WebhookMetrics } = {},
): { sink: EventSink; webhook: WebhookStatus | undefined } {
  const sinks: EventSink[] = []
  let webhook: WebhookWorkerSink | undefined
  if (config.webhook.url !== null) {
    const webhookLog = logger.child({ component: 'webhook' })
    const transport = webhookTransportOptions(config)
    sinks.push(
      (webhook = new WebhookWorkerSink({
        init: {
          sink: {
            url: config.webhook.url,
            secret: transport.secret,
            timeoutMs: transport.timeoutMs,
            maxAgeMs: config.webhook.maxAgeMs,
            concurrency: config.webhook.concurrency,
            backoff: { initialMs: config.webhook.retryInitialMs, maxMs: config.webhook.retryMaxMs },
            headers: transport.headers,
            ca: transport.ca,
            version: VERSION,
            format: config.webhook.format,
          },
          spool: { dir: spoolDirectory(config), maxBytes: config.spool.maxBytes },
          deadLetterPath: deadLetterPath(config),
          log: { level: webhookLog.level, bindings: webhookLog.bindings() },
        },
        logger: webhookLog,
        metrics: options.webhookMetrics,
      })),
    )
  }
  if (config.events.file !== null) {
    sinks.push(new JsonLinesFileSink({ path: config.events.file, logger: logger.child({ component: 'events-file' }) }))
  }
  if (sinks.length === 0) return { sink: new JsonLinesSink({ logger: logger.child({ component: 'events' }) }), webhook }
  const [only] = sinks
  return { sink: sinks.length === 1 && only ? only : new FanOutSink(sinks), webhook }
}
