/**
 * `--env-file FILE`: settings from a file written for systemd's `EnvironmentFile=` (the unit's
 * /etc/audiosocket-soniox/env), read the way systemd reads it, so that `check`, `dead-letters` and
 * `serve` run from a shell see what the service sees (its SPOOL_DIR above all):
 *
 *   sudo audiosocket-soniox dead-letters list --env-file /etc/audiosocket-soniox/env
 *
 * Why not `set -a; . FILE`: the file is root's (mode 0600), so `sudo` must read it, and `sudo sh -c`
 * is easy to get wrong; and a shell reads some values differently from systemd (`$` expands, an
 * unquoted `{"A": "b"}` loses its quotes, a backslash in double quotes is kept by one and not the
 * other).
 *
 * The syntax is systemd's (src/basic/env-file.c, parse_env_file_internal): one `KEY=VALUE` per line;
 * blank lines and lines starting with `#` or `;` are comments (only at the start of a line: a `#`
 * after a value is part of it); spaces around the key and the value are dropped; `'...'` keeps
 * everything literally, `"..."` unescapes `\"`, `\\`, `` \` `` and `\$` and keeps other backslashes;
 * outside quotes a backslash takes the next character literally and a backslash at the end of a line
 * joins the next line; quoted and unquoted parts of one value are joined (`A='x'"y"` is `xy`). No
 * `$VAR` expansion (systemd does none in `EnvironmentFile=`). A line without `=` is dropped, and so is
 * a key that is not a variable name (e.g. `export FOO=1`): systemd ignores those too, and this says so.
 *
 * Precedence: a variable already in the environment wins over the file, as with Node's own
 * `--env-file` and with `--config FILE`; when both set it to different values, a note on stderr says
 * which one is used.
 */
import { readFileSync } from 'node:fs'
import type { CliIo } from './cli-support.js'

export interface EnvFileContents {
  /** The assignments, the last of a key winning. */
  env: Record<string, string>
  /** What systemd would ignore, with the line it starts on. */
  ignored: Array<{ line: number; key: string; why: string }>
}

const WHITESPACE = ' \t\n\r'
const NEWLINE = '\n\r'
const COMMENTS = '#;'
/** Characters a backslash unescapes inside double quotes (systemd's SHELL_NEED_ESCAPE). */
const DOUBLE_QUOTE_ESCAPES = '"\\`$'
/** systemd's env_name_is_valid: letters, digits and underscores, not starting with a digit. */
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

type State = 'preKey' | 'key' | 'preValue' | 'value' | 'valueEscape' | 'singleQuote' | 'doubleQuote' | 'doubleQuoteEscape' | 'comment' | 'commentEscape'

/** Parses the text of an environment file as systemd does (see the module comment). */
export function parseEnvFile(text: string): EnvFileContents {
  // No prototype: a key such as __proto__ stays an ordinary variable.
  const env = Object.create(null) as Record<string, string>
  const ignored: EnvFileContents['ignored'] = []
  let state: State = 'preKey'
  let line = 1
  let keyLine = 1
  let key = ''
  let value = ''
  // Where trailing whitespace starts in the key / the unquoted value (-1: none), as systemd strips it.
  let keyEnd = -1
  let valueEnd = -1

  const assign = (name: string, assigned: string): void => {
    if (!VARIABLE_NAME.test(name)) {
      ignored.push({ line: keyLine, key: name.slice(0, 40), why: 'not a variable name (letters, digits and _, not starting with a digit; no "export")' })
      return
    }
    // A later assignment of a key replaces an earlier one, as in systemd.
    env[name] = assigned
  }
  const trimmedKey = (): string => (keyEnd >= 0 ? key.slice(0, keyEnd) : key)
  const trimmedValue = (): string => (valueEnd >= 0 ? value.slice(0, valueEnd) : value)

  for (const c of text) {
    if (c === '\n') line++
    switch (state) {
      case 'preKey':
        if (COMMENTS.includes(c)) state = 'comment'
        else if (!WHITESPACE.includes(c)) {
          state = 'key'
          keyLine = line
          key = c
          keyEnd = -1
        }
        break
      case 'key':
        if (NEWLINE.includes(c)) {
          // A line without "=": dropped, as systemd does.
          ignored.push({ line: keyLine, key: trimmedKey().slice(0, 40), why: 'no "=" on the line' })
          state = 'preKey'
        } else if (c === '=') {
          state = 'preValue'
          value = ''
          valueEnd = -1
        } else {
          if (!WHITESPACE.includes(c)) keyEnd = -1
          else if (keyEnd === -1) keyEnd = key.length
          key += c
        }
        break
      case 'preValue':
        if (NEWLINE.includes(c)) {
          state = 'preKey'
          assign(trimmedKey(), value)
        } else if (c === "'") state = 'singleQuote'
        else if (c === '"') state = 'doubleQuote'
        else if (c === '\\') state = 'valueEscape'
        else if (!WHITESPACE.includes(c)) {
          state = 'value'
          value += c
        }
        break
      case 'value':
        if (NEWLINE.includes(c)) {
          state = 'preKey'
          assign(trimmedKey(), trimmedValue())
        } else if (c === '\\') {
          state = 'valueEscape'
          valueEnd = -1
        } else {
          if (!WHITESPACE.includes(c)) valueEnd = -1
          else if (valueEnd === -1) valueEnd = value.length
          value += c
        }
        break
      case 'valueEscape':
        state = 'value'
        // An escaped newline is eaten: the value goes on on the next line.
        if (!NEWLINE.includes(c)) value += c
        break
      case 'singleQuote':
        if (c === "'") state = 'preValue'
        else value += c
        break
      case 'doubleQuote':
        if (c === '"') state = 'preValue'
        else if (c === '\\') state = 'doubleQuoteEscape'
        else value += c
        break
      case 'doubleQuoteEscape':
        state = 'doubleQuote'
        if (DOUBLE_QUOTE_ESCAPES.includes(c)) value += c
        else if (c !== '\n') value += `\\${c}`
        break
      case 'comment':
        if (c === '\\') state = 'commentEscape'
        else if (NEWLINE.includes(c)) state = 'preKey'
        break
      case 'commentEscape':
        // systemd 254 and later: a comment ending in a backslash does not swallow the next line.
        state = NEWLINE.includes(c) ? 'preKey' : 'comment'
        break
    }
  }
  // The last line needs no newline.
  if (state === 'value') assign(trimmedKey(), trimmedValue())
  else if (state === 'preValue' || state === 'valueEscape' || state === 'singleQuote' || state === 'doubleQuote' || state === 'doubleQuoteEscape') assign(trimmedKey(), value)
  else if (state === 'key') ignored.push({ line: keyLine, key: trimmedKey().slice(0, 40), why: 'no "=" on the line' })
  return { env, ignored }
}

/** The flag, for the specs of the commands that read settings (serve, check, dead-letters). */
export const ENV_FILE_FLAG = {
  type: 'string',
  value: 'FILE',
  help: "systemd EnvironmentFile= settings, e.g. /etc/audiosocket-soniox/env (the environment wins)",
} as const

/**
 * The environment a command reads its settings from: `io.env`, with the settings of `--env-file FILE`
 * under it (none without the flag). A file that cannot be read: one line on stderr, exit 78
 * (EX_CONFIG). Lines systemd would ignore, and variables the environment overrides, are noted on
 * stderr.
 */
export function envWithFile(command: string, file: string | undefined, io: CliIo): { env: NodeJS.ProcessEnv } | { exit: number } {
  if (file === undefined) return { env: io.env }
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const hint = code === 'EACCES' ? " (the unit's file is root's, mode 0600: run the command with sudo)" : ''
    io.stderr.write(`audiosocket-soniox ${command}: --env-file ${file} cannot be read: ${(err as Error).message}${hint}\n`)
    return { exit: 78 }
  }
  const contents = parseEnvFile(text)
  for (const { line, key, why } of contents.ignored) {
    io.stderr.write(`audiosocket-soniox ${command}: ${file}:${line}: "${key}" ignored: ${why} (systemd ignores it too)\n`)
  }
  for (const [name, value] of Object.entries(contents.env)) {
    const inherited = io.env[name]
    if (inherited !== undefined && inherited !== value) {
      io.stderr.write(`audiosocket-soniox ${command}: ${name} is set in the environment and in ${file}; the environment's value is used\n`)
    }
  }
  return { env: { ...contents.env, ...io.env } }
}
