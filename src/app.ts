/**
 * Composition root: turns a Config into a running server with its real parts (Soniox sessions,
 * event sink). Used by `audiosocket-soniox serve` and by the integration tests.
 */
import type { Config } from './config.js'
import type { Logger } from './logger.js'
import { CallSession } from './call/call-session.js'
import { AudioSocketServer } from './server/audiosocket-server.js'
import { SonioxSession } from './soniox/soniox-session.js'
import type { EventSink } from './webhook/envelope.js'
import { HttpWebhookSink } from './webhook/http-sink.js'
import { JsonLinesSink } from './webhook/stdout-sink.js'
import { VERSION } from './version.js'

export interface App {
  readonly server: AudioSocketServer
  readonly sink: EventSink
  /** Resolves with the bound port once listening. */
  start(): Promise<{ host: string; port: number }>
  /** Ends every live call properly, then delivers what the sink holds, bounded by `timeoutMs`. */
  stop(timeoutMs: number): Promise<void>
}

/** A partial frame that Asterisk does not complete in this time is a broken peer (Asterisk writes whole frames). */
const STALL_TIMEOUT_MS = 2000

export function createApp(config: Config, logger: Logger, options: { sink?: EventSink } = {}): App {
  const sink = options.sink ?? createSink(config, logger)
  const server = new AudioSocketServer({
    host: config.audiosocket.host,
    port: config.audiosocket.port,
    logger,
    createCall: (socket, onClosed) =>
      new CallSession({
        socket,
        logger,
        sink,
        onClosed,
        settings: {
          firstFrameTimeoutMs: config.audiosocket.firstFrameTimeoutMs,
          slinSampleRate: config.audiosocket.slinSampleRate,
          maxPayloadBytes: config.audiosocket.maxPayloadBytes,
          stallTimeoutMs: STALL_TIMEOUT_MS,
          hangupGraceMs: config.audiosocket.hangupGraceMs,
          partialEvents: config.transcript.partialEvents,
          partialIntervalMs: config.transcript.partialIntervalMs,
        },
        createTranscriber: (callId, handlers) =>
          new SonioxSession(
            {
              url: config.soniox.websocketUrl,
              apiKey: config.soniox.apiKey,
              recognition: config.soniox,
              clientReferenceId: callId,
              connectTimeoutMs: config.soniox.connectTimeoutMs,
              finishTimeoutMs: config.soniox.finishTimeoutMs,
              audioBatchMs: config.soniox.audioBatchMs,
              maxBufferedAudioMs: config.soniox.maxBufferedAudioMs,
            },
            handlers,
          ),
      }),
  })

  return {
    server,
    sink,
    async start() {
      const address = await server.listen()
      logger.info(
        { host: address.address, port: address.port, sonioxUrl: config.soniox.websocketUrl, model: config.soniox.model, webhook: config.webhook.url ?? 'stdout' },
        'AudioSocket server listening',
      )
      return { host: address.address, port: address.port }
    },
    async stop(timeoutMs) {
      const deadline = Date.now() + timeoutMs
      await server.close()
      await sink.close(Math.max(0, deadline - Date.now()))
    },
  }
}

function createSink(config: Config, logger: Logger): EventSink {
  if (config.webhook.url === null) return new JsonLinesSink({ logger: logger.child({ component: 'events' }) })
  return new HttpWebhookSink({
    url: config.webhook.url,
    secret: config.webhook.secret ?? undefined,
    timeoutMs: config.webhook.timeoutMs,
    maxAttempts: config.webhook.maxAttempts,
    backoff: { initialMs: config.webhook.retryInitialMs, maxMs: config.webhook.retryMaxMs },
    logger: logger.child({ component: 'webhook' }),
    version: VERSION,
  })
}
