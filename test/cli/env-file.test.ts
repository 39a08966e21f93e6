/**
 * `--env-file FILE` (src/cli/env-file.ts): the unit's /etc/audiosocket-soniox/env read as systemd
 * reads an EnvironmentFile=, so that `dead-letters`, `check`, `settings --json` and `serve` run from
 * a shell see the service's settings, its SPOOL_DIR above all (issue 18, item 1). The parser's cases
 * follow systemd's own (src/basic/env-file.c); the commands run in process through main().
 */
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { main } from '../../src/cli/run.js'
import { parseEnvFile } from '../../src/cli/env-file.js'
import { DeadLetterFile } from '../../src/webhook/dead-letter.js'

const ENV_SAMPLE = readFileSync(new URL('../../packaging/audiosocket-soniox.env.sample', import.meta.url), 'utf8')

function io(env: Record<string, string> = {}) {
  let out = ''
  let err = ''
  return { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env, out: () => out, err: () => err }
}

t.test("systemd's syntax: comments, spaces, quotes, escapes, continuations, the last assignment wins", async (t) => {
  const { env, ignored } = parseEnvFile(
    [
      '# a comment',
      '; also a comment',
      '   # indented comment',
      '',
      'PLAIN=value',
      '  SPACED  =   value with spaces   ',
      'HASH=abc # not a comment after a value',
      "SINGLE='literal $HOME \\n \"quoted\"'",
      'DOUBLE="a \\"b\\" \\\\ \\$HOME \\` \\n kept"',
      'JSON=\'{"Authorization": "Bearer abc"}\'',
      'MIXED=\'one\'"two"three',
      'ESCAPED=a\\ b\\#c',
      'CONTINUED=first \\',
      'second',
      'EMPTY=',
      'QUOTED_EMPTY=""',
      'DOLLAR=$NOT_EXPANDED',
      'TWICE=first',
      'TWICE=second',
      "MULTI='line one",
      "line two'",
      'CRLF=value\r',
      'LAST=no newline at the end',
    ].join('\n'),
  )
  t.same(ignored, [])
  t.same(
    { ...env },
    {
      PLAIN: 'value',
      SPACED: 'value with spaces',
      HASH: 'abc # not a comment after a value',
      SINGLE: 'literal $HOME \\n "quoted"',
      DOUBLE: 'a "b" \\ $HOME ` \\n kept',
      JSON: '{"Authorization": "Bearer abc"}',
      MIXED: 'onetwothree',
      ESCAPED: 'a b#c',
      CONTINUED: 'first second',
      EMPTY: '',
      QUOTED_EMPTY: '',
      DOLLAR: '$NOT_EXPANDED',
      TWICE: 'second',
      MULTI: 'line one\nline two',
      CRLF: 'value',
      LAST: 'no newline at the end',
    },
  )
})

t.test('lines systemd ignores are reported with their line numbers; nothing else is taken from them', async (t) => {
  const { env, ignored } = parseEnvFile('GOOD=1\nexport BAD=2\n2BAD=3\nNO_EQUALS\n__proto__=x\n')
  t.same({ ...env }, JSON.parse('{"GOOD": "1", "__proto__": "x"}'), '__proto__ is an ordinary variable name here, kept as one')
  t.same(
    ignored.map((i) => [i.line, i.key]),
    [
      [2, 'export BAD'],
      [3, '2BAD'],
      [4, 'NO_EQUALS'],
    ],
  )
})

t.test('the packaged env sample: every line valid, and SPOOL_DIR is the unit\'s StateDirectory', async (t) => {
  const { env, ignored } = parseEnvFile(ENV_SAMPLE)
  t.same(ignored, [], 'nothing systemd would ignore')
  t.equal(env.SPOOL_DIR, '/var/lib/audiosocket-soniox', 'set, not commented out: commands run with --env-file see the spool')
  t.equal(env.SONIOX_API_KEY, '', 'the key is to be filled in')
})

t.test('dead-letters list --env-file: the spool of the file, not $PWD/var/spool', async (t) => {
  const dir = t.testdir({ spool: {} })
  const spool = join(dir, 'spool')
  const file = new DeadLetterFile(join(spool, 'dead-letter.jsonl'))
  const bodyText = JSON.stringify({ id: 'evt_1', type: 'call.ended', call_id: 'c1', seq: 4, time: '2026-11-20T22:00:00.000Z', data: {} })
  await file.append({
    id: 'evt_1',
    callId: 'c1',
    seq: 4,
    type: 'call.ended',
    bodyText,
    reason: 'rejected',
    status: 400,
    bodyExcerpt: null,
    error: { code: 'ERR_WEBHOOK_REJECTED', message: 'the webhook answered 400' },
    attempts: 1,
    firstAttemptAtMs: 0,
    lastAttemptAtMs: 0,
    deadLetteredAtMs: 0,
  })
  const envFile = join(dir, 'env')
  writeFileSync(envFile, `${ENV_SAMPLE}\nSPOOL_DIR=${spool}\n`)

  const withFile = io()
  t.equal(await main(['dead-letters', 'list', '--env-file', envFile], withFile), 0)
  t.match(withFile.out(), /evt_1 {2}call=c1 seq=4 call\.ended {2}rejected status=400 attempts=1\n1 dead letter\(s\) in .*dead-letter\.jsonl/)
  t.equal(withFile.err(), '')

  const equalsForm = io()
  t.equal(await main(['dead-letters', 'list', `--env-file=${envFile}`, '--json'], equalsForm), 0)
  t.equal(JSON.parse(equalsForm.out()).id, 'evt_1', '--env-file=FILE works too')
})

t.test('check and settings --json --env-file: the file\'s settings; an invalid one there is named, exit 78', async (t) => {
  const dir = t.testdir({ good: 'SONIOX_API_KEY=from-the-file\nAUDIOSOCKET_PORT=9192\nSONIOX_LANGUAGE_HINTS=" en, es "\n', bad: 'SONIOX_API_KEY=k\nAUDIOSOCKET_HOST=999.1.1.1\n' })
  const settings = io()
  t.equal(await main(['settings', '--json', '--env-file', join(dir, 'good')], settings), 0)
  const values = JSON.parse(settings.out())
  t.equal(values.AUDIOSOCKET_PORT, 9192)
  t.same(values.SONIOX_LANGUAGE_HINTS, ['en', 'es'], 'a double-quoted value, as systemd reads it')
  t.equal(values.SONIOX_API_KEY, '(secret)')

  const check = io()
  t.equal(await main(['check', '--env-file', join(dir, 'bad')], check), 78)
  t.match(check.out(), /FAIL +config +invalid configuration:\s+AUDIOSOCKET_HOST \(audiosocket\.host\): must be an IPv4 address/)

  const plain = io()
  t.equal(await main(['settings', '--env-file', join(dir, 'good')], plain), 2, '--env-file goes with settings --json only')
  t.match(plain.err(), /--env-file goes with --json/)
})

t.test('the environment wins over the file, and a difference is noted; ignored lines are noted', async (t) => {
  const dir = t.testdir({ env: 'SONIOX_API_KEY=k\nAUDIOSOCKET_PORT=9192\nLOG_LEVEL=warn\nexport MAX_CALLS=5\n' })
  const out = io({ AUDIOSOCKET_PORT: '9292', LOG_LEVEL: 'warn' })
  t.equal(await main(['settings', '--json', '--env-file', join(dir, 'env')], out), 0)
  t.equal(JSON.parse(out.out()).AUDIOSOCKET_PORT, 9292)
  t.match(out.err(), /AUDIOSOCKET_PORT is set in the environment and in .*env; the environment's value is used/)
  t.notMatch(out.err(), /LOG_LEVEL/, 'the same value in both is not worth a note')
  t.match(out.err(), /env:4: "export MAX_CALLS" ignored: not a variable name .*\(systemd ignores it too\)/)
})

t.test('a file that cannot be read: one line, exit 78; no file after the flag: exit 2', async (t) => {
  const missing = io()
  t.equal(await main(['check', '--env-file', '/nonexistent/env'], missing), 78)
  t.match(missing.err(), /^audiosocket-soniox check: --env-file \/nonexistent\/env cannot be read: ENOENT/)
  t.equal(missing.out(), '', 'nothing checked')

  const noValue = io()
  t.equal(await main(['dead-letters', 'list', '--env-file'], noValue), 2)
  t.match(noValue.err(), /--env-file/)
})
