/**
 * `audiosocket-soniox capture`: record AudioSocket connections, one capture file each.
 * Without --upstream it stands in for the server (listens, records, never answers); with
 * --upstream it is a transparent tee proxy in front of a running server.
 *
 * Runs until SIGINT/SIGTERM (live calls are finished first; a second signal cuts them) or until
 * --count connections have been captured.
 */
import { CaptureServer } from '../tools/index.js'
import { createLogger } from '../shared/logger.js'
import { VERSION } from '../version.js'
import { parseCommandLine, type CommandSpec } from './args.js'
import { EXIT_OK, UsageError, parseCount, parseHostPort, processIo, runtimeError, usageError, type CliIo } from './cli-support.js'

export const CAPTURE_SPEC = {
  name: 'capture',
  synopsis: ['[--listen HOST:PORT] [--upstream HOST:PORT] [--out DIR] [--count N] [--log-level LEVEL]'],
  about: `Records AudioSocket connections, one capture file each. Without --upstream it stands in for the
server (listens, records, never answers); with --upstream it is a transparent tee proxy in front of
a running server: Asterisk -> proxy -> server, both directions recorded. Runs until SIGINT/SIGTERM
(live calls are finished first; a second signal cuts them) or until --count connections.`,
  flags: {
    listen: { type: 'string', value: 'HOST:PORT', help: 'where Asterisk connects (default 127.0.0.1:9092)' },
    upstream: { type: 'string', value: 'HOST:PORT', help: 'tee mode: forward every connection, untouched, to the server there' },
    out: { type: 'string', short: 'o', value: 'DIR', help: 'directory for the capture files (default ./captures); they hold call audio' },
    count: { type: 'string', value: 'N', help: 'exit after N connections have been captured' },
    'log-level': { type: 'string', value: 'LEVEL', help: 'pino level of the JSON log on stderr (default warn)' },
  },
} as const satisfies CommandSpec

export async function captureCommand(args: string[], io: CliIo = processIo): Promise<number> {
  let listen: { host: string; port: number }
  let upstream: { host: string; port: number } | undefined
  let out: string
  let count: number
  let logLevel: string
  const parsed = parseCommandLine(CAPTURE_SPEC, args, io)
  if (parsed.exit !== undefined) return parsed.exit
  const { values } = parsed
  try {
    listen = parseHostPort(values.listen ?? '127.0.0.1:9092', '--listen')
    upstream = values.upstream === undefined ? undefined : parseHostPort(values.upstream, '--upstream')
    if (upstream && upstream.port === listen.port && upstream.host === listen.host) {
      throw new UsageError('--upstream must differ from --listen (the proxy would call itself)')
    }
    out = values.out ?? 'captures'
    count = parseCount(values.count, '--count', Infinity)
    logLevel = values['log-level'] ?? 'warn'
    if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) throw new UsageError(`--log-level must be a pino level, got "${logLevel}"`)
  } catch (err) {
    return usageError(io, 'capture', (err as Error).message)
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
