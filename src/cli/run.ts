/**
 * The `audiosocket-soniox` command line. Each subcommand is a `(args) => Promise<number>`; the
 * process exits in exactly one place, `cli/main.ts`, so this module can be tested in process.
 */
import { parseArgs } from 'node:util'
import { describeSettings } from '../config.js'
import { VERSION } from '../version.js'
import { serve } from './serve.js'

const USAGE = `Usage: audiosocket-soniox <command> [options]

Commands:
  serve [--config FILE]   run the AudioSocket server (settings from the environment and FILE)
  settings                list every setting with its environment variable and default
  version                 print the version

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
