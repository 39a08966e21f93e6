/**
 * Starts the real server in process (real TCP listener on port 0) wired to the Soniox stand-in
 * and the webhook receiver, with logs captured as parsed pino records. It resolves once the server
 * is ready: Soniox (the stand-in) has answered its start probe, which is then the stand-in's first
 * session (`callSessions` in soniox-probes.ts leaves probes out); `waitReady: false` returns at once.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { createApp, type App } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config/index.js'
import { createLogger } from '../../src/shared/logger.js'
import { waitUntil } from './wait.js'
import { startFakeSoniox, type FakeSoniox, type FakeSonioxOptions } from './fake-soniox.js'
import { startWebhookReceiver, type WebhookReceiver, type WebhookReceiverOptions } from './webhook-receiver.js'

export const WEBHOOK_SECRET = 'whsec_dGVzdC1zZWNyZXQtZm9yLWludGVncmF0aW9uLXRlc3Rz'

export interface Harness {
  app: App
  config: Config
  port: number
  soniox: FakeSoniox
  receiver: WebhookReceiver
  /** Every log record the server wrote, parsed. */
  logs: Array<Record<string, unknown>>
  stop(): Promise<void>
}

export async function startHarness(
  options: {
    env?: Record<string, string>
    soniox?: FakeSonioxOptions
    receiver?: WebhookReceiverOptions
    app?: { accountReprobeMs?: number }
    /** Default true: resolve once /readyz would answer 200 (the start probe answered). */
    waitReady?: boolean
    /** The SONIOX_WEBSOCKET_URL given the stand-in (default its own URL), e.g. a tcp-gate.ts in front of it. */
    sonioxUrl?: (soniox: FakeSoniox) => string | Promise<string>
  } = {},
): Promise<Harness> {
  const soniox = await startFakeSoniox(options.soniox)
  const receiver = await startWebhookReceiver({ secret: WEBHOOK_SECRET, ...options.receiver })
  // Each harness gets its own webhook spool, never ./var/spool of the repository.
  const spoolDir = mkdtempSync(join(tmpdir(), 'audiosocket-soniox-spool-'))
  const config = loadConfig({
    env: {
      AUDIOSOCKET_PORT: '0',
      // Off unless a test asks: tests run in parallel and must not all bind the fixed 9093.
      HTTP_PORT: '0',
      SONIOX_API_KEY: 'test-key',
      SONIOX_WEBSOCKET_URL: options.sonioxUrl === undefined ? soniox.url : await options.sonioxUrl(soniox),
      WEBHOOK_URL: receiver.url,
      WEBHOOK_SECRET,
      WEBHOOK_RETRY_INITIAL_MS: '20',
      SPOOL_DIR: spoolDir,
      LOG_LEVEL: 'debug',
      ...options.env,
    },
  })
  const logs: Array<Record<string, unknown>> = []
  let pendingText = ''
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      pendingText += chunk.toString()
      const lines = pendingText.split('\n')
      pendingText = lines.pop() ?? ''
      for (const line of lines) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  const logger = createLogger({ level: config.logLevel, destination })
  const app = createApp(config, logger, options.app)
  // A start that fails (a port taken meanwhile) or never gets ready leaves nothing running behind
  // it: the stand-in, the receiver and the server would keep the test process alive until its timeout.
  const cleanUp = async (): Promise<void> => {
    await app.stop(1000).catch(() => undefined)
    await Promise.all([receiver.close(), soniox.close()])
    rmSync(spoolDir, { recursive: true, force: true })
  }
  let port: number
  try {
    ;({ port } = await app.start())
  } catch (err) {
    await cleanUp()
    throw err
  }
  if (options.waitReady !== false) {
    try {
      await waitUntil(() => app.notReady() === undefined, 'the server ready (Soniox answered the start probe)')
    } catch (err) {
      const reason = JSON.stringify(app.notReady())
      await cleanUp()
      throw new Error(`${(err as Error).message}; still not ready: ${reason}`)
    }
  }
  return {
    app,
    config,
    port,
    soniox,
    receiver,
    logs,
    async stop() {
      await app.stop(5000)
      await receiver.close()
      await soniox.close()
      rmSync(spoolDir, { recursive: true, force: true })
    },
  }
}
