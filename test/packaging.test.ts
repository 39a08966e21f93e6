/**
 * What ships besides the code: the systemd unit (systemd-analyze verify, on the unit as `npm pack`
 * packs it, and its security score, where systemd-analyze is installed), the HAProxy sample
 * (haproxy -c when installed), the Dockerfile and the dialplan sample, checked for what the README
 * promises of them.
 *
 * How the unit is verified exactly as shipped: `systemd-analyze verify` checks that ExecStart's
 * command is an executable file. The unit names it without a directory (`audiosocket-soniox serve`),
 * which systemd 239+ resolves against its compiled-in search path (/usr/local/sbin, /usr/local/bin,
 * /usr/sbin, /usr/bin; `systemd-path search-binaries-default`), not $PATH: a stub on PATH does not
 * help, and the real command is not installed on a test machine. `--root=DIR` makes verify resolve
 * the command, and look up the units it depends on (sysinit.target, network-online.target, ...),
 * inside DIR instead. So DIR gets a copy of this host's unit directory and a stub executable at
 * DIR/usr/bin/audiosocket-soniox (where NodeSource's `npm install -g` puts it) or
 * DIR/usr/local/bin/audiosocket-soniox (Node's own installer); without a stub, verify must fail on
 * the command, which shows the check is real. The unit file itself is the one extracted from the
 * tarball `npm pack --ignore-scripts` makes, so what is verified is what installs.
 */
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseEnvFile } from '../src/cli/env-file.js'
import { parseRegistration } from '../src/server/registrations.js'
import { startFakeSoniox } from './support/fake-soniox.js'
import { freePort } from './support/free-port.js'
import { BIN, spawnCli } from './support/spawn-server.js'

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')
const UNIT = read('packaging/audiosocket-soniox.service')
const has = (cmd: string): boolean => spawnSync(cmd, ['--version']).error === undefined

/** Setting lines of a unit file, `Key=value` without comments. */
function unitSettings(text: string): Array<[string, string]> {
  return text
    .split('\n')
    .filter((l) => /^[A-Za-z]+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])
}

t.test('the systemd unit has what a network daemon needs', async (t) => {
  const settings = new Map<string, string[]>()
  for (const [k, v] of unitSettings(UNIT)) settings.set(k, [...(settings.get(k) ?? []), v])
  const one = (k: string): string | undefined => settings.get(k)?.[0]
  t.equal(one('Type'), 'exec')
  t.equal(one('ExecStart'), 'audiosocket-soniox serve', 'the command by name: systemd finds it in /usr/local/bin or /usr/bin, either npm prefix')
  t.equal(one('DynamicUser'), 'yes')
  t.equal(one('StateDirectory'), 'audiosocket-soniox')
  t.match(one('Environment'), /SPOOL_DIR=\/var\/lib\/audiosocket-soniox/, 'the spool lives in the StateDirectory')
  const envSample = parseEnvFile(read('packaging/audiosocket-soniox.env.sample'))
  t.equal(envSample.env.SPOOL_DIR, `/var/lib/${one('StateDirectory')}`, 'the env file names the same spool, so commands run with --env-file see it')
  t.equal(one('EnvironmentFile'), '/etc/audiosocket-soniox/env', 'secrets come from a root-only file, not the unit')
  t.equal(one('Restart'), 'on-failure')
  t.equal(one('RestartPreventExitStatus'), '78', 'no restart loop on invalid settings (EX_CONFIG)')
  t.equal(one('KillSignal'), 'SIGTERM')
  const stopSeconds = Number(/^(\d+)s$/.exec(one('TimeoutStopSec') ?? '')?.[1])
  t.ok(stopSeconds > 30 + 10 + 10, 'stop waits longer than drain + Soniox finish + flush before SIGKILL')
  for (const [key, value] of [
    ['ProtectSystem', 'strict'],
    ['NoNewPrivileges', 'yes'],
    ['PrivateTmp', 'yes'],
    ['ProtectHome', 'yes'],
    ['RestrictAddressFamilies', 'AF_INET AF_INET6 AF_UNIX'],
    ['SystemCallFilter', '@system-service'],
    ['CapabilityBoundingSet', ''],
  ]) {
    t.ok(settings.get(key as string)?.includes(value as string), `${key}=${value}`)
  }
  t.notOk(settings.has('MemoryDenyWriteExecute'), 'no MemoryDenyWriteExecute: V8 needs writable executable memory')
})

/** The unit file from the tarball `npm pack` makes (scripts off: nothing is built), in `dir`. */
function packedUnit(dir: string): string {
  const repo = fileURLToPath(new URL('..', import.meta.url))
  const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: repo, encoding: 'utf8' })
  if (pack.status !== 0) throw new Error(`npm pack failed: ${pack.stderr}`)
  const [packed] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>
  if (!packed?.files.some((f) => f.path === 'packaging/audiosocket-soniox.service')) throw new Error('the tarball holds no packaging/audiosocket-soniox.service')
  const tar = spawnSync('tar', ['-xzf', join(dir, packed.filename), '-C', dir, 'package/packaging/audiosocket-soniox.service'], { encoding: 'utf8' })
  if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr}`)
  return join(dir, 'package/packaging/audiosocket-soniox.service')
}

/** This host's unit directory (the targets the unit depends on), or undefined. */
const HOST_UNITS = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) => existsSync(join(d, 'sysinit.target')))

/**
 * A root for `systemd-analyze verify --root`: the host's units, the packed unit byte for byte where
 * an admin installs it (verify with a root finds the unit by name inside it), and a stub command
 * where `binDir` says (none: undefined). Returns the unit's path.
 */
function verifyRoot(parent: string, name: string, unit: string, binDir: string | undefined): string {
  const root = join(parent, name)
  cpSync(HOST_UNITS as string, join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true })
  const installed = join(root, 'etc/systemd/system/audiosocket-soniox.service')
  mkdirSync(join(root, 'etc/systemd/system'), { recursive: true })
  cpSync(unit, installed)
  if (binDir !== undefined) {
    mkdirSync(join(root, binDir), { recursive: true })
    writeFileSync(join(root, binDir, 'audiosocket-soniox'), '#!/bin/sh\nexit 0\n')
    chmodSync(join(root, binDir, 'audiosocket-soniox'), 0o755)
  }
  return installed
}

const verifySkip = !has('systemd-analyze')
  ? 'systemd-analyze is not installed (apt-get install systemd; .ci/run does): the unit is verified where systemd is'
  : HOST_UNITS === undefined
    ? 'no systemd unit directory on this host (sysinit.target not found) for verify --root'
    : false

t.test('systemd-analyze verify accepts the unit as packed, with the command in /usr/bin or /usr/local/bin', { skip: verifySkip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'audiosocket-soniox-unit-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const unit = packedUnit(dir)
  t.equal(readFileSync(unit, 'utf8'), UNIT, 'the packed unit is the one in packaging/')
  const verify = (installed: string) => {
    const root = installed.slice(0, installed.indexOf('/etc/systemd/system/'))
    return spawnSync('systemd-analyze', ['verify', `--root=${root}`, '--man=no', installed], { encoding: 'utf8' })
  }

  for (const binDir of ['usr/bin', 'usr/local/bin']) {
    const result = verify(verifyRoot(dir, binDir.replace('/', '-'), unit, binDir))
    t.equal(result.status, 0, `/${binDir}/audiosocket-soniox: verify passes ${result.stderr}`)
    t.equal(result.stderr.trim(), '', 'no warnings either (an unknown or misspelt key is only a warning)')
  }
  const missing = verify(verifyRoot(dir, 'no-command', unit, undefined))
  t.not(missing.status, 0, 'without the command installed, verify fails')
  t.match(missing.stderr, /Command audiosocket-soniox is not executable/, 'on the command: what a wrong path in ExecStart looks like')

  const security = spawnSync('systemd-analyze', ['security', '--offline=true', '--threshold=20', unit], { encoding: 'utf8' })
  if (/unrecognized option|Unknown option/i.test(security.stderr)) {
    t.comment('systemd-analyze security --offline is not supported by this systemd; exposure not scored')
    return
  }
  const exposure = /Overall exposure level for \S+: ([\d.]+)/.exec(security.stdout)?.[1]
  t.equal(security.status, 0, `exposure ${exposure} is at most 2.0 of 10 ("OK")`)
})

t.test('the HAProxy sample is valid HAProxy configuration', { skip: has('haproxy') ? false : 'haproxy is not installed (apt-get install haproxy)' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'audiosocket-soniox-haproxy-cfg-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const cfg = join(dir, 'haproxy.cfg')
  // Only what depends on the host: the haproxy user and the admin socket's directory.
  writeFileSync(cfg, read('packaging/haproxy.cfg').replace(/^\s*(user|group)\b.*$/gm, '').replace(/stats socket \S+/, `stats socket ${join(dir, 'admin.sock')}`))
  const check = spawnSync('haproxy', ['-c', '-f', cfg], { encoding: 'utf8' })
  t.equal(check.status, 0, check.stdout + check.stderr)
  t.notMatch(check.stdout + check.stderr, /WARNING/, 'no warnings')
})

t.test('the Dockerfile: multi-stage on Node LTS, production dependencies only, non-root, healthcheck, 0.0.0.0', async (t) => {
  const dockerfile = read('Dockerfile')
  const froms = dockerfile.match(/^FROM .*$/gm) ?? []
  t.equal(froms.length, 2, 'a build stage and a runtime stage')
  t.match(dockerfile, /^ARG NODE_IMAGE=node:(2[2468]|[3-9]\d)-\S+-slim$/m, 'an even-numbered (LTS) Node.js line')
  t.match(dockerfile, /npm prune --omit=dev/, 'dev dependencies pruned before the copy')
  t.notMatch(dockerfile.slice(dockerfile.lastIndexOf('FROM')), /COPY (src|test)|npm (ci|install)/, 'the runtime stage copies no sources and installs nothing')
  t.match(dockerfile, /^USER node$/m, 'runs as the unprivileged node user')
  t.match(dockerfile, /^HEALTHCHECK .*\n.*\/healthz/m, 'health from /healthz')
  t.match(dockerfile, /AUDIOSOCKET_HOST=0\.0\.0\.0/)
  t.match(dockerfile, /HTTP_HOST=0\.0\.0\.0/)
  t.match(dockerfile, /^EXPOSE 9092 9093$/m)
  t.match(dockerfile, /^VOLUME \/var\/lib\/audiosocket-soniox$/m, 'the spool on a volume')
})

/** The Dockerfile's instructions: continuation lines joined, comments dropped, [INSTRUCTION, arguments]. */
function dockerInstructions(text: string): Array<[string, string]> {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'))
    .map((l) => {
      const m = /^\s*(\S+)\s+(.*)$/.exec(l) ?? ['', l.trim(), '']
      return [(m[1] as string).toUpperCase(), (m[2] as string).trim()]
    })
}

/** The runtime stage's: ENTRYPOINT and CMD (exec form), the HEALTHCHECK's command, and its ENV. */
function runtimeStage(text: string) {
  const all = dockerInstructions(text)
  const runtime = all.slice(all.map(([i]) => i).lastIndexOf('FROM'))
  const one = (name: string): string => {
    const found = runtime.filter(([i]) => i === name)
    if (found.length !== 1) throw new Error(`the runtime stage has ${found.length} ${name} instructions`)
    return (found[0] as [string, string])[1]
  }
  const healthcheck = /\bCMD\s+(\[.*\])$/.exec(one('HEALTHCHECK'))?.[1]
  const env: Record<string, string> = {}
  for (const [i, args] of runtime) {
    if (i !== 'ENV') continue
    for (const m of args.matchAll(/(\w+)=(\S*)/g)) env[m[1] as string] = m[2] as string
  }
  return {
    entrypoint: JSON.parse(one('ENTRYPOINT')) as string[],
    cmd: JSON.parse(one('CMD')) as string[],
    healthcheck: JSON.parse(healthcheck ?? 'null') as string[] | null,
    workdir: one('WORKDIR'),
    copies: runtime.filter(([i]) => i === 'COPY').map(([, a]) => a),
    env,
  }
}

/** Runs the HEALTHCHECK's command here (its `node` is this Node), as Docker would inside the container; its exit code. */
function runHealthcheck(command: string[], env: Record<string, string>): Promise<number | null> {
  const [node, ...args] = command
  if (node !== 'node') throw new Error(`the HEALTHCHECK runs ${node}, not node`)
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore' })
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)))
}

t.test("the Dockerfile's ENTRYPOINT and CMD run package.json's bin, the one the tests run, and it serves", async (t) => {
  const stage = runtimeStage(read('Dockerfile'))
  const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string> }
  const bin = pkg.bin['audiosocket-soniox'] as string
  t.same(stage.entrypoint, ['node', bin], `ENTRYPOINT is node ${bin}, the package's bin`)
  t.same(stage.cmd, ['serve'])
  t.equal(stage.workdir, '/app')
  t.ok(stage.copies.includes(`--from=build /app/${bin.split('/')[0]} ./${bin.split('/')[0]}`), `the runtime stage has the compiled ${bin.split('/')[0]}/ under WORKDIR`)
  t.equal(join(fileURLToPath(new URL('..', import.meta.url)), bin), BIN, "the tests' spawned command (test/support/spawn-server.ts) is that file")
  t.match(readFileSync(BIN, 'utf8').split('\n')[0], /^#!\/usr\/bin\/env node$/, 'and an executable script for npm install -g')

  // The image's command with the image's settings (ports chosen here: tests run in parallel).
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  const httpPort = await freePort()
  const env = { ...stage.env, NODE_ENV: 'production', SPOOL_DIR: t.testdir(), AUDIOSOCKET_PORT: '0', HTTP_PORT: String(httpPort), SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url }
  t.equal(stage.env.AUDIOSOCKET_HOST, '0.0.0.0')
  const p = spawnCli(stage.cmd, env)
  t.teardown(() => p.child.kill('SIGKILL'))
  const listening = await p.waitForLog((r) => r.msg === 'AudioSocket server listening')
  t.equal(listening.host, '0.0.0.0', 'listening on every interface, as the image says')

  t.equal(await runHealthcheck(stage.healthcheck ?? [], { HTTP_HOST: stage.env.HTTP_HOST ?? '', HTTP_PORT: String(httpPort) }), 0, 'HEALTHCHECK: healthy (GET /healthz at 127.0.0.1 for the wildcard HTTP_HOST)')
  t.equal(await runHealthcheck(stage.healthcheck ?? [], { HTTP_HOST: '127.0.0.1', HTTP_PORT: String(httpPort) }), 0, 'and at a given HTTP_HOST')
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0, 'SIGTERM (the image\'s STOPSIGNAL) drains and exits 0')
  t.equal(await runHealthcheck(stage.healthcheck ?? [], { HTTP_HOST: '0.0.0.0', HTTP_PORT: String(httpPort) }), 1, 'unhealthy once nothing answers')
})

t.test('the HEALTHCHECK with HTTP_PORT=0: nothing to ask, so it passes instead of failing forever', async (t) => {
  const stage = runtimeStage(read('Dockerfile'))
  t.ok(stage.healthcheck, 'a HEALTHCHECK in exec form')
  t.match(read('Dockerfile'), /HTTP_PORT=0[^\n]*\n#[^\n]*(passes|exit 0)/, 'the Dockerfile says why')
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  const p = spawnCli(['serve'], { ...stage.env, SPOOL_DIR: t.testdir(), AUDIOSOCKET_PORT: '0', HTTP_PORT: '0', SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url })
  t.teardown(() => p.child.kill('SIGKILL'))
  await p.waitForLog((r) => r.msg === 'AudioSocket server listening')
  t.notOk(p.stderrLines.some((l) => l.includes('HTTP endpoint listening')), 'the server runs without an HTTP endpoint')
  for (const port of ['0', ' 0', '00']) {
    t.equal(await runHealthcheck(stage.healthcheck ?? [], { HTTP_HOST: '0.0.0.0', HTTP_PORT: port }), 0, `HTTP_PORT=${JSON.stringify(port)}: exit 0`)
  }
})

t.test('the dialplan sample: Answer() first, both UUID forms, wideband Dial, a registration the server accepts', async (t) => {
  const sample = read('asterisk-dialplan.conf.sample')
  const extensions = sample.split(/^exten => /m).slice(1)
  t.ok(extensions.length >= 4)
  for (const ext of extensions) {
    const lines = ext.split('\n').filter((l) => !l.trim().startsWith(';'))
    t.match(lines[0], /^\d+,1,Answer\(\)/, `extension ${ext.slice(0, 3)} answers first`)
  }
  t.match(sample, /AudioSocket\(\$\{CALL_UUID\},127\.0\.0\.1:9092\)/)
  t.match(sample, /Set\(CALL_UUID=\$\{UUID\(\)\}\)/)
  t.match(sample, /Set\(CALL_UUID=\$\{SHELL\(uuidgen \| tr -d '\\n'\)\}\)/, 'the SHELL fallback strips the newline')
  t.match(sample, /Dial\(AudioSocket\/127\.0\.0\.1:9092\/\$\{CALL_UUID\}\/c\(slin16\)/)
  t.match(sample, /20\.14.*DTMF|DTMF.*20\.14/)
  t.match(sample, /20\.17/, 'when wideband kinds arrived')
  t.match(sample, /2 s/, 'the inactivity timeout')

  const registration = /^ same => n,Set\(REG_BODY=(.*)\)$/m.exec(sample)?.[1]
  t.ok(registration, 'a registration body')
  // Asterisk substitutes ${...} (possibly nested) before CURL() sends it; any plain value will do here.
  let body = registration ?? ''
  while (/\$\{[^{}]*\}/.test(body)) body = body.replace(/\$\{[^{}]*\}/g, 'x')
  t.same(parseRegistration(JSON.parse(body)), { options: { recognition: { languageHints: ['en', 'es'] }, metadata: { caller: 'x', exten: 'x', channel: 'x' } } }, 'the server accepts the sample body')
  t.match(sample, /CURL\(http:\/\/127\.0\.0\.1:9093\/calls\/\$\{CALL_UUID\},\$\{REG_BODY\}\)/, 'POSTed to /calls/<uuid> before AudioSocket()')
  t.ok(sample.indexOf('CURL(http') < sample.indexOf('AudioSocket(${CALL_UUID}', sample.indexOf('CURL(http')), 'registration comes before the connection')
  t.match(sample, /CURLOPT\(httpheader\)=Authorization: Bearer /)
})
