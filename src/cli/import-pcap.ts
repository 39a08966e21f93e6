/**
 * `audiosocket-soniox import-pcap FILE`: AudioSocket connections out of a tcpdump/tshark capture,
 * one capture file each.
 */
import { readFile, mkdir, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { encodeCapture } from '../capture/index.js'
import { DEFAULT_AUDIOSOCKET_PORT, importPacketCapture } from '../tools/index.js'
import { AppError, isErrnoException } from '../shared/errors.js'
import { VERSION } from '../version.js'
import { parseCommandLine, type CommandSpec } from './args.js'
import { EXIT_FAILURE, EXIT_OK, UsageError, parseCount, processIo, runtimeError, usageError, type CliIo } from './cli-support.js'

export const IMPORT_PCAP_SPEC = {
  name: 'import-pcap',
  synopsis: ['FILE.pcap|FILE.pcapng [--port N] [--out DIR|FILE.ascap] [--force] [--allow-truncated]'],
  about: `Extracts the AudioSocket connections of a tcpdump/tshark packet capture, one capture file
(.ascap) each, for inspect, to-wav and replay.`,
  flags: {
    port: { type: 'string', value: 'N', help: `the server port (default ${DEFAULT_AUDIOSOCKET_PORT}); other ports are found by their UUID frame` },
    out: { type: 'string', short: 'o', value: 'DIR|FILE.ascap', help: 'directory for <uuid>.ascap files (default .), or one file for one connection' },
    force: { type: 'boolean', help: 'overwrite existing files' },
    'allow-truncated': { type: 'boolean', help: 'import what precedes a cut-off file end or a gap in a stream' },
  },
  positionals: true,
} as const satisfies CommandSpec

export async function importPcapCommand(args: string[], io: CliIo = processIo): Promise<number> {
  let file: string
  let options: { port: number; out: string; force: boolean; allowTruncated: boolean }
  const parsed = parseCommandLine(IMPORT_PCAP_SPEC, args, io)
  if (parsed.exit !== undefined) return parsed.exit
  const { values, positionals } = parsed
  try {
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'name a .pcap or .pcapng file' : 'name one packet capture file')
    file = positionals[0] as string
    const port = parseCount(values.port, '--port', DEFAULT_AUDIOSOCKET_PORT)
    if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`)
    options = { port, out: values.out ?? '.', force: values.force === true, allowTruncated: values['allow-truncated'] === true }
  } catch (err) {
    return usageError(io, 'import-pcap', (err as Error).message)
  }

  try {
    const result = importPacketCapture(await readFile(file), {
      name: file,
      port: options.port,
      tool: `audiosocket-soniox ${VERSION}`,
      allowTruncated: options.allowTruncated,
    })
    for (const note of result.notes) io.stderr.write(`note: ${note}\n`)
    const single = options.out.endsWith('.ascap')
    if (single && result.calls.length > 1) {
      return runtimeError(io, 'import-pcap', new AppError('ERR_CLI_OUTPUT', `${file} holds ${result.calls.length} AudioSocket connections: give --out a directory`))
    }
    if (!single) await mkdir(options.out, { recursive: true })
    const used = new Set<string>()
    for (const call of result.calls) {
      let path = options.out
      if (!single) {
        const stem = call.uuid ?? `${basename(file).replace(/\.(pcapng|pcap|cap)$/i, '')}-connection-${call.connection}`
        let name = `${stem}.ascap`
        for (let n = 2; used.has(name); n++) name = `${stem}-${n}.ascap`
        used.add(name)
        path = join(options.out, name)
      }
      try {
        await writeFile(path, encodeCapture(call.capture), { mode: 0o600, flag: options.force ? 'w' : 'wx' })
      } catch (err) {
        if (isErrnoException(err) && err.code === 'EEXIST') throw new AppError('ERR_CLI_OUTPUT', `${path} exists: remove it, choose another --out, or give --force`, { cause: err })
        throw err
      }
      const inBytes = call.capture.records.filter((r) => r.direction === 'in').reduce((n, r) => n + r.data.length, 0)
      io.stdout.write(
        `wrote ${path}: connection ${call.connection}, ${call.asterisk.address}:${call.asterisk.port} -> ${call.server.address}:${call.server.port}, ` +
          `uuid ${call.uuid ?? 'none'}, ${inBytes} bytes from Asterisk, ${(call.capture.endUs / 1e6).toFixed(2)} s\n`,
      )
      for (const note of call.notes) io.stdout.write(`  note: ${note}\n`)
    }
    for (const failure of result.failures) io.stderr.write(`audiosocket-soniox import-pcap: ${failure.error.message} [${failure.error.code}]\n`)
    if (result.ignored.length > 0) io.stderr.write(`note: ${result.ignored.length} other TCP connection(s) ignored (not AudioSocket)\n`)
    return result.failures.length > 0 ? EXIT_FAILURE : EXIT_OK
  } catch (err) {
    return runtimeError(io, 'import-pcap', err)
  }
}
