/**
 * Admission control on a spawned server: ALLOWED_SOURCES resets strangers before reading a byte,
 * MAX_CALLS answers a hangup frame, REQUIRE_REGISTRATION refuses unregistered UUIDs. A refused call
 * is never half-served: no Soniox session, no event.
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import net from 'node:net'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { startFakeSoniox } from '../support/fake-soniox.js'
import { frames, loadCapture } from '../support/frames.js'
import { freePort } from '../support/free-port.js'
import { scrapeMetrics } from '../support/prometheus.js'
import { replayCapture } from '../support/replay.js'
import { spawnCli } from '../support/spawn-server.js'
import { callSessions } from '../support/soniox-probes.js'
import { SONIOX_VERIFIED_MESSAGE } from '../../src/soniox/soniox-health.js'

const DTMF = loadCapture('app-8k-dtmf')
const TOKEN = 'registration-token-0123456789'
const HANGUP = Buffer.from([0, 0, 0])

async function startServer(t: Test, env: Record<string, string>) {
  const soniox = await startFakeSoniox()
  const httpPort = await freePort()
  const p = spawnCli(['serve'], { AUDIOSOCKET_PORT: '0', HTTP_PORT: String(httpPort), SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url, ...env })
  t.teardown(async () => {
    p.child.kill('SIGKILL')
    await soniox.close()
  })
  const listening = await p.waitForLog((r) => r.msg === 'AudioSocket server listening')
  // Ready: the stand-in has answered the start probe (its first session, which callSessions leaves out).
  await p.waitForLog((r) => r.msg === SONIOX_VERIFIED_MESSAGE)
  const events = (): any[] => p.stdoutLines.map((l) => JSON.parse(l))
  return { p, soniox, httpPort, port: listening.port as number, events }
}

interface Peer {
  socket: net.Socket
  received: () => Buffer
  /** Resolves with the error code that ended the connection, or 'closed' for a clean close. */
  ended: Promise<string>
}

/** A hand-driven AudioSocket peer connecting from `localAddress` (any 127.0.0.0/8 address is loopback). */
async function connect(port: number, localAddress: string): Promise<Peer> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  const chunks: Buffer[] = []
  socket.on('data', (c) => chunks.push(c))
  let code = 'closed'
  socket.on('error', (err: NodeJS.ErrnoException) => (code = err.code ?? 'error'))
  const ended = new Promise<string>((resolve) => socket.once('close', () => resolve(code)))
  return { socket, received: () => Buffer.concat(chunks), ended }
}

/**
 * A peer the server will reset on accept. Everything is listened for before connecting: the
 * reset can come before this side has seen 'connect' (then the connect itself fails), so waiting
 * for 'connect' first would race it. The bytes are queued until connected, dropped if reset first.
 */
function connectStranger(port: number, localAddress: string, bytes: Buffer): Omit<Peer, 'socket'> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress })
  const chunks: Buffer[] = []
  socket.on('data', (c) => chunks.push(c))
  let code = 'closed'
  socket.on('error', (err: NodeJS.ErrnoException) => (code = err.code ?? 'error'))
  const ended = new Promise<string>((resolve) => socket.once('close', () => resolve(code)))
  socket.write(bytes)
  return { received: () => Buffer.concat(chunks), ended }
}

t.test('ALLOWED_SOURCES resets other sources unread; MAX_CALLS answers a hangup frame; neither is half-served', async (t) => {
  const s = await startServer(t, { ALLOWED_SOURCES: '127.0.0.2/32, fd00::/8', MAX_CALLS: '1' })

  const stranger = connectStranger(s.port, '127.0.0.1', Buffer.concat([frames.uuid(randomUUID()), frames.audio(0x10, 320)]))
  // ECONNRESET whether the reset met the connect, the write or a read; EPIPE if a write came after
  // the reset was taken. A clean close ('closed') would mean a FIN: not a reset.
  t.match(await stranger.ended, /^(ECONNRESET|EPIPE)$/, 'a source outside the list is reset')
  t.equal(stranger.received().length, 0, 'and told nothing')
  await s.p.waitForLog((r) => r.msg === 'connection refused: source address not in ALLOWED_SOURCES' && String(r.remote).startsWith('127.0.0.1:'))

  const a = await connect(s.port, '127.0.0.2')
  const idA = randomUUID()
  a.socket.write(Buffer.concat([frames.uuid(idA), frames.audio(0x10, 320), frames.audio(0x10, 320)]))
  await s.p.waitForLog((r) => r.msg === 'audio format' && r.callId === idA)

  const b = await connect(s.port, '127.0.0.2')
  const idB = randomUUID()
  b.socket.write(Buffer.concat([frames.uuid(idB), frames.audio(0x10, 320)]))
  t.equal(await b.ended, 'closed', 'the call over the limit is closed cleanly...')
  t.ok(b.received().equals(HANGUP), '...after exactly one hangup frame (old Asterisk would ignore a bare FIN)')
  const refusal = await s.p.waitForLog((r) => r.msg === 'connection refused: MAX_CALLS reached')
  t.match(refusal, { level: 40, activeCalls: 1, maxCalls: 1 })

  a.socket.end()
  await s.p.waitForStdout((line) => line.includes(idA) && line.includes('"call.ended"'))
  const idC = randomUUID()
  const c = await replayCapture(DTMF, { port: s.port, speed: 8, uuidBytes: uuidToBytes(idC), localAddress: '127.0.0.2' })
  t.equal(c.closedByServer, false, 'once the call has ended there is room for the next one')
  await s.p.waitForStdout((line) => line.includes(idC) && line.includes('"call.ended"'))

  const events = s.events()
  t.same([...new Set(events.map((e) => e.call_id))].sort(), [idA, idC].sort(), 'events for the served calls only')
  t.same(callSessions(s.soniox).map((x) => x.startMessage?.client_reference_id).filter(Boolean).sort(), [idA, idC].sort(), 'Soniox sessions for the served calls only')
  t.equal(callSessions(s.soniox).length, 2, 'no session was even opened for a refused one')
  const m = await scrapeMetrics(s.httpPort)
  t.equal(m.value('audiosocket_connections_refused_total', { reason: 'source' }), 1)
  t.equal(m.value('audiosocket_connections_refused_total', { reason: 'max_calls' }), 1)
  t.equal(m.value('audiosocket_connections_refused_total', { reason: 'unregistered' }), 0)
  t.equal(m.value('audiosocket_connections_total'), 4)
  t.equal(m.value('audiosocket_calls_started_total'), 2)
})

t.test('REQUIRE_REGISTRATION: POST /calls/{uuid} with the token admits a call with its own options and metadata; others are refused', async (t) => {
  const s = await startServer(t, { HTTP_TOKEN: TOKEN, REQUIRE_REGISTRATION: 'true', SONIOX_LANGUAGE_HINTS: 'en' })
  const base = `http://127.0.0.1:${s.httpPort}`
  const id = randomUUID()
  const body = JSON.stringify({ language_hints: ['de', 'en'], context: { terms: ['Northwind'] }, metadata: { ticket: 'T-1042', queue: 'support' } })
  const post = (headers: Record<string, string>): Promise<Response> => fetch(`${base}/calls/${id}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } })

  t.equal((await post({})).status, 401, 'no token: refused')
  t.equal((await post({ authorization: 'Bearer not-the-token-at-all' })).status, 401, 'wrong token: refused')
  const created = await post({ authorization: `Bearer ${TOKEN}` })
  t.equal(created.status, 201)
  t.match(await created.json(), { call_id: id })

  const served = await replayCapture(DTMF, { port: s.port, speed: 8, uuidBytes: uuidToBytes(id) })
  t.equal(served.closedByServer, false, 'the registered call is served to its end')
  await s.p.waitForStdout((line) => line.includes(id) && line.includes('"call.ended"'))
  const mine = s.events().filter((e) => e.call_id === id)
  t.same(mine[0]?.data.metadata, { ticket: 'T-1042', queue: 'support' }, 'metadata echoed in call.started')
  t.same(mine.at(-1)?.data.metadata, { ticket: 'T-1042', queue: 'support' }, 'and in call.ended')
  t.equal(mine.at(-1)?.data.reason, 'hangup')
  const session = s.soniox.sessions.find((x) => x.startMessage?.client_reference_id === id)
  t.same(session?.startMessage?.language_hints, ['de', 'en'], 'the call\'s language hints replace SONIOX_LANGUAGE_HINTS')
  t.same(session?.startMessage?.context, { terms: ['Northwind'] }, 'its context reaches Soniox')
  t.same(session?.violations, [])

  const stranger = randomUUID()
  for (const uuid of [stranger, id]) {
    const refused = await replayCapture(DTMF, { port: s.port, speed: 8, uuidBytes: uuidToBytes(uuid) })
    t.ok(refused.closedByServer, `${uuid === id ? 'a used registration' : 'an unregistered UUID'}: refused`)
    t.ok(refused.received.equals(HANGUP), 'with a hangup frame and nothing else')
  }
  await s.p.waitForLog((r) => r.callId === stranger && String(r.msg).startsWith('call refused: its UUID is not registered'))
  t.notOk(s.events().some((e) => e.call_id === stranger), 'no event for the refused call')
  t.equal(s.events().filter((e) => e.call_id === id && e.type === 'call.started').length, 1, 'a UUID is served once: a registration is a one-time ticket')
  t.equal(callSessions(s.soniox).length, 1, 'no Soniox session for the refused calls')
  const m = await scrapeMetrics(s.httpPort)
  t.equal(m.value('audiosocket_connections_refused_total', { reason: 'unregistered' }), 2)
})
