/**
 * src/soniox/soniox-prober.ts with a fake clock and hand-answered probes: the readiness reason at
 * each step (unverified, account, unreachable, refused, ready), when the next probe runs (backoff
 * while Soniox does not answer, the reprobe interval while it refuses, none once verified), what
 * is logged, and stop() ending a probe in flight.
 */
import t from 'tap'
import { AppError } from '../../src/shared/errors.js'
import { createLogger } from '../../src/shared/logger.js'
import type { ProbeResult } from '../../src/soniox/probe.js'
import { SonioxError } from '../../src/soniox/soniox-error.js'
import { SONIOX_VERIFIED_MESSAGE, SonioxHealth } from '../../src/soniox/soniox-health.js'
import { SonioxProber } from '../../src/soniox/soniox-prober.js'
import { FakeTimers } from '../support/fake-timers.js'

const REPROBE_MS = 30_000

interface PendingProbe {
  signal: AbortSignal
  answer(result: ProbeResult): Promise<void>
}

function rig(options: { retryInitialMs?: number } = {}) {
  const timers = new FakeTimers(1_000_000)
  const lines: Array<Record<string, unknown>> = []
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } })
  const health = new SonioxHealth(logger, timers.now)
  const probes: PendingProbe[] = []
  let throwNext: Error | undefined
  const prober = new SonioxProber({
    health,
    logger,
    clock: timers,
    reprobeMs: REPROBE_MS,
    retryInitialMs: options.retryInitialMs,
    random: () => 0,
    probe: (signal) => {
      if (throwNext !== undefined) {
        const err = throwNext
        throwNext = undefined
        return Promise.reject(err)
      }
      return new Promise<ProbeResult>((resolve) => {
        probes.push({
          signal,
          answer: async (result) => {
            resolve(result)
            await prober.settled()
          },
        })
      })
    },
  })
  return {
    timers,
    health,
    prober,
    probes,
    lines,
    throwNext: (err: Error) => void (throwNext = err),
    /** The last probe started. */
    current: (): PendingProbe => probes.at(-1) as PendingProbe,
    /** Runs the next timer and says whether a probe started. */
    tick: (): boolean => {
      const before = probes.length
      timers.runNext()
      return probes.length > before
    },
    delayToNext: (): number | undefined => (timers.nextDue === undefined ? undefined : timers.nextDue - timers.now()),
  }
}

const ok: ProbeResult = { ok: true, connectMs: 40, totalMs: 120 }
const fail = (error: AppError): ProbeResult => ({ ok: false, error, totalMs: 10 })
const refusedKey = () => fail(new SonioxError('ERR_SONIOX_SERVER_ERROR', 'Soniox error 401 unauthenticated: Invalid API key.', { sonioxCode: 401 }))
const noBalance = () => fail(new SonioxError('ERR_SONIOX_SERVER_ERROR', 'Soniox error 402: balance exhausted', { sonioxCode: 402 }))
const connectFailed = () => fail(new SonioxError('ERR_SONIOX_CONNECT', 'cannot connect to Soniox: connect ECONNREFUSED 127.0.0.1:1', {}))
const unavailable = () => fail(new SonioxError('ERR_SONIOX_CONNECT', 'Soniox refused the upgrade: 503', { sonioxCode: 503 }))
const badModel = () => fail(new SonioxError('ERR_SONIOX_SERVER_ERROR', 'Soniox error 400 invalid_request: Invalid model specified.', { sonioxCode: 400, sonioxType: 'invalid_request' }))

t.test('unverified while the first probe runs; its answer makes it ready; then no probe while healthy', async (t) => {
  const r = rig()
  t.same(r.prober.notReady(), { reason: 'soniox_unverified' }, 'before start')
  r.prober.start()
  r.prober.start()
  t.equal(r.probes.length, 1, 'one probe at once (start is idempotent)')
  t.same(r.prober.notReady(), { reason: 'soniox_unverified' }, 'while it runs')
  t.equal(r.timers.pending, 0, 'no timer while probing')
  await r.current().answer(ok)
  t.equal(r.prober.notReady(), undefined, 'ready')
  t.ok(r.health.verified)
  t.same(r.lines.map((l) => l.msg), [SONIOX_VERIFIED_MESSAGE], 'one info line')
  t.equal(r.delayToNext(), REPROBE_MS, 'one look every reprobe interval')
  t.notOk(r.tick(), 'verified and healthy: no probe')
  t.notOk(r.tick())
  t.equal(r.probes.length, 1)
})

t.test('a refused key at start: soniox_account from the first answer, probed every interval until it is accepted', async (t) => {
  const r = rig()
  r.prober.start()
  await r.current().answer(refusedKey())
  t.same(r.prober.notReady(), { reason: 'soniox_account', detail: { soniox_code: 401, since: new Date(1_000_000).toISOString() } })
  t.equal(r.lines.filter((l) => l.level === 50).length, 1, 'logged once at error (SonioxHealth)')
  t.equal(r.delayToNext(), REPROBE_MS, 'the interval, not a backoff')
  t.ok(r.tick())
  await r.current().answer(refusedKey())
  t.ok(r.tick())
  await r.current().answer(noBalance())
  t.match(r.prober.notReady(), { reason: 'soniox_account', detail: { soniox_code: 402 } }, 'the cause as it is now')
  t.ok(r.tick())
  await r.current().answer(ok)
  t.equal(r.prober.notReady(), undefined)
  t.equal(r.probes.length, 4)
  t.ok(r.lines.some((l) => l.msg === 'Soniox accepts sessions again'))
})

t.test('Soniox does not answer at start: soniox_unreachable, probed again with backoff (1 s doubling, capped), then ready', async (t) => {
  const r = rig()
  r.prober.start()
  await r.current().answer(connectFailed())
  t.same(r.prober.notReady(), { reason: 'soniox_unreachable', detail: { error_code: 'ERR_SONIOX_CONNECT', since: new Date(1_000_000).toISOString(), probes: 1 } })
  const delays: number[] = []
  for (let i = 0; i < 7; i++) {
    delays.push(r.delayToNext() as number)
    t.ok(r.tick())
    await r.current().answer(connectFailed())
  }
  t.same(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000], 'backoff up to the reprobe interval')
  t.match(r.prober.notReady(), { reason: 'soniox_unreachable', detail: { probes: 8, since: new Date(1_000_000).toISOString() } }, 'since: the first failure of the streak')
  const warnings = r.lines.filter((l) => l.level === 40)
  t.equal(warnings.length, 1, 'one warning for the streak')
  t.match(warnings[0], { errorCode: 'ERR_SONIOX_CONNECT', probes: 1, msg: /does not answer/ })
  t.equal(r.lines.filter((l) => l.level === 20).length, 7, 'the repeats at debug')

  // A Soniox fault is the same kind (no answer worth having) but a new cause: a warning again.
  t.ok(r.tick())
  await r.current().answer(unavailable())
  t.match(r.prober.notReady(), { reason: 'soniox_unreachable', detail: { error_code: 'ERR_SONIOX_CONNECT', soniox_code: 503, probes: 9 } })
  t.equal(r.lines.filter((l) => l.level === 40).length, 2)

  t.ok(r.tick())
  await r.current().answer(ok)
  t.equal(r.prober.notReady(), undefined)
  t.equal(r.delayToNext(), REPROBE_MS)
  t.notOk(r.tick(), 'no more probes')
})

t.test('while the account is refused, probes keep the interval whatever they meet', async (t) => {
  const r = rig({ retryInitialMs: 500 })
  r.prober.start()
  await r.current().answer(connectFailed())
  t.equal(r.delayToNext(), 500)
  r.tick()
  await r.current().answer(connectFailed())
  t.equal(r.delayToNext(), 1000)
  r.tick()
  await r.current().answer(refusedKey())
  t.equal(r.delayToNext(), REPROBE_MS, 'the account refused: the interval')
  r.tick()
  await r.current().answer(connectFailed())
  t.equal(r.delayToNext(), REPROBE_MS, 'no answer while the account is refused: still the interval (the account decides)')
  t.match(r.prober.notReady(), { reason: 'soniox_account' })
  r.tick()
  await r.current().answer(ok)
  t.equal(r.prober.notReady(), undefined)
})

t.test('the configured settings refused (400): soniox_refused, a warning once, probed every interval', async (t) => {
  const r = rig()
  r.prober.start()
  await r.current().answer(badModel())
  t.same(r.prober.notReady(), { reason: 'soniox_refused', detail: { error_code: 'ERR_SONIOX_SERVER_ERROR', soniox_code: 400, since: new Date(1_000_000).toISOString(), probes: 1 } })
  t.equal(r.delayToNext(), REPROBE_MS)
  t.ok(r.lines.some((l) => l.level === 40 && /configured settings/.test(String(l.msg))), 'what it means for readiness, at warn')
  r.tick()
  await r.current().answer(badModel())
  t.equal(r.lines.filter((l) => /configured settings/.test(String(l.msg))).length, 1, 'once')
  t.match(r.prober.notReady(), { detail: { probes: 2 } })
})

t.test("a call's session that produces results verifies too: ready, and the probes stop", async (t) => {
  const r = rig()
  r.prober.start()
  await r.current().answer(connectFailed())
  r.health.reportHealthy() // what ResilientTranscriber does at a session's first result
  t.equal(r.prober.notReady(), undefined)
  t.notOk(r.tick(), 'the backoff timer looks, finds it verified, probes nothing')
  t.equal(r.delayToNext(), REPROBE_MS)
})

t.test('once verified, an account problem reported by a call is probed every interval until it clears', async (t) => {
  const r = rig()
  r.prober.start()
  await r.current().answer(ok)
  r.health.reportFailure(new SonioxError('ERR_SONIOX_SERVER_ERROR', 'Soniox error 402', { sonioxCode: 402 }))
  t.match(r.prober.notReady(), { reason: 'soniox_account', detail: { soniox_code: 402 } })
  t.ok(r.tick(), 'the next look probes')
  await r.current().answer(connectFailed())
  t.match(r.prober.notReady(), { reason: 'soniox_account' }, 'a network failure says nothing of the account')
  t.equal(r.lines.filter((l) => l.level === 40).length, 0, 'nor is it a start problem to warn of')
  t.equal(r.delayToNext(), REPROBE_MS)
  t.ok(r.tick())
  await r.current().answer(ok)
  t.equal(r.prober.notReady(), undefined)
})

t.test('stop() closes a probe in flight and ignores its answer; no timer is left', async (t) => {
  const r = rig()
  r.prober.start()
  const probe = r.current()
  r.prober.stop()
  t.ok(probe.signal.aborted, 'the probe was told to close')
  await probe.answer(connectFailed())
  t.equal(r.timers.pending, 0)
  t.same(r.prober.notReady(), { reason: 'soniox_unverified' }, 'its answer ignored')
  t.equal(r.lines.length, 0)
  r.prober.stop()

  const r2 = rig()
  r2.prober.start()
  await r2.current().answer(connectFailed())
  t.equal(r2.timers.pending, 1)
  r2.prober.stop()
  t.equal(r2.timers.pending, 0, 'a waiting retry is cancelled')
  r2.prober.start()
  t.equal(r2.probes.length, 1, 'and it does not start again')
})

t.test('a probe that throws counts as no answer', async (t) => {
  const r = rig()
  r.throwNext(new Error('boom'))
  r.prober.start()
  await r.prober.settled()
  t.match(r.prober.notReady(), { reason: 'soniox_unreachable', detail: { error_code: 'ERR_SONIOX_CONNECT', probes: 1 } })
  t.equal(r.delayToNext(), 1000)
  t.ok(r.tick())
  await r.current().answer(ok)
  t.equal(r.prober.notReady(), undefined)
})
