/**
 * The one way every subcommand reads its command line: a `CommandSpec` names the command's flags,
 * one line of help each, and from it come both the parse (node:util parseArgs, strict) and the
 * `--help` text, so the usage lists exactly the flags that are accepted.
 *
 * The same everywhere:
 *   -h, --help     the command's usage on stdout, exit 0 (wins over any other mistake on the line)
 *   a bad flag     one line on stderr naming it, "see audiosocket-soniox <command> --help", exit 2
 */
import { parseArgs } from 'node:util'
import { EXIT_OK, usageError, type CliIo } from './cli-support.js'

export const PROGRAM = 'audiosocket-soniox'

export interface FlagSpec {
  type: 'string' | 'boolean'
  short?: string
  /** May be given more than once; the values are collected in order. */
  multiple?: boolean
  /** The value's name in the usage (string flags): HOST:PORT, FILE, N. */
  value?: string
  /** One line: what it does and its default. */
  help: string
}

export interface CommandSpec<F extends Record<string, FlagSpec> = Record<string, FlagSpec>> {
  /** As typed after `audiosocket-soniox`. */
  name: string
  /** The usage lines, each after `audiosocket-soniox <name> `. */
  synopsis: string[]
  /** What the command does (a short paragraph, lines of at most ~100 characters). */
  about: string
  flags: F
  /** Whether the command takes positional arguments (files, a sub-command). Default false. */
  positionals?: boolean
}

/** The parsed values: every flag optional (defaults are the command's business). */
export type FlagValues<F extends Record<string, FlagSpec>> = {
  [K in keyof F]?: F[K]['type'] extends 'string' ? (F[K]['multiple'] extends true ? string[] : string) : F[K]['multiple'] extends true ? boolean[] : boolean
}

export type ParsedCommandLine<F extends Record<string, FlagSpec>> =
  | { values: FlagValues<F>; positionals: string[]; exit?: undefined }
  /** Help was printed (exit 0) or a usage error reported (exit 2): return this code. */
  | { exit: number; values?: undefined; positionals?: undefined }

const HELP_FLAG: FlagSpec = { type: 'boolean', short: 'h', help: 'print this help and exit' }

/** `--to HOST:PORT`, `-o, --out FILE`: how a flag is shown in the option list. */
function flagLabel(name: string, flag: FlagSpec): string {
  const long = `--${name}${flag.type === 'string' ? ` ${flag.value ?? 'VALUE'}` : ''}`
  return flag.short === undefined ? long : `-${flag.short}, ${long}`
}

/** The whole `--help` text of a command: usage lines, what it does, one line per flag. */
export function usageText(spec: CommandSpec): string {
  const [first, ...rest] = spec.synopsis
  const lines = [`Usage: ${PROGRAM} ${spec.name}${first ? ` ${first}` : ''}`]
  for (const line of rest) lines.push(`       ${PROGRAM} ${spec.name} ${line}`)
  lines.push('', spec.about.trim(), '', 'Options:')
  const flags = Object.entries({ ...spec.flags, help: HELP_FLAG })
  const labels = flags.map(([name, flag]) => flagLabel(name, flag))
  const width = Math.min(28, Math.max(...labels.map((l) => l.length)))
  flags.forEach(([, flag], i) => {
    const label = labels[i] as string
    lines.push(`  ${label.padEnd(width)}  ${flag.help}`)
  })
  return lines.join('\n')
}

/**
 * Parses `args` for `spec`. `--help`/`-h` prints the usage (exit 0); an unknown flag, a missing
 * value, a value given to a boolean flag or a positional argument where none is taken is one line
 * on stderr (exit 2). Otherwise the values, every flag optional.
 */
export function parseCommandLine<const F extends Record<string, FlagSpec>>(spec: CommandSpec<F>, args: readonly string[], io: CliIo): ParsedCommandLine<F> {
  const options = Object.fromEntries(
    Object.entries({ ...spec.flags, help: HELP_FLAG }).map(([name, flag]) => [
      name,
      { type: flag.type, ...(flag.short === undefined ? {} : { short: flag.short }), ...(flag.multiple ? { multiple: true } : {}) },
    ]),
  )
  // Leniently first, to find --help anywhere before `--` (and to name an unknown flag exactly).
  const { tokens } = parseArgs({ args: [...args], options, strict: false, allowPositionals: true, tokens: true })
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) {
    io.stdout.write(`${usageText(spec as CommandSpec)}\n`)
    return { exit: EXIT_OK }
  }
  const unknown = tokens.find((t) => t.kind === 'option' && !Object.hasOwn(options, t.name))
  if (unknown?.kind === 'option') return { exit: usageError(io, spec.name, `unknown option ${unknown.rawName}`) }
  try {
    const { values, positionals } = parseArgs({ args: [...args], options, strict: true, allowPositionals: spec.positionals === true })
    delete (values as Record<string, unknown>).help
    return { values: values as FlagValues<F>, positionals }
  } catch (err) {
    return { exit: usageError(io, spec.name, parseErrorText(err)) }
  }
}

/**
 * Node's parser messages without their advice paragraphs: "Option '--to <value>' argument missing",
 * "Option '--json' does not take an argument", "Unexpected argument 'x'".
 */
function parseErrorText(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  const first = message.split(/\.(?:\s|$)/)[0] ?? message
  return first.charAt(0).toLowerCase() + first.slice(1)
}
