/**
 * What every subcommand shares: its input and output (one CliIo, injectable, so commands run in
 * process under test), the exit codes, `HOST:PORT` and number parsing, and the one way a usage error
 * (exit 2) and a runtime failure (exit 1) are reported. Parsing the command line itself: args.ts.
 */
import { isAppError } from '../shared/errors.js'

export interface CliIo {
  stdout: { write(text: string): unknown }
  stderr: { write(text: string): unknown }
  /** Where settings come from (with --config FILE). */
  env: NodeJS.ProcessEnv
  /** Aborted to stop a long-running command (capture) as SIGINT would. */
  signal?: AbortSignal
}

export const processIo: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2
/** sysexits.h EX_CONFIG: lets systemd's RestartPreventExitStatus stop a restart loop on bad settings. */
export const EXIT_CONFIG = 78

/** A mistake in the command line: reported as one line pointing at the command's --help, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** `audiosocket-soniox <command>: <message> (see audiosocket-soniox <command> --help)`, exit 2. */
export function usageError(io: CliIo, command: string | undefined, message: string): number {
  const who = command === undefined ? 'audiosocket-soniox' : `audiosocket-soniox ${command}`
  io.stderr.write(`${who}: ${message} (see ${who} --help)\n`)
  return EXIT_USAGE
}

/** A runtime failure: an AppError's message is written for a person (no stack); exit 1. */
export function runtimeError(io: CliIo, command: string, err: unknown): number {
  const text = isAppError(err) ? `${err.message} [${err.code}]` : err instanceof Error ? err.message : String(err)
  io.stderr.write(`audiosocket-soniox ${command}: ${text}\n`)
  return EXIT_FAILURE
}

/** `127.0.0.1:9092`, `[::1]:9092` or `:9092` (loopback). Throws UsageError. */
export function parseHostPort(text: string, option: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text)
  const port = Number(m?.[3])
  if (!m || port > 65535) throw new UsageError(`${option} must be HOST:PORT (e.g. 127.0.0.1:9092 or [::1]:9092), got "${text}"`)
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port }
}

export function parseCount(text: string | undefined, option: string, fallback: number, min = 1): number {
  if (text === undefined) return fallback
  if (!/^\d+$/.test(text) || Number(text) < min) throw new UsageError(`${option} must be a whole number of at least ${min}, got "${text}"`)
  return Number(text)
}

export function parseSlinRate(text: string | undefined): number {
  if (text === undefined) return 8000
  if (text !== '8000' && text !== '16000') throw new UsageError(`--slin-rate must be 8000 or 16000, got "${text}"`)
  return Number(text)
}
