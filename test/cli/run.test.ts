/**
 * src/cli/run.ts in process: the one table of subcommands, their exit codes (0 ok, 2 usage) and
 * where each kind of output goes, with one injected CliIo. Every command answers --help and -h
 * with its own usage and refuses an unknown flag in one line; --version; check --json and
 * settings --json for automation.
 */
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { COMMANDS, main } from '../../src/cli/run.js'
import type { CliIo } from '../../src/cli/cli-support.js'
import { VERSION } from '../../src/version.js'
import { startFakeSoniox } from '../support/fake-soniox.js'
import { WEBHOOK_SECRET } from '../support/harness.js'
import { startWebhookReceiver } from '../support/webhook-receiver.js'

function io(): CliIo & { out(): string; err(): string } {
  let out = ''
  let err = ''
  return { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env: {}, out: () => out, err: () => err }
}

t.test('no command: the usage on stderr, exit 2; help and --help: on stdout, exit 0', async (t) => {
  const none = io()
  t.equal(await main([], none), 2)
  t.match(none.err(), /^Usage: audiosocket-soniox <command>/)
  for (const help of ['help', '--help', '-h']) {
    const out = io()
    t.equal(await main([help], out), 0, help)
    t.match(out.out(), /^Usage: audiosocket-soniox <command>/, help)
  }
})

t.test('an unknown command (also an inherited property name) or option is one usage line', async (t) => {
  for (const name of ['transcribe', 'toString', '__proto__']) {
    const out = io()
    t.equal(await main([name], out), 2, name)
    t.equal(out.err(), `audiosocket-soniox: unknown command "${name}" (see audiosocket-soniox --help)\n`, name)
  }
  const flag = io()
  t.equal(await main(['--bogus'], flag), 2)
  t.equal(flag.err(), 'audiosocket-soniox: unknown option --bogus (see audiosocket-soniox --help)\n')
})

t.test('--help lists every subcommand of the table', async (t) => {
  const out = io()
  t.equal(await main(['--help'], out), 0)
  for (const name of Object.keys(COMMANDS)) t.match(out.out(), new RegExp(`^  ${name} +\\S`, 'm'), name)
  t.match(out.out(), /audiosocket-soniox <command> --help/)
  t.match(out.out(), /audiosocket-soniox --version/)
})

// Every subcommand in the dispatch table, the same way: no command can be added without these.
for (const name of Object.keys(COMMANDS)) {
  // dead-letters has sub-commands: its help and mistakes are the same before and after one.
  const prefixes = name === 'dead-letters' ? [[name], [name, 'list']] : [[name]]
  for (const prefix of prefixes) {
    const shown = prefix.join(' ')
    t.test(`${shown}: --help and -h print its usage on stdout, exit 0; --bogus is one line, exit 2`, async (t) => {
      const usages: string[] = []
      for (const help of ['--help', '-h']) {
        const out = io()
        t.equal(await main([...prefix, help], out), 0, `${shown} ${help}: exit 0`)
        t.equal(out.err(), '', 'nothing on stderr')
        usages.push(out.out())
      }
      t.equal(usages[0], usages[1], '-h and --help print the same')
      const usage = usages[0] ?? ''
      t.match(usage, new RegExp(`^Usage: audiosocket-soniox ${name}\\b`), 'a usage naming the command')
      const options = usage.slice(usage.indexOf('\nOptions:\n') + '\nOptions:\n'.length).trimEnd().split('\n')
      t.ok(usage.includes('\nOptions:\n') && options.length >= 1, 'an option list')
      for (const line of options) t.match(line, /^ {2}(-[a-zA-Z], )?--[a-z][a-z-]*( \S+)? {2,}\S/, `one line per flag: ${line.trim()}`)
      t.match(options.at(-1), /^ {2}-h, --help {2,}print this help and exit$/)
      t.ok(options.every((l) => l.length <= 140), 'lines of a readable length')

      // --help wins over any other mistake on the line.
      const withMistake = io()
      t.equal(await main([...prefix, '--bogus', '--help'], withMistake), 0, '--help wins over a bad flag')
      t.equal(withMistake.out(), usage)

      const bogus = io()
      t.equal(await main([...prefix, '--bogus'], bogus), 2, `${shown} --bogus: exit 2`)
      t.equal(bogus.out(), '', 'nothing on stdout')
      t.equal(bogus.err(), `audiosocket-soniox ${name}: unknown option --bogus (see audiosocket-soniox ${name} --help)\n`, 'one line naming the flag')
      const short = io()
      t.equal(await main([...prefix, '-Z'], short), 2)
      t.equal(short.err(), `audiosocket-soniox ${name}: unknown option -Z (see audiosocket-soniox ${name} --help)\n`)
    })
  }
}

t.test('usage mistakes other than an unknown flag are one line too, without Node\'s advice', async (t) => {
  const cases: Array<[string[], string]> = [
    [['serve', '--config'], "audiosocket-soniox serve: option '-c, --config <value>' argument missing (see audiosocket-soniox serve --help)\n"],
    [['settings', '--json=yes'], "audiosocket-soniox settings: option '--json' does not take an argument (see audiosocket-soniox settings --help)\n"],
    [['check', 'now'], "audiosocket-soniox check: unexpected argument 'now' (see audiosocket-soniox check --help)\n"],
    [['version', 'x'], "audiosocket-soniox version: unexpected argument 'x' (see audiosocket-soniox version --help)\n"],
    [['replay'], 'audiosocket-soniox replay: name at least one capture file, or give --sample (see audiosocket-soniox replay --help)\n'],
    [['dead-letters'], 'audiosocket-soniox dead-letters: name list or redeliver (see audiosocket-soniox dead-letters --help)\n'],
    [['settings', '--config', 'x.json'], 'audiosocket-soniox settings: --config goes with --json (the list shows the defaults) (see audiosocket-soniox settings --help)\n'],
  ]
  for (const [args, line] of cases) {
    const out = io()
    t.equal(await main(args, out), 2, args.join(' '))
    t.equal(out.err(), line)
  }
})

t.test('version and settings run in process on the given io', async (t) => {
  for (const name of ['version', '--version']) {
    const out = io()
    t.equal(await main([name], out), 0)
    t.equal(out.out(), `${VERSION}\n`)
  }
  const settings = io()
  t.equal(await main(['settings'], settings), 0)
  t.match(settings.out(), /^SONIOX_API_KEY +\(secret\)/m)
})

t.test('settings --json: the values in effect by variable, from the environment and --config, secrets redacted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'audiosocket-soniox-settings-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'settings.json')
  writeFileSync(file, JSON.stringify({ audiosocket: { port: 9200 }, http: { port: 0 } }))
  const out = io()
  Object.assign(out.env, {
    SONIOX_API_KEY: 'sk-very-secret-key',
    WEBHOOK_URL: 'https://hook-user:hook-password@hooks.example.com/in?token=t0ken',
    WEBHOOK_SECRET: 'whsec_c2VjcmV0LXNpZ25pbmcta2V5',
    WEBHOOK_HEADERS: '{"Authorization":"Bearer header-token"}',
    HTTP_TOKEN: 'http-token-0123456789abcdef',
    ARI_URL: 'http://127.0.0.1:8088/ari',
    ARI_USERNAME: 'transcriber',
    ARI_PASSWORD: 'ari-password',
    HTTP_PORT: '9300',
    SONIOX_SPEECH_RECOGNITION_MODEL: 'stt-rt-alias-test',
  })
  t.equal(await main(['settings', '--json', '--config', file], out), 0, out.err())
  const values = JSON.parse(out.out())
  t.equal(values.AUDIOSOCKET_PORT, 9200, 'from the file')
  t.equal(values.HTTP_PORT, 9300, 'the environment wins over the file')
  t.equal(values.AUDIOSOCKET_HOST, '127.0.0.1', 'a default')
  t.equal(values.SONIOX_MODEL, 'stt-rt-alias-test', 'an alias, under the canonical variable')
  t.equal(values.WEBHOOK_MAX_AGE, 86400000, 'in its checked form (24h in ms)')
  t.equal(values.ARI_USERNAME, 'transcriber')
  for (const secret of ['SONIOX_API_KEY', 'WEBHOOK_SECRET', 'WEBHOOK_HEADERS', 'HTTP_TOKEN', 'ARI_PASSWORD']) t.equal(values[secret], '(secret)', `${secret} redacted`)
  t.equal(values.WEBHOOK_URL, 'https://hook-user:***@hooks.example.com/in?token=***', "a URL's credentials masked")
  for (const leak of ['sk-very-secret-key', 'hook-password', 't0ken', 'c2VjcmV0', 'header-token', 'http-token-0123', 'ari-password']) t.notMatch(out.out(), leak, `${leak} not shown`)
  t.same(Object.keys(values).slice(0, 2), ['AUDIOSOCKET_HOST', 'AUDIOSOCKET_PORT'], 'in the order settings lists them')

  const unset = io()
  unset.env.SONIOX_API_KEY = 'k'
  t.equal(await main(['settings', '--json'], unset), 0)
  const defaults = JSON.parse(unset.out())
  t.equal(defaults.WEBHOOK_SECRET, null, 'an unset secret is null, not "(secret)"')
  t.same(defaults.WEBHOOK_HEADERS, {}, 'an empty header map hides nothing')
  t.equal(defaults.WEBHOOK_URL, null)

  const invalid = io()
  invalid.env.AUDIOSOCKET_PORT = 'ninety'
  t.equal(await main(['settings', '--json'], invalid), 78, 'invalid settings: exit 78 as serve')
  t.equal(invalid.out(), '', 'no JSON')
  t.match(invalid.err(), /AUDIOSOCKET_PORT \(audiosocket\.port\)/)
})

t.test('check --json: one JSON object with each check (name, ok, status, detail); exit codes as the text', async (t) => {
  const soniox = await startFakeSoniox()
  const receiver = await startWebhookReceiver({ secret: WEBHOOK_SECRET })
  const dir = mkdtempSync(join(tmpdir(), 'audiosocket-soniox-check-json-'))
  t.teardown(async () => {
    await receiver.close()
    await soniox.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const good = io()
  Object.assign(good.env, { SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url, WEBHOOK_URL: receiver.url, WEBHOOK_SECRET, SPOOL_DIR: join(dir, 'spool') })
  t.equal(await main(['check', '--json'], good), 0, good.err())
  const lines = good.out().trim().split('\n')
  t.equal(lines.length, 1, 'one line: only the JSON object')
  const report = JSON.parse(lines[0] ?? '')
  t.match(report, { ok: true, verdict: 'ready to take calls', version: VERSION })
  const names: string[] = report.checks.map((c: { name: string }) => c.name)
  const order = ['config', 'dns', 'soniox', 'webhook', 'spool', 'ari'].map((n) => names.indexOf(n))
  t.ok(order.every((i, k) => i >= 0 && (k === 0 || i > (order[k - 1] as number))), `the checks in the order they ran: ${names.join(', ')}`)
  for (const name of ['config', 'dns', 'soniox', 'webhook', 'spool']) {
    t.match(report.checks.find((c: { name: string }) => c.name === name), { name, ok: true, status: 'ok', detail: String }, name)
  }
  t.match(report.checks.find((c: { name: string }) => c.name === 'ari'), { ok: true, status: 'skip', detail: /ARI_URL is not set/ })
  for (const c of report.checks) t.same(Object.keys(c).sort(), ['detail', 'name', 'ok', 'status'])

  const refused = io()
  Object.assign(refused.env, { SONIOX_API_KEY: 'not-the-key', SONIOX_WEBSOCKET_URL: soniox.url })
  t.equal(await main(['check', '--json'], refused), 1, 'a failed check: exit 1')
  const failed = JSON.parse(refused.out())
  t.equal(failed.ok, false)
  t.match(failed.verdict, /^1 problem\(s\)/)
  t.match(failed.checks.find((c: { name: string }) => c.name === 'soniox'), { ok: false, status: 'fail', detail: /SONIOX_API_KEY is refused/ })
  t.match(failed.checks.find((c: { name: string }) => c.name === 'webhook'), { ok: true, status: 'skip' })
  t.notMatch(refused.out(), /not-the-key/, 'the key is never printed')

  const invalid = io()
  invalid.env.AUDIOSOCKET_PORT = 'ninety'
  t.equal(await main(['check', '--json'], invalid), 78, 'invalid settings: exit 78')
  const config = JSON.parse(invalid.out())
  t.equal(config.ok, false)
  t.same(config.checks.map((c: { name: string }) => c.name), ['config'])
  t.match(config.checks[0].detail, /^invalid configuration:\n {2}.*AUDIOSOCKET_PORT/, 'every problem, one per line, in the detail')
})

t.test('serve with an unknown flag: one line, exit 2, nothing started', async (t) => {
  const out = io()
  t.equal(await main(['serve', '--bogus'], out), 2)
  t.equal(out.err(), 'audiosocket-soniox serve: unknown option --bogus (see audiosocket-soniox serve --help)\n')
  t.equal(out.out(), '')
})

t.test('serve with bad settings from the io env: exit 78 with the problems named', async (t) => {
  const out = io()
  out.env.AUDIOSOCKET_PORT = 'ninety'
  t.equal(await main(['serve'], out), 78)
  t.match(out.err(), /SONIOX_API_KEY \(soniox\.apiKey\): must be set/)
})
