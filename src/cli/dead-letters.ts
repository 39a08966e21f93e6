/**
 * `audiosocket-soniox dead-letters list|redeliver`: read the dead-letter file of SPOOL_DIR, and
 * POST its events again with the current webhook settings (URL, secret, headers, CA), removing the
 * ones the webhook accepts. Settings come from the same environment and --config file as `serve`.
 */
import { loadConfig, type Config } from '../config/index.js'
import { deadLetterPath, spoolDirectory, webhookTransportOptions } from '../delivery.js'
import { isAppError, isErrnoException } from '../shared/errors.js'
import { DeadLetterFile, type DeadLetterEntry } from '../webhook/dead-letter.js'
import { WebhookTransport } from '../webhook/http-transport.js'
import { acquireSpoolLock } from '../webhook/spool-lock.js'
import { parseCommandLine, type CommandSpec } from './args.js'
import { ENV_FILE_FLAG, envWithFile } from './env-file.js'
import { EXIT_CONFIG, usageError, type CliIo } from './cli-support.js'

export const DEAD_LETTERS_SPEC = {
  name: 'dead-letters',
  synopsis: ['list [--json] [--config FILE] [--env-file FILE]', 'redeliver [--id ID]... [--config FILE] [--env-file FILE]'],
  about: `The events the webhook refused or that expired (the dead-letter file of SPOOL_DIR), with the
settings of serve (environment and --config FILE).
  list        one line per dead-lettered event (--json: the stored JSON lines)
  redeliver   POST them again (all, or the --id ones) to WEBHOOK_URL, one attempt each, in seq order
              per call; the ones answered 2xx leave the file. Exit 0 when every one was delivered.`,
  flags: {
    json: { type: 'boolean', help: 'list: print the stored JSON lines, one per event' },
    id: { type: 'string', multiple: true, value: 'ID', help: 'redeliver: only this event (repeatable); default all' },
    config: { type: 'string', short: 'c', value: 'FILE', help: 'JSON settings file, as for serve (the environment wins)' },
    'env-file': ENV_FILE_FLAG,
  },
  positionals: true,
} as const satisfies CommandSpec

export interface DeadLettersIo extends CliIo {
  /** Wall clock for the redelivered records. Default Date.now. */
  now?: () => number
}

/**
 * Stands in for SONIOX_API_KEY when it is unset: loadConfig requires it for `serve`, but these
 * commands never talk to Soniox, and an operator should not need the key to inspect a file.
 */
const UNUSED_API_KEY = 'not-used-by-dead-letters'

export async function deadLetters(args: string[], io: DeadLettersIo): Promise<number> {
  const parsed = parseCommandLine(DEAD_LETTERS_SPEC, args, io)
  if (parsed.exit !== undefined) return parsed.exit
  const { values, positionals } = parsed
  const [sub, ...extra] = positionals
  if (sub === undefined) return usageError(io, 'dead-letters', 'name list or redeliver')
  if (sub !== 'list' && sub !== 'redeliver') return usageError(io, 'dead-letters', `unknown command "${sub}": list or redeliver`)
  if (extra.length > 0) return usageError(io, 'dead-letters', `unexpected argument "${extra[0]}"`)
  if ((sub === 'list' && values.id !== undefined) || (sub === 'redeliver' && values.json !== undefined)) {
    return usageError(io, 'dead-letters', `${sub === 'list' ? '--id' : '--json'} does not apply to ${sub}`)
  }

  const withFile = envWithFile('dead-letters', values['env-file'], io)
  if ('exit' in withFile) return withFile.exit
  const env = withFile.env
  let config: Config
  try {
    const apiKey = env.SONIOX_API_KEY?.trim() ? env.SONIOX_API_KEY : UNUSED_API_KEY
    config = loadConfig({ env: { ...env, SONIOX_API_KEY: apiKey }, configFile: values.config })
  } catch (err) {
    if (isAppError(err) && err.code === 'ERR_CONFIG_INVALID') {
      io.stderr.write(`audiosocket-soniox: ${err.message}\n`)
      return EXIT_CONFIG
    }
    throw err
  }

  const file = new DeadLetterFile(deadLetterPath(config))
  let contents: Awaited<ReturnType<DeadLetterFile['read']>>
  try {
    contents = await file.read()
  } catch (err) {
    io.stderr.write(`audiosocket-soniox: cannot read ${file.path}: ${(err as Error).message}\n`)
    return 1
  }
  if (contents.damaged > 0) io.stderr.write(`${contents.damaged} damaged line(s) in ${file.path} skipped\n`)

  if (sub === 'list') {
    if (values.json) {
      for (const entry of contents.entries) io.stdout.write(`${entry.line}\n`)
    } else if (contents.entries.length === 0) {
      io.stdout.write(`no dead letters in ${file.path}\n`)
    } else {
      for (const entry of contents.entries) io.stdout.write(`${describe(entry)}\n`)
      io.stdout.write(`${contents.entries.length} dead letter(s) in ${file.path}\n`)
    }
    return 0
  }
  return redeliver(config, file, contents.entries, values.id, io)
}

function describe(entry: DeadLetterEntry): string {
  const status = entry.status === null ? 'no-response' : `status=${entry.status}`
  return `${entry.deadLetteredAt}  ${entry.id}  call=${entry.callId} seq=${entry.seq} ${entry.type}  ${entry.reason} ${status} attempts=${entry.attempts}`
}

async function redeliver(
  config: Config,
  file: DeadLetterFile,
  entries: DeadLetterEntry[],
  ids: string[] | undefined,
  io: DeadLettersIo,
): Promise<number> {
  if (config.webhook.url === null) {
    io.stderr.write('audiosocket-soniox: WEBHOOK_URL is not set: there is nowhere to redeliver to\n')
    return EXIT_CONFIG
  }
  const wanted = ids === undefined ? undefined : new Set(ids)
  const selected = wanted === undefined ? entries : entries.filter((e) => wanted.has(e.id))
  let failed = 0
  if (wanted !== undefined) {
    const found = new Set(selected.map((e) => e.id))
    for (const id of wanted) {
      if (found.has(id)) continue
      io.stderr.write(`${id}: not in ${file.path}\n`)
      failed++
    }
  }
  if (selected.length === 0) {
    io.stdout.write('nothing to redeliver\n')
    return failed > 0 ? 1 : 0
  }

  // In seq order per call, and a call stops at its first failure: a receiver must never get a
  // call's later event before an earlier one it has not seen.
  const byCall = new Map<string, DeadLetterEntry[]>()
  for (const entry of selected) {
    const list = byCall.get(entry.callId) ?? []
    list.push(entry)
    byCall.set(entry.callId, list)
  }
  const now = io.now ?? Date.now
  const transport = new WebhookTransport(webhookTransportOptions(config))
  let delivered = 0
  try {
    for (const list of byCall.values()) {
      list.sort((a, b) => a.seq - b.seq)
      for (const [index, entry] of list.entries()) {
        const outcome = await transport.post(entry.id, entry.bodyText).done
        if (outcome.kind === 'delivered') {
          await file.appendRedelivered(entry.id, outcome.status, now())
          delivered++
          io.stdout.write(`${entry.id}  call=${entry.callId} seq=${entry.seq}  delivered (${outcome.status})\n`)
          continue
        }
        const why = outcome.kind === 'failed' ? (outcome.status === undefined ? outcome.err.message : `status ${outcome.status}`) : 'aborted'
        io.stdout.write(`${entry.id}  call=${entry.callId} seq=${entry.seq}  failed: ${why}; kept\n`)
        const skipped = list.length - index - 1
        if (skipped > 0) io.stdout.write(`  ${skipped} later event(s) of call ${entry.callId} not attempted, to keep its order\n`)
        failed += list.length - index
        break
      }
    }
  } finally {
    transport.close()
  }
  io.stdout.write(`${delivered} delivered, ${failed} not\n`)
  if (delivered > 0) await tidy(config, file, io)
  return failed === 0 ? 0 : 1
}

/**
 * Drops delivered entries from the file when no server holds the spool: rewriting while a server
 * runs could lose a dead letter it appends at that moment, so then the tombstones stay and the
 * server compacts at its next start.
 */
async function tidy(config: Config, file: DeadLetterFile, io: DeadLettersIo): Promise<void> {
  let release: (() => Promise<void>) | undefined
  try {
    release = await acquireSpoolLock(spoolDirectory(config))
  } catch (err) {
    if (isAppError(err) && err.code === 'ERR_SPOOL_LOCKED') return
    if (isAppError(err) && isErrnoException(err.cause) && err.cause.code === 'ENOENT') return
    io.stderr.write(`could not tidy ${file.path}: ${(err as Error).message}\n`)
    return
  }
  try {
    await file.compact()
  } catch (err) {
    io.stderr.write(`could not tidy ${file.path}: ${(err as Error).message}\n`)
  } finally {
    await release()
  }
}
