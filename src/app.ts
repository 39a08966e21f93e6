/**
 * Composition root: turns a Config into a running server with its real parts (Soniox sessions,
 * event sink). Used by `audiosocket-soniox serve` and by the integration tests.
 */
import type { Config } from './config.js'
import type { Logger } from './logger.js'
import { CallSession } from './call/call-session.js'
import { AudioSocketServer } from './server/audiosocket-server.js'
import { ResilientTranscriber } from './soniox/resilient-transcriber.js'
import { SonioxHealth } from './soniox/soniox-health.js'
import { SonioxSession, type SonioxSessionHandlers } from './soniox/soniox-session.js'
import type { EventSink } from './webhook/envelope.js'
import { createEventSink } from './delivery.js'
import { createCaptureTaps } from './capture/recorder.js'
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
  const sink = options.sink ?? createEventSink(config, logger)
  const sonioxHealth = new SonioxHealth(logger.child({ component: 'soniox' }))
  // CAPTURE_DIR: every call recorded as it is served; a recording failure never touches the call.
  const captureTaps =
    config.capture.dir === null ? undefined : createCaptureTaps({ dir: config.capture.dir, logger: logger.child({ component: 'capture' }), tool: `audiosocket-soniox ${VERSION}` })
  const server = new AudioSocketServer({
    host: config.audiosocket.host,
    port: config.audiosocket.port,
    logger,
    createCall: (socket, onClosed) =>
      new CallSession({
        socket,
        wireTap: captureTaps?.(socket),
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
          silenceMode: config.audiosocket.silenceMode,
          silenceAfterMs: config.audiosocket.silenceAfterMs,
        },
        createTranscriber: (callId, handlers, callLog) => createTranscriber(config, callId, handlers, callLog, sonioxHealth),
      }),
  })

  return {
    server,
    sink,
    async start() {
      // Before the first call: the sink recovers what a previous run left in the spool and opens its files.
      await sink.start?.()
      const address = await server.listen()
      logger.info(
        { host: address.address, port: address.port, sonioxUrl: config.soniox.websocketUrl, model: config.soniox.model, webhook: config.webhook.url ?? 'stdout' },
        'AudioSocket server listening',
      )
      if (config.capture.dir !== null) logger.info({ captureDir: config.capture.dir }, 'recording every call to CAPTURE_DIR (the files hold call audio)')
      return { host: address.address, port: address.port }
    },
    async stop(timeoutMs) {
      const deadline = Date.now() + timeoutMs
      await server.close()
      await captureTaps?.drain()
      await sink.close(Math.max(0, deadline - Date.now()))
    },
  }
}

/** One call's transcriber: Soniox sessions, replaced on failure and rotated before their limit. */
function createTranscriber(config: Config, callId: string, handlers: SonioxSessionHandlers, callLog: Logger, health: SonioxHealth): ResilientTranscriber {
  const s = config.soniox
  return new ResilientTranscriber(
    {
      createSession: (sessionHandlers) =>
        new SonioxSession(
          {
            url: s.websocketUrl,
            apiKey: s.apiKey,
            recognition: s,
            clientReferenceId: callId,
            connectTimeoutMs: s.connectTimeoutMs,
            finishTimeoutMs: s.finishTimeoutMs,
            audioBatchMs: s.audioBatchMs,
            maxBufferedAudioMs: s.maxBufferedAudioMs,
            keepaliveMs: s.keepaliveMs,
            pingIntervalMs: s.pingIntervalMs,
            pongTimeoutMs: s.pongTimeoutMs,
          },
          sessionHandlers,
        ),
      maxBufferedAudioMs: s.maxBufferedAudioMs,
      maxSessionMs: s.maxSessionMs,
      reconnect: {
        maxAttempts: s.reconnectMaxAttempts,
        maxMs: s.reconnectMaxMs,
        initialDelayMs: s.reconnectInitialDelayMs,
        maxDelayMs: s.reconnectMaxDelayMs,
      },
      logger: callLog,
      health,
    },
    handlers,
  )
}
