/**
 * The `audiosocket-soniox` command line. Each subcommand is a `(args) => Promise<number>`; the
 * process exits in exactly one place, `cli/main.ts`, so this module can be tested in process.
 */
import { parseArgs } from 'node:util'
import { describeSettings } from '../config.js'
import { VERSION } from '../version.js'
import { serve } from './serve.js'
import { deadLetters } from './dead-letters.js'
import { checkCommand } from './check.js'
import { captureCommand } from './capture.js'
import { importPcapCommand } from './import-pcap.js'
import { inspectCommand } from './inspect.js'
import { replayCommand } from './replay.js'
import { toWavCommand } from './to-wav.js'

const USAGE = `Usage: audiosocket-soniox <command> [options]

Commands:
  serve [--config FILE]   run the AudioSocket server (settings from the environment and FILE)
  check [--config FILE]   check the settings, Soniox and the webhook; a verdict per item
  settings                list every setting with its environment variable and default
  version                 print the version
  dead-letters list|redeliver [--id ID]... [--json] [--config FILE]
                          show the events the webhook refused or that expired; POST them again

Capturing and replaying calls (see README.md, "Capturing and replaying calls"):
  capture [--listen HOST:PORT] [--upstream HOST:PORT] [--out DIR] [--count N]
                          record each AudioSocket connection to a capture file (a listening
                          stand-in, or with --upstream a transparent tee proxy before a server)
  replay FILE... --to HOST:PORT [--speed N|max] [--concurrency N] [--repeat N] [--keep-uuid]
                          play captures into a server as Asterisk would; summary per call
  import-pcap FILE.pcap|FILE.pcapng [--port N] [--out DIR]
                          extract AudioSocket connections from a tcpdump/tshark capture
  inspect FILE [--frames] [--json]
                          UUID, frames, sizes, rate, DTMF, gaps, cadence, protocol violations
  to-wav FILE [-o OUT.wav] [--direction in|out]
                          the call's audio as a WAV file

Run "audiosocket-soniox serve" with SONIOX_API_KEY set; see README.md.`

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'serve': {
      let values: { config?: string | undefined }
      try {
        values = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' } }, strict: true }).values
      } catch (err) {
        process.stderr.write(`audiosocket-soniox serve: ${(err as Error).message}\n${USAGE}\n`)
        return 2
      }
      return serve({ env: process.env, configFile: values.config, stderr: process.stderr })
    }
    case 'settings':
      for (const s of describeSettings()) {
        const def = s.sensitive ? '(secret)' : JSON.stringify(s.default)
        process.stdout.write(`${s.env.padEnd(42)} ${def.padEnd(48)} ${s.doc}\n`)
      }
      return 0
    case 'check':
      return checkCommand(rest, { env: process.env, stdout: process.stdout, stderr: process.stderr })
    case 'dead-letters':
      return deadLetters(rest, { env: process.env, stdout: process.stdout, stderr: process.stderr })
    case 'capture':
      return captureCommand(rest)
    case 'replay':
      return replayCommand(rest)
    case 'import-pcap':
      return importPcapCommand(rest)
    case 'inspect':
      return inspectCommand(rest)
    case 'to-wav':
      return toWavCommand(rest)
    case 'version':
    case '--version':
      process.stdout.write(`${VERSION}\n`)
      return 0
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`)
      return command === undefined ? 2 : 0
    default:
      process.stderr.write(`audiosocket-soniox: unknown command "${command}"\n${USAGE}\n`)
      return 2
  }
}
