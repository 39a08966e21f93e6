/**
 * Composition root: turns a Config into a running server with its real parts (Soniox sessions,
 * event sink, admission, the HTTP endpoint and its metrics). Used by `audiosocket-soniox serve` and
 * by the integration tests.
 */
import type { Config } from './config/index.js'
import type { Logger } from './shared/logger.js'
import { CallSession, type CallAdmission, type CallRecognitionOptions, type TranscriberHandlers } from './call/call-session.js'
import { AudioSocketServer } from './server/audiosocket-server.js'
import { AddressMatcher } from './server/admission.js'
import { parseCidr } from './shared/cidr.js'
import { HttpEndpoint, type NotReady } from './server/http-endpoint.js'
import { RegistrationStore } from './server/registrations.js'
import { createServiceMetrics, type ServiceMetrics } from './server/service-metrics.js'
import { AppError } from './shared/errors.js'
import { LogThrottle } from './shared/log-throttle.js'
import type { Guard } from './shared/guard.js'
import { redactUrl } from './shared/redact-url.js'
import { probeSoniox } from './soniox/probe.js'
import { SonioxProber } from './soniox/soniox-prober.js'
import { ResilientTranscriber } from './soniox/resilient-transcriber.js'
import { SonioxHealth } from './soniox/soniox-health.js'
import { SonioxSession, type SonioxMetrics } from './soniox/soniox-session.js'
import { SonioxTranscriber } from './soniox/soniox-transcriber.js'
import type { EventSink } from './events/envelope.js'
import { createDelivery, type WebhookStatus } from './delivery.js'
import { createCaptureTaps } from './capture/recorder.js'
import { VERSION } from './version.js'
import { AriEventStream, AriRest } from './ari/index.js'
import { ConversationTaps } from './server/conversation-taps.js'

export interface App {
  readonly server: AudioSocketServer
  readonly sink: EventSink
  readonly metrics: ServiceMetrics
  readonly registrations: RegistrationStore
  /** Taps of bridged calls through ARI; undefined without ARI_URL. */
  readonly conversations: ConversationTaps | undefined
  /**
   * Resolves with the bound ports once listening (`httpPort` undefined when HTTP_PORT is 0).
   * Calls are taken from then on; ready (`notReady()` undefined) only once Soniox has answered
   * the first probe session.
   */
  start(): Promise<{ host: string; port: number; httpPort: number | undefined }>
  /** Why /readyz answers 503 now (`starting`, `draining`, `soniox_*`); undefined while ready. */
  notReady(): NotReady | undefined
  /**
   * Stops taking calls (readyz 503, the AudioSocket listener closed, so new connections are
   * refused) while live calls go on; resolves true once they have all ended, false at `timeoutMs`.
   */
  drain(timeoutMs: number): Promise<boolean>
  /**
   * Ends every remaining call properly (Soniox's last words, call.ended with reason shutdown,
   * hangup to Asterisk), delivers what the sink holds within `flushTimeoutMs` (the spool keeps the
   * rest), then closes the HTTP endpoint.
   */
  stop(flushTimeoutMs: number): Promise<void>
}

/** A partial frame that Asterisk does not complete in this time is a broken peer (Asterisk writes whole frames). */
const STALL_TIMEOUT_MS = 2000

/**
 * While Soniox refuses the account (401/402) or the settings, one probe session this often notices
 * when it accepts again; while it does not answer at all, probes back off up to this interval.
 */
const ACCOUNT_REPROBE_MS = 30_000
/** A line a peer can trigger before its call exists is logged at most once per cause in this interval. */
const CONNECTION_LOG_INTERVAL_MS = 10_000

export function createApp(config: Config, logger: Logger, options: { sink?: EventSink; accountReprobeMs?: number } = {}): App {
  let state: 'starting' | 'running' | 'draining' = 'starting'
  let webhook: WebhookStatus | undefined
  const metrics = createServiceMetrics({
    version: VERSION,
    ready: () => notReady() === undefined,
    webhook: () => webhook && { pending: webhook.stats().pending, spoolBytes: webhook.spoolStats()?.bytes ?? 0 },
    registrations: () => ({ count: registrations.size, bytes: registrations.bytes }),
  })
  let sink: EventSink
  if (options.sink) sink = options.sink
  else ({ sink, webhook } = createDelivery(config, logger, { webhookMetrics: metrics.webhook }))
  const sonioxHealth = new SonioxHealth(logger.child({ component: 'soniox' }))
  const registrations = new RegistrationStore(config.admission.registrationTtlMs, {
    maxCount: config.admission.registrationMaxCount,
    maxBytes: config.admission.registrationMaxBytes,
  })

  const notReady = (): NotReady | undefined => {
    if (state !== 'running') return { reason: state }
    return sonioxProber.notReady()
  }

  /**
   * UUIDs of the calls from admission until their call.ended: events are keyed by call_id and
   * numbered by seq, so a second live connection with the same UUID would interleave two streams
   * under one id and reuse seq numbers. It is refused (and its registration left untouched).
   */
  const liveCallIds = new Set<string>()
  const admit = (callId: string): CallAdmission => {
    if (liveCallIds.has(callId)) {
      metrics.connectionRefused('duplicate_uuid')
      return { admitted: false, reason: 'a live call already has this UUID (two AudioSocket() connections with one UUID: give each its own, e.g. ${UUID()})' }
    }
    // A tap's stream (a conversation's leg): its UUID was made for it, so it counts as registered.
    const leg = conversations?.takeLeg(callId)
    if (leg !== undefined) {
      liveCallIds.add(callId)
      return { admitted: true, options: leg }
    }
    const registered = registrations.take(callId)
    if (registered === undefined && config.admission.requireRegistration) {
      metrics.connectionRefused('unregistered')
      return { admitted: false, reason: 'its UUID is not registered (REQUIRE_REGISTRATION: POST /calls/{uuid} before AudioSocket())' }
    }
    liveCallIds.add(callId)
    return registered === undefined ? { admitted: true } : { admitted: true, options: registered }
  }

  // CAPTURE_DIR: every call recorded as it is served; a recording failure never touches the call.
  const captureTaps =
    config.capture.dir === null ? undefined : createCaptureTaps({ dir: config.capture.dir, logger: logger.child({ component: 'capture' }), tool: `audiosocket-soniox ${VERSION}` })
  const allowed = config.admission.allowedSources
  // Lines any peer can trigger before a call exists (refusals, streams that are not AudioSocket).
  const connectionLogs = new LogThrottle(CONNECTION_LOG_INTERVAL_MS)
  const server = new AudioSocketServer({
    host: config.audiosocket.host,
    port: config.audiosocket.port,
    logger,
    maxCalls: config.admission.maxCalls,
    allowedSources: allowed.length === 0 ? undefined : new AddressMatcher(allowed.map(parseCidr)),
    hangupGraceMs: config.audiosocket.hangupGraceMs,
    metrics,
    createCall: (socket, onClosed) =>
      new CallSession({
        socket,
        wireTap: captureTaps?.(socket),
        logger,
        sink,
        onClosed: (call) => {
          if (call.callId !== undefined) liveCallIds.delete(call.callId)
          onClosed(call)
        },
        metrics: metrics.call,
        connectionLogs,
        admit,
        settings: {
          firstFrameTimeoutMs: config.audiosocket.firstFrameTimeoutMs,
          slinSampleRate: config.audiosocket.slinSampleRate,
          slinEncoding: config.audiosocket.slinEncoding,
          maxPayloadBytes: config.audiosocket.maxPayloadBytes,
          stallTimeoutMs: STALL_TIMEOUT_MS,
          hangupGraceMs: config.audiosocket.hangupGraceMs,
          partialEvents: config.transcript.partialEvents,
          partialIntervalMs: config.transcript.partialIntervalMs,
          silenceMode: config.audiosocket.silenceMode,
          silenceAfterMs: config.audiosocket.silenceAfterMs,
        },
        createTranscriber: (callId, handlers, callLog, recognition, guard) =>
          createTranscriber(config, callId, handlers, callLog, { health: sonioxHealth, metrics: metrics.soniox, recognition, guard }),
      }),
  })

  let boundPort = config.audiosocket.port
  const conversations = createConversationTaps(config, logger, sink, metrics, () => boundPort)

  const http =
    config.http.port === 0
      ? undefined
      : new HttpEndpoint({
          host: config.http.host,
          port: config.http.port,
          logger: logger.child({ component: 'http' }),
          notReady,
          renderMetrics: () => metrics.registry.render(),
          activeCalls: () => server.activeCalls,
          readyDetail: conversations === undefined ? undefined : () => ({ ari: { events: conversations.eventsState, conversations: conversations.active } }),
          registrations,
          token: config.http.token,
          metrics: metrics.http,
          conversations,
        })

  // Not ready until Soniox has accepted a session; and while it refuses the account no call proves
  // it fixed (none is routed here while not ready): a tiny probe session does (soniox-prober.ts).
  const sonioxProber = new SonioxProber({
    health: sonioxHealth,
    logger: logger.child({ component: 'soniox' }),
    reprobeMs: options.accountReprobeMs ?? ACCOUNT_REPROBE_MS,
    probe: (signal) => {
      const s = config.soniox
      return probeSoniox({ url: s.websocketUrl, apiKey: s.apiKey, recognition: s, timeoutMs: s.connectTimeoutMs, signal })
    },
  })

  return {
    server,
    sink,
    metrics,
    registrations,
    conversations,
    notReady,
    async start() {
      // Before the first call: the sink recovers what a previous run left in the spool and opens its files.
      await sink.start?.()
      let httpPort: number | undefined
      if (http !== undefined) {
        try {
          httpPort = (await http.listen()).port
        } catch (cause) {
          throw new AppError('ERR_HTTP_LISTEN', `cannot listen on ${config.http.host}:${config.http.port}: ${(cause as Error).message}`, { cause })
        }
        logger.info({ host: config.http.host, port: httpPort }, 'HTTP endpoint listening (/healthz, /readyz, /metrics)')
      }
      const address = await server.listen()
      boundPort = address.port
      state = 'running'
      conversations?.start()
      sonioxProber.start()
      logger.info(
        {
          host: address.address,
          port: address.port,
          sonioxUrl: redactUrl(config.soniox.websocketUrl),
          model: config.soniox.model,
          webhook: config.webhook.url === null ? 'stdout' : redactUrl(config.webhook.url),
          maxCalls: config.admission.maxCalls || undefined,
          allowedSources: allowed.length === 0 ? undefined : allowed,
          requireRegistration: config.admission.requireRegistration || undefined,
        },
        'AudioSocket server listening',
      )
      if (config.capture.dir !== null) logger.info({ captureDir: config.capture.dir }, 'recording every call to CAPTURE_DIR (the files hold call audio)')
      return { host: address.address, port: address.port, httpPort }
    },
    drain(timeoutMs) {
      state = 'draining'
      conversations?.refuseNew()
      server.stopAccepting()
      return server.waitIdle(timeoutMs)
    },
    async stop(flushTimeoutMs) {
      state = 'draining'
      sonioxProber.stop()
      conversations?.refuseNew()
      conversations?.markEnding('shutdown')
      await server.close()
      // The legs' calls are over (each sent Asterisk its hangup); what is left of the taps goes.
      await conversations?.close()
      await captureTaps?.drain()
      await sink.close(flushTimeoutMs)
      await http?.close()
      metrics.close()
    },
  }
}

/** ARI taps (POST /conversations, AUDIOSOCKET_SONIOX_TAP) when ARI_URL is set. */
function createConversationTaps(config: Config, logger: Logger, sink: EventSink, metrics: ServiceMetrics, boundPort: () => number): ConversationTaps | undefined {
  const ari = config.ari
  if (ari.url === null) return undefined
  const connection = { url: ari.url, username: ari.username, password: ari.password }
  const log = logger.child({ component: 'ari' })
  return new ConversationTaps({
    rest: new AriRest(connection, { requestTimeoutMs: ari.requestTimeoutMs, metrics: metrics.ari }),
    createEvents: (handlers) => new AriEventStream({ ...connection, app: ari.app, logger: log, metrics: metrics.ari, ...handlers }),
    sink,
    logger: log,
    metrics: metrics.ari,
    // Port 0 (AUDIOSOCKET_PORT=0, tests): the port the listener was bound to.
    settings: { app: ari.app, externalHost: ari.externalHost.endsWith(':0') ? () => `${ari.externalHost.slice(0, -2)}:${boundPort()}` : ari.externalHost },
  })
}

/**
 * One call's transcriber: utterances assembled from Soniox sessions, each replaced on failure and
 * rotated before its limit.
 */
function createTranscriber(
  config: Config,
  callId: string,
  handlers: TranscriberHandlers,
  callLog: Logger,
  extra: { health: SonioxHealth; metrics: SonioxMetrics; recognition: CallRecognitionOptions | undefined; guard: Guard },
): SonioxTranscriber {
  const s = config.soniox
  // A pre-registered call's own language hints and context replace the configured ones.
  const recognition = extra.recognition === undefined ? s : { ...s, ...extra.recognition }
  return new SonioxTranscriber((resultHandlers) => new ResilientTranscriber(
    {
      createSession: (sessionHandlers) =>
        new SonioxSession(
          {
            url: s.websocketUrl,
            apiKey: s.apiKey,
            recognition,
            clientReferenceId: callId,
            connectTimeoutMs: s.connectTimeoutMs,
            finishTimeoutMs: s.finishTimeoutMs,
            audioBatchMs: s.audioBatchMs,
            maxBufferedAudioMs: s.maxBufferedAudioMs,
            keepaliveMs: s.keepaliveMs,
            pingIntervalMs: s.pingIntervalMs,
            pongTimeoutMs: s.pongTimeoutMs,
            metrics: extra.metrics,
            guard: extra.guard,
          },
          sessionHandlers,
        ),
      maxBufferedAudioMs: s.maxBufferedAudioMs,
      maxSessionMs: s.maxSessionMs,
      finishTimeoutMs: s.finishTimeoutMs,
      reconnect: {
        maxAttempts: s.reconnectMaxAttempts,
        maxMs: s.reconnectMaxMs,
        initialDelayMs: s.reconnectInitialDelayMs,
        maxDelayMs: s.reconnectMaxDelayMs,
      },
      logger: callLog,
      health: extra.health,
      metrics: extra.metrics,
      guard: extra.guard,
    },
    resultHandlers,
  ), handlers)
}
