/**
 * Scale-out as README describes it: a real HAProxy (packaging/haproxy.cfg, only addresses and check
 * timing changed) in front of two spawned server processes. Replayed calls spread over both; one
 * instance is drained mid-traffic (SIGTERM); calls it was serving finish there, new calls go to the
 * other, it exits 0, and every call's transcript arrives complete at the webhook.
 */
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { expectedTranscript, startFakeSoniox, type FakeSoniox } from '../support/fake-soniox.js'
import { loadCapture } from '../support/frames.js'
import { freePort } from '../support/free-port.js'
import { WEBHOOK_SECRET } from '../support/harness.js'
import { captureAudio, replayCapture, type ReplayResult } from '../support/replay.js'
import { spawnCli, type ServerProcess } from '../support/spawn-server.js'
import { waitUntil } from '../support/wait.js'
import { startWebhookReceiver } from '../support/webhook-receiver.js'

const SAMPLE = new URL('../../packaging/haproxy.cfg', import.meta.url)
const haproxyMissing = spawnSync('haproxy', ['-v']).error !== undefined

interface Instance {
  name: 'a' | 'b'
  p: ServerProcess
  port: number
  httpPort: number
  /** Call ids this instance started, from its log. */
  calls(): string[]
}

async function startInstance(t: Test, name: 'a' | 'b', soniox: FakeSoniox, webhookUrl: string, dir: string): Promise<Instance> {
  const httpPort = await freePort()
  const p = spawnCli(['serve'], {
    AUDIOSOCKET_PORT: '0',
    HTTP_PORT: String(httpPort),
    SONIOX_API_KEY: 'test-key',
    SONIOX_WEBSOCKET_URL: soniox.url,
    WEBHOOK_URL: webhookUrl,
    WEBHOOK_SECRET,
    SPOOL_DIR: join(dir, `spool-${name}`),
    DRAIN_TIMEOUT_MS: '30000',
  })
  t.teardown(() => p.child.kill('SIGKILL'))
  const listening = await p.waitForLog((r) => r.msg === 'AudioSocket server listening')
  const calls = (): string[] =>
    p.stderrLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((r) => r.msg === 'call started')
      .map((r) => r.callId as string)
  return { name, p, port: listening.port as number, httpPort, calls }
}

/** The sample config with this test's addresses, a stats socket in `dir`, fast checks, no daemon/user/syslog. */
function haproxyConfig(frontendPort: number, a: Instance, b: Instance, socket: string): string {
  const sample = readFileSync(SAMPLE, 'utf8')
  const config = sample
    .replace(/^\s*(user|group|daemon|log \/dev\/log)\b.*$/gm, '')
    .replace(/stats socket \S+/, `stats socket ${socket}`)
    .replace(/bind 127\.0\.0\.1:9090/, `bind 127.0.0.1:${frontendPort}`)
    .replace(/default-server inter 1s fall 2 rise 2/, 'default-server inter 100ms fall 1 rise 1')
    .replace(/server a \S+ check port \d+/, `server a 127.0.0.1:${a.port} check port ${a.httpPort}`)
    .replace(/server b \S+ check port \d+/, `server b 127.0.0.1:${b.port} check port ${b.httpPort}`)
  for (const expected of [`:${frontendPort}`, `:${a.port} check port ${a.httpPort}`, `:${b.port} check port ${b.httpPort}`, socket]) {
    if (!config.includes(expected)) throw new Error(`packaging/haproxy.cfg changed shape: could not set ${expected}`)
  }
  return config
}

/** `show servers state` over the admin socket: server name -> operational state (2 = up). */
async function serverStates(socket: string): Promise<Map<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    const conn = net.connect(socket)
    let out = ''
    conn.on('data', (d) => (out += d.toString()))
    conn.on('end', () => resolve(out))
    conn.on('error', reject)
    conn.end('show servers state audiosocket_servers\n')
  })
  const states = new Map<string, number>()
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    if (f.length > 6 && /^\d+$/.test(f[0] ?? '')) states.set(f[3] ?? '', Number(f[5]))
  }
  return states
}

t.test('two instances behind HAProxy: calls spread, one drains mid-traffic, no transcript is lost', { skip: haproxyMissing ? 'haproxy is not installed (apt-get install haproxy; .ci/run installs it)' : false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'audiosocket-soniox-haproxy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const soniox = await startFakeSoniox()
  const receiver = await startWebhookReceiver({ secret: WEBHOOK_SECRET })
  t.teardown(async () => {
    await receiver.close()
    await soniox.close()
  })
  const [a, b] = await Promise.all([startInstance(t, 'a', soniox, receiver.url, dir), startInstance(t, 'b', soniox, receiver.url, dir)])

  const frontendPort = await freePort()
  const socket = join(dir, 'haproxy.sock')
  const configPath = join(dir, 'haproxy.cfg')
  writeFileSync(configPath, haproxyConfig(frontendPort, a, b, socket))
  const haproxy = spawn('haproxy', ['-db', '-f', configPath], { stdio: ['ignore', 'ignore', 'pipe'] })
  let haproxyErr = ''
  haproxy.stderr.on('data', (d: Buffer) => (haproxyErr += d.toString()))
  t.teardown(() => haproxy.kill('SIGKILL'))
  // The admin socket answers once HAProxy has started; both servers must pass their first checks.
  const deadline = Date.now() + 10000
  for (;;) {
    const states = await serverStates(socket).catch(() => new Map<string, number>())
    if (states.get('a') === 2 && states.get('b') === 2) break
    if (Date.now() > deadline) throw new Error(`HAProxy did not come up with both servers UP: ${haproxyErr}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }

  const capture = loadCapture('app-8k-dtmf')
  const expected = expectedTranscript(captureAudio(capture), 8000).transcript
  const replay = (id: string, speed: number): Promise<ReplayResult> => replayCapture(capture, { port: frontendPort, speed, uuidBytes: uuidToBytes(id) })

  // Wave 1: four calls at once; leastconn spreads them.
  const wave1: string[] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()]
  const wave1Runs = wave1.map((id) => replay(id, 2))
  await waitUntil(() => a.calls().length + b.calls().length === wave1.length, 'every wave-1 call started on an instance')
  t.ok(a.calls().length >= 1 && b.calls().length >= 1, `calls spread over both instances (a: ${a.calls().length}, b: ${b.calls().length})`)
  const onA = a.calls()

  // Drain a while its calls are live; new calls arrive meanwhile.
  a.p.child.kill('SIGTERM')
  await a.p.waitForLog((r) => r.msg === 'draining: new connections refused, live calls go on')
  // HAProxy learns of the drain from its next health check (/readyz 503). Until then a connection it
  // sends to a is refused and retried, and with leastconn the retry may pick a again (b is busier):
  // on a slow machine that window let calls fail. Production has the same window (inter x fall).
  const drainSeen = Date.now() + 5000
  while ((await serverStates(socket)).get('a') === 2) {
    if (Date.now() > drainSeen) throw new Error('HAProxy did not mark the draining instance down within 5 s')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const wave2: string[] = [randomUUID(), randomUUID(), randomUUID()]
  const wave2Runs = wave2.map((id) => replay(id, 4))

  const results = await Promise.all([...wave1Runs, ...wave2Runs])
  t.equal(await a.p.exited, 0, 'the drained instance exits 0 once its calls are done')
  t.same(a.calls(), onA, 'the draining instance took no new call')
  t.same(b.calls().filter((id) => wave2.includes(id)).sort(), [...wave2].sort(), 'every call arriving during the drain went to the other instance')
  t.ok(results.every((r) => !r.closedByServer), 'no call was cut')

  // a flushed its events before exiting: they are all here already.
  for (const id of onA) t.equal(receiver.eventsFor(id).at(-1)?.type, 'call.ended', `call ${id} (on a) fully delivered before a exited`)
  const all = [...wave1, ...wave2]
  await receiver.waitFor((events) => all.every((id) => events.some((e) => e.call_id === id && e.type === 'call.ended')), 15000)
  for (const id of all) {
    const events = receiver.eventsFor(id)
    t.same(events.map((e) => e.seq), events.map((_, i) => i), `${id}: gapless, in order`)
    t.equal(events.at(-1)?.data.reason, 'hangup', `${id}: ended by its caller`)
    t.equal(events.at(-1)?.data.transcript, expected, `${id}: the whole transcript`)
  }
  const states = await serverStates(socket)
  t.equal(states.get('a'), 0, 'HAProxy sees the drained instance as down')
  t.equal(states.get('b'), 2, 'and the other as up')
})
