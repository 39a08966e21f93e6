/**
 * src/cli/run.ts in process: the one table of subcommands, their exit codes (0 ok, 2 usage) and
 * where each kind of output goes, with one injected CliIo.
 */
import t from 'tap'
import { main } from '../../src/cli/run.js'
import type { CliIo } from '../../src/cli/cli-support.js'
import { VERSION } from '../../src/version.js'

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

t.test('an unknown command (also an inherited property name) is a usage error', async (t) => {
  for (const name of ['transcribe', 'toString', '__proto__']) {
    const out = io()
    t.equal(await main([name], out), 2, name)
    t.match(out.err(), new RegExp(`unknown command "${name}"`), name)
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

t.test('serve with an unknown flag: its own usage, exit 2, nothing started', async (t) => {
  const out = io()
  t.equal(await main(['serve', '--bogus'], out), 2)
  t.match(out.err(), /audiosocket-soniox serve: Unknown option '--bogus'[\s\S]*Usage: audiosocket-soniox serve \[--config FILE\]/)
})

t.test('serve with bad settings from the io env: exit 78 with the problems named', async (t) => {
  const out = io()
  out.env.AUDIOSOCKET_PORT = 'ninety'
  t.equal(await main(['serve'], out), 78)
  t.match(out.err(), /SONIOX_API_KEY \(soniox\.apiKey\): must be set/)
})
