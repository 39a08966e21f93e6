/**
 * `audiosocket-soniox capture`: record AudioSocket connections, one capture file each.
 * Without --upstream it stands in for the server (listens, records, never answers); with
 * --upstream it is a transparent tee proxy in front of a running server.
 *
 * Runs until SIGINT/SIGTERM (live calls are finished first; a second signal cuts them) or until
 * --count connections have been captured.
 */
import { parseArgs } from 'node:util'
import { CaptureServer } from '../tools/index.js'
import { createLogger } from '../shared/logger.js'
import { VERSION } from '../version.js'
import { EXIT_OK, UsageError, parseCount, parseHostPort, processIo, runtimeError, usageError, type CliIo } from './cli-support.js'

export const CAPTURE_USAGE = `Usage: audiosocket-soniox capture [--listen HOST:PORT] [--upstream HOST:PORT] [--out DIR] [--count N]

  --listen HOST:PORT    where Asterisk connects (default 127.0.0.1:9092)
  --upstream HOST:PORT  tee mode: forward every connection to the server there, untouched,
                        and record both directions (Asterisk -> proxy -> server)
  --out DIR             directory for the capture files (default ./captures); they hold call audio
  --count N             exit after N connections have been captured
  --log-level LEVEL     pino level of the JSON log on stderr (default warn)`

export async function captureCommand(args: string[], io: CliIo = processIo): Promise<number> {
  let listen: { host: string; port: number }
  let upstream: { host: string; port: number } | undefined
  let out: string
  let count: number
  let logLevel: string
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        listen: { type: 'string', default: '127.0.0.1:9092' },
        upstream: { type: 'string' },
        out: { type: 'string', short: 'o', default: 'captures' },
        count: { type: 'string' },
        'log-level': { type: 'string', default: 'warn' },
      },
    })
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`)
    listen = parseHostPort(values.listen, '--listen')
    upstream = values.upstream === undefined ? undefined : parseHostPort(values.upstream, '--upstream')
    if (upstream && upstream.port === listen.port && upstream.host === listen.host) {
      throw new UsageError('--upstream must differ from --listen (the proxy would call itself)')
    }
    out = values.out
    count = parseCount(values.count, '--count', Infinity)
    logLevel = values['log-level']
    if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) throw new UsageError(`--log-level must be a pino level, got "${logLevel}"`)
  } catch (err) {
    return usageError(io, 'capture', (err as Error).message, CAPTURE_USAGE)
  }

  const logger = createLogger({ level: logLevel })
  let captured = 0
  let finishCount!: () => void
  const countReached = new Promise<void>((resolve) => (finishCount = resolve))
  const server = new CaptureServer({
    host: listen.host,
    port: listen.port,
    upstream,
    dir: out,
    logger,
    tool: `audiosocket-soniox ${VERSION}`,
    onCapture: (call) => {
      captured++
      const what = call.path === undefined ? 'NOT written (see the log)' : call.path
      io.stdout.write(
        `captured ${what}: uuid ${call.uuid ?? 'none'}, from ${call.asterisk ? `${call.asterisk.address}:${call.asterisk.port}` : 'unknown'}, ` +
          `${call.bytesIn} bytes in, ${call.bytesOut} bytes out, ${(call.durationMs / 1000).toFixed(2)} s${call.upstreamError ? `; ${call.upstreamError}` : ''}\n`,
      )
      if (captured >= count) finishCount()
    },
  })
  let address
  try {
    address = await server.listen()
  } catch (err) {
    return runtimeError(io, 'capture', err)
  }
  io.stderr.write(
    `listening on ${address.address}:${address.port}${upstream ? `, forwarding to ${upstream.host}:${upstream.port}` : ' (recording only)'}, ` +
      `writing captures to ${out} (they hold call audio)\n`,
  )

  let onSignal!: () => void
  const stop = await new Promise<'count' | 'signal'>((resolve) => {
    void countReached.then(() => resolve('count'))
    onSignal = () => resolve('signal')
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    io.signal?.addEventListener('abort', onSignal, { once: true })
  })
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
  io.signal?.removeEventListener('abort', onSignal)
  if (stop === 'signal' && server.active > 0) {
    io.stderr.write(`stopping: waiting for ${server.active} live call(s) to end (signal again to cut them)\n`)
  }
  const cut = (): void => void server.close({ abort: true })
  process.once('SIGINT', cut)
  process.once('SIGTERM', cut)
  await server.close()
  process.off('SIGINT', cut)
  process.off('SIGTERM', cut)
  await new Promise<void>((resolve) => logger.flush(() => resolve()))
  return EXIT_OK
}
