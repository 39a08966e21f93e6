/**
 * `audiosocket-soniox check`: what an admin runs right after installing. Each item gets one verdict
 * line (ok / FAIL / skip):
 *
 *   config    the settings load (same environment and --config file as `serve`)
 *   dns       the Soniox host resolves
 *   soniox    a real session: start message (the configured options), 100 ms of silence, the empty
 *             frame, `finished` (proves the key, its region, the balance and the options)
 *   model     Soniox's models API (GET /v1/models on the region's API host): SONIOX_MODEL exists,
 *             is an alias (of which model) or is deprecated (with the replacement); FAIL if unknown
 *   webhook   one signed test event POSTed to WEBHOOK_URL answered 2xx (WEBHOOK_FORMAT=avr: in
 *             AVR's envelope, type webhook_test, with X-AVR-WEBHOOK-SECRET)
 *   spool     SPOOL_DIR is writable (or can be created)
 *   ari       with ARI_URL: GET /ari/asterisk/info answers (proves the address, the login and res_ari)
 *
 * Exit 0 when nothing failed, 1 when something did, 78 when the settings themselves are invalid.
 * With --json, one JSON object instead: { ok, verdict, version, checks: [{ name, ok, status, detail }] }.
 */
import { randomUUID } from 'node:crypto'
import { lookup } from 'node:dns/promises'
import { access, constants, stat } from 'node:fs/promises'
import path from 'node:path'
import { ariStatusOf } from '../ari/ari-error.js'
import { AriRest } from '../ari/ari-rest.js'
import { loadConfig, retiredSettings, type Config } from '../config/index.js'
import { spoolDirectory, webhookTransportOptions } from '../delivery.js'
import { isAppError, type AppError } from '../shared/errors.js'
import { redactUrl } from '../shared/redact-url.js'
import { probeSoniox } from '../soniox/probe.js'
import { sonioxCodeOf } from '../soniox/soniox-error.js'
import { checkSonioxModel } from './check-model.js'
import { VERSION } from '../version.js'
import { WebhookTransport } from '../webhook/http-transport.js'
import { avrEventText } from '../events/avr-format.js'
import { parseCommandLine, type CommandSpec } from './args.js'
import { ENV_FILE_FLAG, envWithFile } from './env-file.js'
import { EXIT_CONFIG, type CliIo } from './cli-support.js'

export const CHECK_SPEC = {
  name: 'check',
  synopsis: ['[--config FILE] [--env-file FILE] [--json]'],
  about: `What to run right after installing, with the settings serve would use: checks the settings,
Soniox (DNS, a tiny real session with the key and options), the webhook (a signed test event of type
"webhook.test"; with WEBHOOK_FORMAT=avr one in AVR's envelope, type "webhook_test"), the spool
directory and, with ARI_URL, Asterisk's ARI, and prints a verdict per item. Exit 0 when nothing
failed, 1 when something did, 78 when the settings are invalid.`,
  flags: {
    config: { type: 'string', short: 'c', value: 'FILE', help: 'JSON settings file, as for serve (the environment wins)' },
    'env-file': ENV_FILE_FLAG,
    json: { type: 'boolean', help: 'one JSON object on stdout: ok, verdict, and each check (name, ok, status, detail)' },
  },
} as const satisfies CommandSpec

export type CheckIo = CliIo

type Verdict = 'ok' | 'warn' | 'FAIL' | 'skip'

/** One item of `check --json`. */
export interface CheckResult {
  name: string
  /** false only for a failure (a warning or a skip is not one). */
  ok: boolean
  status: 'ok' | 'warn' | 'fail' | 'skip'
  detail: string
}

/** The call_id of the test event: no real call has the nil UUID. */
const TEST_CALL_ID = '00000000-0000-0000-0000-000000000000'

export async function checkCommand(args: string[], io: CheckIo): Promise<number> {
  const parsed = parseCommandLine(CHECK_SPEC, args, io)
  if (parsed.exit !== undefined) return parsed.exit
  const values = parsed.values
  const json = values.json === true
  const withFile = envWithFile('check', values['env-file'], io)
  if ('exit' in withFile) return withFile.exit
  const env = withFile.env
  let failures = 0
  const checks: CheckResult[] = []
  const report = (verdict: Verdict, item: string, text: string): void => {
    if (verdict === 'FAIL') failures++
    checks.push({ name: item, ok: verdict !== 'FAIL', status: verdict === 'FAIL' ? 'fail' : verdict, detail: text })
    if (!json) io.stdout.write(`${verdict.padEnd(5)} ${item.padEnd(8)} ${text.replace(/\n/g, '\n               ')}\n`)
  }
  /** The verdict (text) or the whole JSON object, then the exit code. */
  const finish = (code: number): number => {
    const verdict = failures === 0 ? 'ready to take calls' : `${failures} problem(s); fix them before taking calls`
    io.stdout.write(json ? `${JSON.stringify({ ok: failures === 0, verdict, version: VERSION, checks })}\n` : `verdict: ${verdict}\n`)
    return code
  }

  let config: Config
  try {
    config = loadConfig({ env, configFile: values.config })
  } catch (err) {
    if (isAppError(err) && err.code === 'ERR_CONFIG_INVALID') {
      report('FAIL', 'config', err.message)
      return finish(EXIT_CONFIG)
    }
    throw err
  }
  report(
    'ok',
    'config',
    `valid: AudioSocket on ${config.audiosocket.host}:${config.audiosocket.port}, ` +
      `HTTP ${config.http.port === 0 ? 'off' : `on ${config.http.host}:${config.http.port}`}, ` +
      `events to ${config.webhook.url !== null ? redactUrl(config.webhook.url) : config.events.file ? `EVENTS_FILE ${config.events.file}` : 'stdout'}`,
  )
  for (const retired of retiredSettings(env)) report('warn', 'config', `${retired.env} is no longer used: ${retired.advice}`)

  const sonioxUrl = new URL(config.soniox.websocketUrl)
  const host = sonioxUrl.hostname.replace(/^\[(.*)\]$/, '$1')
  let resolved = false
  try {
    const addresses = await lookup(host, { all: true })
    report('ok', 'dns', `${host} resolves to ${addresses.map((a) => a.address).join(', ')}`)
    resolved = true
  } catch (err) {
    report('FAIL', 'dns', `${host} does not resolve: ${(err as Error).message} (DNS on this host, or SONIOX_WEBSOCKET_URL)`)
  }

  if (resolved) {
    const s = config.soniox
    const result = await probeSoniox({ url: s.websocketUrl, apiKey: s.apiKey, recognition: s, timeoutMs: s.connectTimeoutMs, clientReferenceId: 'audiosocket-soniox-check' })
    if (result.ok) {
      report('ok', 'soniox', `session accepted and finished in ${result.totalMs} ms (connected in ${result.connectMs} ms; model ${s.model})`)
    } else {
      report('FAIL', 'soniox', `${result.error.message}${sonioxHint(result.error)}`)
    }
  } else {
    report('skip', 'soniox', 'not tried: the host does not resolve')
  }
  if (resolved) {
    const model = await checkSonioxModel(config.soniox)
    report(model.verdict, 'model', model.text)
  } else {
    report('skip', 'model', 'not asked: the Soniox host does not resolve')
  }

  if (config.webhook.url === null) {
    report('skip', 'webhook', 'WEBHOOK_URL is not set: events go to stdout (or EVENTS_FILE)')
  } else {
    const transport = new WebhookTransport(webhookTransportOptions(config))
    const shownUrl = redactUrl(config.webhook.url)
    const event = {
      id: `evt_${randomUUID()}`,
      type: 'webhook.test',
      call_id: TEST_CALL_ID,
      seq: 0,
      time: new Date().toISOString(),
      data: { message: 'audiosocket-soniox check: a test event; answer 2xx and ignore it', version: VERSION },
    }
    // WEBHOOK_FORMAT=avr: in AVR's envelope (an AVR receiver refuses any other shape), type webhook_test.
    const avr = config.webhook.format === 'avr'
    const body = avr ? avrEventText(TEST_CALL_ID, 'webhook_test', event.time, event.data) : JSON.stringify(event)
    const outcome = await transport.post(event.id, body).done
    transport.close()
    const signed = config.webhook.secret === null ? 'unsigned (WEBHOOK_SECRET not set)' : 'signed'
    const what = avr
      ? `an AVR-format test event (${config.webhook.secret === null ? 'no X-AVR-WEBHOOK-SECRET: WEBHOOK_SECRET not set' : 'with X-AVR-WEBHOOK-SECRET'})`
      : `a ${signed} test event`
    if (outcome.kind === 'delivered') {
      report('ok', 'webhook', `${shownUrl} answered ${outcome.status} to ${what}`)
    } else if (outcome.kind === 'failed') {
      const cause = outcome.err.cause instanceof Error ? `: ${outcome.err.cause.message}` : ''
      const answer = outcome.status === undefined ? `${outcome.err.message}${cause}` : `answered ${outcome.status}${outcome.bodyExcerpt ? `: ${outcome.bodyExcerpt.slice(0, 200)}` : ''}`
      report('FAIL', 'webhook', `${shownUrl} ${answer}`)
    }
  }

  if (config.webhook.url === null) {
    report('skip', 'spool', 'no webhook, no spool')
  } else {
    const dir = spoolDirectory(config)
    const spool = await checkSpool(dir)
    report(spool.ok ? 'ok' : 'FAIL', 'spool', spool.text)
  }

  if (config.ari.url === null) {
    report('skip', 'ari', 'ARI_URL is not set: no tapping of bridged calls')
  } else {
    const ari = await checkAri(config)
    report(ari.ok ? 'ok' : 'FAIL', 'ari', ari.text)
  }

  return finish(failures === 0 ? 0 : 1)
}

function sonioxHint(error: AppError): string {
  switch (sonioxCodeOf(error)) {
    case 401:
      return ' (SONIOX_API_KEY is refused: a wrong key, or a key of another region than SONIOX_WEBSOCKET_URL)'
    case 402:
      return ' (the Soniox account has no balance or budget left)'
    case 400:
      return ' (Soniox refuses the start message: check the SONIOX_* recognition settings)'
    default:
      return error.code === 'ERR_SONIOX_CONNECT' ? ' (no route to Soniox from this host: firewall, proxy, DNS?)' : ''
  }
}

/** GET /ari/asterisk/info with the configured login: the Asterisk version, or what to fix. */
async function checkAri(config: Config): Promise<{ ok: boolean; text: string }> {
  const { url, username, password, requestTimeoutMs } = config.ari
  if (url === null) return { ok: false, text: 'ARI_URL is not set' }
  const rest = new AriRest({ url, username, password }, { requestTimeoutMs })
  try {
    const info = await rest.asteriskInfo()
    const system = info.system
    const version = typeof system === 'object' && system !== null && typeof (system as { version?: unknown }).version === 'string' ? (system as { version: string }).version : 'version not reported'
    return { ok: true, text: `${rest.shownUrl} reachable, login accepted (Asterisk ${version})` }
  } catch (err) {
    return { ok: false, text: `${(err as Error).message}${ariHint(err)}` }
  } finally {
    rest.close()
  }
}

function ariHint(err: unknown): string {
  const status = ariStatusOf(err)
  if (status === 401) return '' // the message says what to fix already
  if (status === 404) return ' (no ARI there: load res_ari and res_ari_asterisk, and check the http.conf prefix against ARI_URL)'
  if (status === 403) return ' (the ARI user may not do this: check its ari.conf section)'
  if (isAppError(err) && err.code === 'ERR_ARI_UNREACHABLE') {
    return ' (is Asterisk running, http.conf enabled = yes with bindaddr/bindport matching ARI_URL, and res_ari loaded? A firewall between?)'
  }
  return ''
}

/**
 * Whether the server (running as this user) can use `dir`: writable if it exists, else its nearest
 * existing parent must be (the server creates it). Nothing is created here: under systemd the
 * directory belongs to the service's StateDirectory, made at its start.
 */
async function checkSpool(dir: string): Promise<{ ok: boolean; text: string }> {
  let existing = dir
  for (;;) {
    try {
      const info = await stat(existing)
      if (!info.isDirectory()) return { ok: false, text: `${existing} is not a directory` }
      break
    } catch {
      const parent = path.dirname(existing)
      if (parent === existing) return { ok: false, text: `no part of ${dir} exists` }
      existing = parent
    }
  }
  try {
    await access(existing, constants.W_OK | constants.X_OK)
  } catch {
    return { ok: false, text: existing === dir ? `${dir} is not writable by this user` : `${dir} does not exist and ${existing} is not writable by this user` }
  }
  return { ok: true, text: existing === dir ? `${dir} is writable` : `${dir} does not exist yet; the server creates it (${existing} is writable)` }
}
