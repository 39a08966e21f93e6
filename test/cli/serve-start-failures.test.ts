/**
 * A server that cannot start says so in one line an operator can act on (issue 18, item 6), as a
 * separate process: a port in use (AudioSocket or HTTP) or an address that is not this host's is
 * one fatal log line naming the setting, the address, what is wrong and the exit code, no stack
 * trace, exit 1; an address that is no address at all (999.1.1.1) is refused with the settings,
 * exit 78, before anything listens.
 */
import t, { type Test } from 'tap'
import net from 'node:net'
import { startFakeSoniox } from '../support/fake-soniox.js'
import { spawnCli } from '../support/spawn-server.js'

/** A port this test holds, so the server finds it in use. */
async function occupiedPort(t: Test): Promise<number> {
  const holder = net.createServer()
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())))
  return (holder.address() as net.AddressInfo).port
}

async function serve(t: Test, env: Record<string, string>) {
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  const p = spawnCli(['serve'], { AUDIOSOCKET_PORT: '0', SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url, ...env })
  t.teardown(() => p.child.kill('SIGKILL'))
  const code = await p.exited
  // Log lines are JSON; a settings problem is plain text (before any logger exists).
  const records = p.stderrLines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
  return { code, stderr: p.stderrLines.join('\n'), records, stdout: p.stdoutLines }
}

/** Exactly one line at warn or above, fatal, and no stack trace anywhere. */
function oneFatalLine(t: Test, result: Awaited<ReturnType<typeof serve>>): Record<string, unknown> {
  const loud = result.records.filter((r) => (r.level as number) >= 40)
  t.equal(loud.length, 1, `one line at warn or above (got: ${result.stderr})`)
  t.equal(loud[0]?.level, 60, 'fatal')
  t.notMatch(result.stderr, /"stack"|\n\s+at /, 'no stack trace')
  t.same(result.stdout, [], 'nothing on stdout')
  return loud[0] ?? {}
}

t.test('AUDIOSOCKET_PORT in use: one fatal line with the setting, the address, "in use" and the exit code; exit 1', async (t) => {
  const port = await occupiedPort(t)
  const result = await serve(t, { AUDIOSOCKET_PORT: String(port) })
  t.equal(result.code, 1)
  const line = oneFatalLine(t, result)
  t.match(line, { setting: 'AUDIOSOCKET_PORT', address: `127.0.0.1:${port}`, code: 'EADDRINUSE', exitCode: 1 })
  t.equal(
    line.msg,
    `cannot start the AudioSocket listener on 127.0.0.1:${port} (AUDIOSOCKET_HOST:AUDIOSOCKET_PORT): the address is in use by another process; stop it, or set AUDIOSOCKET_PORT to a free port`,
  )
  t.notOk(result.records.some((r) => r.msg === 'audiosocket-soniox started'), 'never said it started')
})

t.test('HTTP_PORT in use: the same, naming HTTP_PORT; exit 1', async (t) => {
  const port = await occupiedPort(t)
  const result = await serve(t, { HTTP_PORT: String(port) })
  t.equal(result.code, 1)
  const line = oneFatalLine(t, result)
  t.match(line, { setting: 'HTTP_PORT', address: `127.0.0.1:${port}`, code: 'EADDRINUSE', exitCode: 1 })
  t.match(line.msg, /^cannot start the HTTP listener on 127\.0\.0\.1:\d+ \(HTTP_HOST:HTTP_PORT\): the address is in use by another process; stop it, or set HTTP_PORT to a free port$/)
})

t.test('AUDIOSOCKET_HOST not an address of this host (192.0.2.1, TEST-NET-1): one line naming AUDIOSOCKET_HOST; exit 1', async (t) => {
  const result = await serve(t, { AUDIOSOCKET_HOST: '192.0.2.1' })
  t.equal(result.code, 1)
  const line = oneFatalLine(t, result)
  t.match(line, { setting: 'AUDIOSOCKET_HOST', address: '192.0.2.1:0', code: 'EADDRNOTAVAIL', exitCode: 1 })
  t.match(line.msg, /192\.0\.2\.1 is not an address of this host; set AUDIOSOCKET_HOST to one of its addresses, 127\.0\.0\.1, or 0\.0\.0\.0/)
})

t.test('AUDIOSOCKET_HOST=999.1.1.1 and HTTP_HOST=999.1.1.1: refused with the settings, exit 78, nothing started', async (t) => {
  const result = await serve(t, { AUDIOSOCKET_HOST: '999.1.1.1', HTTP_HOST: '999.1.1.1' })
  t.equal(result.code, 78, 'EX_CONFIG: systemd does not restart-loop on it')
  t.match(result.stderr, /AUDIOSOCKET_HOST \(audiosocket\.host\): must be an IPv4 address \(e\.g\. 127\.0\.0\.1, or 0\.0\.0\.0 for every IPv4 interface\), an IPv6 address \(e\.g\. ::1, or :: for every interface\) or a host name; this is not an IPv4 address/)
  t.match(result.stderr, /HTTP_HOST \(http\.host\): must be an IPv4 address .*value was "999\.1\.1\.1"/)
  t.notMatch(result.stderr, /listening|\n\s+at /)
})
