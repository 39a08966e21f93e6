/**
 * src/soniox/soniox-health.ts: account-level Soniox problems (401/402/403) are logged once per
 * cause, process-wide, and cleared by the first session that works again; a request Soniox
 * refuses (400: a model, an option) is logged once per cause and leaves readiness alone.
 */
import t from 'tap'
import { createLogger } from '../../src/shared/logger.js'
import { AppError } from '../../src/shared/errors.js'
import { SONIOX_VERIFIED_MESSAGE, SonioxHealth } from '../../src/soniox/soniox-health.js'
import { SonioxError } from '../../src/soniox/soniox-error.js'

function sonioxError(code: number, message = `Soniox error ${code}`, sonioxType?: string): SonioxError {
  return new SonioxError('ERR_SONIOX_SERVER_ERROR', message, { sonioxCode: code, sonioxType, requestId: `req-${Math.random()}` })
}

function rig(startMs = 5000) {
  const lines: Array<Record<string, unknown>> = []
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } })
  let now = startMs
  const health = new SonioxHealth(logger, () => now)
  return {
    health,
    lines,
    errors: () => lines.filter((l) => l.level === 50),
    infos: () => lines.filter((l) => l.level === 30),
    setNow: (ms: number) => void (now = ms),
  }
}

t.test('401 is logged once at error however many times it is reported', async (t) => {
  const r = rig()
  t.equal(r.health.problem, undefined, 'healthy at first')
  for (let i = 0; i < 5; i++) {
    r.setNow(5000 + i * 1000)
    r.health.reportFailure(sonioxError(401, 'Soniox error 401 unauthenticated: Invalid API key.'))
  }
  t.equal(r.errors().length, 1, 'one error line for five failures')
  t.equal(r.lines.length, 1, 'and nothing else')
  t.match(r.errors()[0], { sonioxCode: 401, msg: /API key/, err: { message: /Invalid API key/ } })
  t.strictSame(r.health.problem, { sonioxCode: 401, message: 'Soniox error 401 unauthenticated: Invalid API key.', since: 5000 }, 'since = the first report')
})

t.test('a different cause (402) logs again; going back to 401 logs again too', async (t) => {
  const r = rig()
  r.health.reportFailure(sonioxError(401))
  r.setNow(9000)
  r.health.reportFailure(sonioxError(402, 'Soniox error 402: Organization balance exhausted.'))
  r.health.reportFailure(sonioxError(402))
  t.equal(r.errors().length, 2)
  t.match(r.errors()[1], { sonioxCode: 402, msg: /balance/ })
  t.match(r.health.problem, { sonioxCode: 402, since: 9000, message: /balance exhausted/ })
  r.health.reportFailure(sonioxError(401))
  t.equal(r.errors().length, 3, 'the cause changed back: a new line')
  t.equal(r.health.problem?.sonioxCode, 401)
})

t.test('403 is an account problem too', async (t) => {
  const r = rig()
  r.health.reportFailure(sonioxError(403, 'Soniox error 403 permission_denied'))
  t.equal(r.errors().length, 1)
  t.equal(r.health.problem?.sonioxCode, 403)
})

t.test('the first session accepted since start verifies Soniox: one info line, then nothing while healthy', async (t) => {
  const r = rig()
  t.equal(r.health.verified, false, 'unverified at start')
  r.health.reportHealthy()
  t.equal(r.health.verified, true)
  t.match(r.lines, [{ level: 30, msg: SONIOX_VERIFIED_MESSAGE }])
  r.health.reportHealthy()
  r.health.reportFailure(sonioxError(503))
  t.equal(r.lines.length, 1, 'healthy while healthy: nothing more to say')
  t.equal(r.health.verified, true, 'a transient failure does not unverify')
})

t.test('an account problem before any session was accepted: verified by the session that clears it', async (t) => {
  const r = rig()
  r.health.reportFailure(sonioxError(401))
  t.equal(r.health.verified, false)
  r.health.reportHealthy()
  t.equal(r.health.verified, true)
  t.equal(r.health.problem, undefined)
  t.same(r.infos().map((l) => l.msg), ['Soniox accepts sessions again'], 'one line: the problem is over')
})

t.test('reportHealthy logs info once and clears the problem', async (t) => {
  const r = rig()
  r.health.reportHealthy()
  const lines = r.lines.length
  r.health.reportFailure(sonioxError(402))
  r.health.reportHealthy()
  r.health.reportHealthy()
  t.equal(r.infos().length, lines + 1, 'one info line')
  t.match(r.infos().at(-1), { sonioxCode: 402, msg: /again/ })
  t.equal(r.health.problem, undefined, 'problem cleared')
  r.health.reportFailure(sonioxError(402))
  t.equal(r.errors().length, 2, 'the same cause after recovery is a new episode: logged again')
})

t.test('transient errors are ignored', async (t) => {
  const r = rig()
  for (const code of [408, 429, 500, 503]) r.health.reportFailure(sonioxError(code))
  r.health.reportFailure(new AppError('ERR_SONIOX_CLOSED', 'closed'))
  r.health.reportFailure(new AppError('ERR_SONIOX_BAD_MESSAGE', 'bad'))
  t.equal(r.lines.length, 0, 'nothing logged')
  t.equal(r.health.problem, undefined)

  r.health.reportFailure(sonioxError(401))
  r.health.reportFailure(sonioxError(503))
  t.equal(r.health.problem?.sonioxCode, 401, 'a 503 neither clears nor replaces an account problem')
  t.equal(r.lines.length, 1)
})

t.test('a refused request (400) is logged once per cause, whatever its request id, and is not an account problem', async (t) => {
  const r = rig()
  const model = 'Soniox error 400 invalid_request: Invalid model specified.'
  const option = 'Soniox error 400 invalid_request: Start request is malformed.'
  for (let i = 0; i < 4; i++) r.health.reportFailure(sonioxError(400, model, 'invalid_request'))
  t.equal(r.errors().length, 1, 'one error line for four calls')
  t.match(r.errors()[0], { sonioxCode: 400, sonioxType: 'invalid_request', msg: /refuses the session's request.*SONIOX_MODEL.*audiosocket-soniox check/, err: { message: model } })
  r.health.reportFailure(sonioxError(400, option, 'invalid_request'))
  r.health.reportFailure(sonioxError(400, option, 'invalid_request'))
  t.equal(r.errors().length, 2, 'another cause: one more line')
  t.match(r.errors()[1], { err: { message: option } })
  t.equal(r.health.problem, undefined, 'readiness is not affected: it says nothing of the account')

  r.health.reportFailure(sonioxError(401))
  r.health.reportHealthy()
  r.health.reportFailure(sonioxError(400, model, 'invalid_request'))
  t.equal(r.errors().filter((l) => l.sonioxCode === 400).length, 2, 'a session working again does not make a known refusal new')
})

t.test('refusal causes are bounded: the oldest is forgotten past 64', async (t) => {
  const r = rig()
  for (let i = 0; i < 65; i++) r.health.reportFailure(sonioxError(400, `Soniox error 400: cause ${i}`))
  t.equal(r.errors().length, 65)
  r.health.reportFailure(sonioxError(400, 'Soniox error 400: cause 64'))
  t.equal(r.errors().length, 65, 'the newest is still known')
  r.health.reportFailure(sonioxError(400, 'Soniox error 400: cause 0'))
  t.equal(r.errors().length, 66, 'the oldest was forgotten, so it is logged again')
})
