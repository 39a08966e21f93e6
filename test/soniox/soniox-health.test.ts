/**
 * src/soniox/soniox-health.ts: account-level Soniox problems (401/402/403) are logged once per
 * cause, process-wide, and cleared by the first session that works again.
 */
import t from 'tap'
import { createLogger } from '../../src/shared/logger.js'
import { AppError } from '../../src/shared/errors.js'
import { SonioxHealth } from '../../src/soniox/soniox-health.js'
import { SonioxError } from '../../src/soniox/soniox-error.js'

function sonioxError(code: number, message = `Soniox error ${code}`): SonioxError {
  return new SonioxError('ERR_SONIOX_SERVER_ERROR', message, { sonioxCode: code })
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

t.test('reportHealthy logs info once and clears the problem', async (t) => {
  const r = rig()
  r.health.reportHealthy()
  t.equal(r.lines.length, 0, 'healthy while healthy: nothing to say')
  r.health.reportFailure(sonioxError(402))
  r.health.reportHealthy()
  r.health.reportHealthy()
  t.equal(r.infos().length, 1, 'one info line')
  t.match(r.infos()[0], { sonioxCode: 402, msg: /again/ })
  t.equal(r.health.problem, undefined, 'problem cleared')
  r.health.reportFailure(sonioxError(402))
  t.equal(r.errors().length, 2, 'the same cause after recovery is a new episode: logged again')
})

t.test('non-account errors are ignored', async (t) => {
  const r = rig()
  for (const code of [400, 408, 429, 500, 503]) r.health.reportFailure(sonioxError(code))
  r.health.reportFailure(new AppError('ERR_SONIOX_CLOSED', 'closed'))
  r.health.reportFailure(new AppError('ERR_SONIOX_BAD_MESSAGE', 'bad'))
  t.equal(r.lines.length, 0, 'nothing logged')
  t.equal(r.health.problem, undefined)

  r.health.reportFailure(sonioxError(401))
  r.health.reportFailure(sonioxError(503))
  t.equal(r.health.problem?.sonioxCode, 401, 'a 503 neither clears nor replaces an account problem')
  t.equal(r.lines.length, 1)
})
