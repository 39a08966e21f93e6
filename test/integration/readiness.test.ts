/**
 * GET /readyz tells the truth from the start: 503 until Soniox has answered a probe session
 * (`soniox_unverified`), 503 `soniox_account` from the start with a key Soniox refuses, 503
 * `soniox_unreachable` while Soniox cannot be reached at start (probed again with backoff, 200 as
 * soon as it answers); and later 503 from the first 401/402 a call meets until a probe session is
 * accepted again. The AudioSocket listener takes calls all along: readiness only steers load
 * balancers.
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { SONIOX_VERIFIED_MESSAGE } from '../../src/soniox/soniox-health.js'
import { expectedTranscript, type FakeSoniox } from '../support/fake-soniox.js'
import { loadCapture } from '../support/frames.js'
import { freePort } from '../support/free-port.js'
import { startHarness, type Harness } from '../support/harness.js'
import { scrapeMetrics } from '../support/prometheus.js'
import { captureAudio, replayCapture } from '../support/replay.js'
import { callSessions, probeSessions } from '../support/soniox-probes.js'
import { createTcpGate, type TcpGate } from '../support/tcp-gate.js'
import { waitUntil } from '../support/wait.js'

const DTMF = loadCapture('app-8k-dtmf')

interface Readyz {
  status: number
  body: any
}

async function readyz(httpPort: number): Promise<Readyz> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`)
  return { status: res.status, body: await res.json() }
}

/** Polls /readyz until `done` holds for an answer; resolves with every answer seen, that one last. */
async function readyzUntil(httpPort: number, done: (r: Readyz) => boolean, timeoutMs = 10000): Promise<Readyz[]> {
  const seen: Readyz[] = []
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const r = await readyz(httpPort)
    seen.push(r)
    if (done(r)) return seen
    if (Date.now() > deadline) throw new Error(`timed out polling /readyz; answers: ${JSON.stringify(seen.slice(-3))}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A gate in front of the harness's stand-in, in the state given, closed at teardown. */
async function gated(t: Test, state: 'down' | 'held'): Promise<{ gate: () => TcpGate; sonioxUrl: (soniox: FakeSoniox) => Promise<string> }> {
  let gate: TcpGate | undefined
  return {
    gate: () => gate as TcpGate,
    sonioxUrl: async (soniox) => {
      const target = new URL(soniox.url)
      gate = await createTcpGate({ port: Number(target.port) })
      t.teardown(() => gate?.close())
      if (state === 'held') await gate.hold()
      return gate.url(target.pathname)
    },
  }
}

function logged(h: Harness, predicate: (r: Record<string, unknown>) => boolean): Array<Record<string, unknown>> {
  return h.logs.filter(predicate)
}

t.test('503 while Soniox refuses the key, 200 once a probe session is accepted again', async (t) => {
  const httpPort = await freePort()
  const h = await startHarness({ env: { HTTP_PORT: String(httpPort) }, app: { accountReprobeMs: 300 } })
  t.teardown(() => h.stop())
  t.match(await readyz(httpPort), { status: 200, body: { status: 'ready' } })
  t.equal(probeSessions(h.soniox).length, 1, 'ready after the start probe')

  // The call's session and the next two probes are refused; the third probe is accepted.
  h.soniox.rejectNextSessions(3, { code: 401, type: 'unauthenticated', message: 'Invalid API key.' })
  const id = randomUUID()
  const call = replayCapture(DTMF, { port: h.port, speed: 8, uuidBytes: uuidToBytes(id) })
  await waitUntil(() => h.logs.some((r) => r.level === 50 && r.sonioxCode === 401), 'the account problem logged')
  t.match(await readyz(httpPort), { status: 503, body: { status: 'not_ready', reason: 'soniox_account', soniox_code: 401 } })
  t.equal((await scrapeMetrics(httpPort)).value('audiosocket_ready'), 0)

  await waitUntil(() => h.logs.some((r) => r.msg === 'Soniox accepts sessions again'), 'a probe accepted', 5000)
  t.match(await readyz(httpPort), { status: 200, body: { status: 'ready' } })
  t.equal(h.soniox.sessions.length, 5, 'the start probe, one call session and three probes, no more')
  t.equal(callSessions(h.soniox).length, 1)
  t.equal(probeSessions(h.soniox).length, 4, 'the probes say what they are (client_reference_id)')
  const accepted = h.soniox.sessions[4]
  t.equal(accepted?.audio.length, 1600, 'the accepted probe sent 100 ms of 8 kHz silence')
  t.equal(accepted?.endOfAudio, 'binary', 'then the empty frame')
  t.same(accepted?.violations, [])

  const result = await call
  t.equal(result.closedByServer, false, 'the caller was never hung up')
  await h.receiver.waitFor((events) => events.some((e) => e.call_id === id && e.type === 'call.ended'), 10000)
  const m = await scrapeMetrics(httpPort)
  t.equal(m.value('audiosocket_soniox_errors_total', { code: 'ERR_SONIOX_SERVER_ERROR', soniox_code: '401' }), 1, "the call's refusal counted by code (the probes are not calls)")
  t.equal(m.value('audiosocket_calls_ended_total', { reason: 'error' }), 1)
})

t.test('a wrong key: 503 soniox_account from the start, never 200; calls are still taken', async (t) => {
  const httpPort = await freePort()
  const h = await startHarness({ env: { HTTP_PORT: String(httpPort), SONIOX_API_KEY: 'wrong-key' }, app: { accountReprobeMs: 60_000 }, waitReady: false })
  t.teardown(() => h.stop())
  t.same(h.app.notReady(), { reason: 'soniox_unverified' }, 'listening, and not ready while the start probe runs')

  const answers = await readyzUntil(httpPort, (r) => r.body.reason === 'soniox_account')
  t.ok(answers.every((r) => r.status === 503 && ['soniox_unverified', 'soniox_account'].includes(r.body.reason)), `never ready (${answers.length} answers: unverified, then account)`)
  t.match(answers.at(-1), { status: 503, body: { status: 'not_ready', reason: 'soniox_account', soniox_code: 401, since: /^\d{4}-/ } })
  t.equal((await scrapeMetrics(httpPort)).value('audiosocket_ready'), 0)
  t.equal(logged(h, (r) => r.level === 50 && r.sonioxCode === 401).length, 1, 'the refused key logged once, at error')
  t.equal(probeSessions(h.soniox).length, 1, 'one probe; the next only after accountReprobeMs')

  // Not ready steers load balancers; a call that comes anyway is served (and fails for the key, as before).
  const id = randomUUID()
  const result = await replayCapture(DTMF, { port: h.port, speed: 8, uuidBytes: uuidToBytes(id) })
  t.equal(result.closedByServer, false, 'the call was taken, not refused')
  const events = await h.receiver.waitFor((all) => all.some((e) => e.call_id === id && e.type === 'call.ended'), 10000)
  const mine = events.filter((e) => e.call_id === id)
  t.equal(mine[0]?.type, 'call.started')
  t.match(mine.at(-1), { type: 'call.ended', data: { reason: 'error', error: { soniox_code: 401 } } })
  t.match(await readyz(httpPort), { status: 503, body: { reason: 'soniox_account' } })
  t.equal(logged(h, (r) => r.msg === SONIOX_VERIFIED_MESSAGE).length, 0)
})

t.test('the right key: 503 soniox_unverified until the start probe is answered, then 200', async (t) => {
  const httpPort = await freePort()
  const g = await gated(t, 'held')
  const h = await startHarness({ env: { HTTP_PORT: String(httpPort) }, waitReady: false, sonioxUrl: g.sonioxUrl })
  t.teardown(() => h.stop())
  t.same(h.app.notReady(), { reason: 'soniox_unverified' })
  await waitUntil(() => g.gate().waiting === 1, 'the start probe connected (held at the gate)')
  t.match(await readyz(httpPort), { status: 503, body: { status: 'not_ready', reason: 'soniox_unverified' } }, 'not ready while the probe waits for Soniox')
  t.equal((await scrapeMetrics(httpPort)).value('audiosocket_ready'), 0)
  t.equal(h.soniox.sessions.length, 0, 'Soniox has not seen it yet')

  await g.gate().open()
  const answers = await readyzUntil(httpPort, (r) => r.status === 200)
  t.ok(answers.slice(0, -1).every((r) => r.body.reason === 'soniox_unverified'), 'unverified until the answer')
  t.match(answers.at(-1)?.body, { status: 'ready', active_calls: 0 })
  t.equal((await scrapeMetrics(httpPort)).value('audiosocket_ready'), 1)
  t.equal(h.soniox.sessions.length, 1)
  t.equal(probeSessions(h.soniox)[0]?.audio.length, 1600, 'the probe: 100 ms of silence')
  t.equal(probeSessions(h.soniox)[0]?.state, 'closed')
  t.equal(logged(h, (r) => r.msg === SONIOX_VERIFIED_MESSAGE).length, 1, 'logged once, at info')
})

t.test('Soniox unreachable at start: 503 soniox_unreachable, probed again with backoff, 200 once it answers; a call meanwhile is served in full', async (t) => {
  const httpPort = await freePort()
  const g = await gated(t, 'down')
  const h = await startHarness({
    env: { HTTP_PORT: String(httpPort), SONIOX_RECONNECT_INITIAL_DELAY_MS: '50', SONIOX_RECONNECT_MAX_DELAY_MS: '200' },
    app: { accountReprobeMs: 400 },
    waitReady: false,
    sonioxUrl: g.sonioxUrl,
  })
  t.teardown(() => h.stop())

  const unreachable = (r: Readyz): boolean => r.body.reason === 'soniox_unreachable'
  const first = (await readyzUntil(httpPort, unreachable)).at(-1)
  t.match(first, { status: 503, body: { status: 'not_ready', reason: 'soniox_unreachable', error_code: 'ERR_SONIOX_CONNECT', since: /^\d{4}-/, probes: 1 } })
  t.notOk('soniox_code' in (first?.body ?? {}), 'no Soniox code: nothing answered')
  await waitUntil(() => (h.app.notReady()?.detail?.probes as number) >= 3, 'two more probes (backoff capped at 400 ms)')
  t.equal(first?.body.since, h.app.notReady()?.detail?.since, 'since: the first failed probe of the streak')
  const warnings = logged(h, (r) => r.level === 40 && r.component === 'soniox')
  t.equal(warnings.length, 1, 'one warning for the streak (repeats at debug)')
  t.match(warnings[0], { errorCode: 'ERR_SONIOX_CONNECT', msg: /does not answer/ })

  // A call that arrives meanwhile is taken; its transcription waits for Soniox (reconnects, audio kept).
  const id = randomUUID()
  const call = replayCapture(DTMF, { port: h.port, speed: 8, uuidBytes: uuidToBytes(id) })
  await h.receiver.waitFor((events) => events.some((e) => e.call_id === id && e.type === 'call.started'), 10000)
  t.match(await readyz(httpPort), { status: 503, body: { reason: 'soniox_unreachable' } })

  await g.gate().open()
  await readyzUntil(httpPort, (r) => r.status === 200)
  t.equal(logged(h, (r) => r.msg === SONIOX_VERIFIED_MESSAGE).length, 1)

  const result = await call
  t.equal(result.closedByServer, false)
  const events = await h.receiver.waitFor((all) => all.some((e) => e.call_id === id && e.type === 'call.ended'), 15000)
  const ended = events.find((e) => e.call_id === id && e.type === 'call.ended')
  t.equal(ended.data.reason, 'hangup')
  t.equal(ended.data.transcript, expectedTranscript(captureAudio(DTMF), 8000).transcript, 'every word, once Soniox answered')
  t.equal(callSessions(h.soniox).filter((s) => s.startMessage?.client_reference_id === id).length, 1, 'one session reached Soniox for the call')
})
