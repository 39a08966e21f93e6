/**
 * src/soniox/soniox-error.ts: the typed Soniox error (details fixed at creation, reported under
 * call.ended's names) and the classifications: retriable, the account's, and a refused request.
 */
import t from 'tap'
import { AppError, type ErrorCode } from '../../src/shared/errors.js'
import { SonioxError, isAccountProblem, isRequestRefused, isRetriableSonioxError, sonioxCodeOf } from '../../src/soniox/soniox-error.js'

function sonioxError(code: number, message = `Soniox error ${code}`): SonioxError {
  return new SonioxError('ERR_SONIOX_SERVER_ERROR', message, { sonioxCode: code })
}

t.test('a SonioxError is an AppError whose details are fixed at creation', async (t) => {
  const cause = new Error('socket')
  const error = new SonioxError('ERR_SONIOX_SERVER_ERROR', 'Soniox error 503', { sonioxCode: 503, sonioxType: 'service_unavailable', requestId: 'req-1' }, { cause })
  t.ok(error instanceof AppError)
  t.match(error, { name: 'SonioxError', code: 'ERR_SONIOX_SERVER_ERROR', message: 'Soniox error 503', sonioxCode: 503, sonioxType: 'service_unavailable', requestId: 'req-1', cause })
  t.strictSame(error.reportFields(), { soniox_code: 503, soniox_type: 'service_unavailable', request_id: 'req-1' }, 'call.ended names')
  t.strictSame(new SonioxError('ERR_SONIOX_CONNECT', 'refused', {}).reportFields(), {}, 'absent details are left out')
  t.equal(sonioxCodeOf(error), 503)
  t.equal(sonioxCodeOf(new AppError('ERR_SONIOX_CLOSED')), undefined, 'a plain AppError has no Soniox code')
})

t.test('isRetriableSonioxError', async (t) => {
  function err(code: ErrorCode, sonioxCode?: number): AppError {
    return sonioxCode === undefined ? new AppError(code, code) : new SonioxError(code, code, { sonioxCode })
  }
  const table: Array<[AppError, boolean]> = [
    [err('ERR_SONIOX_SERVER_ERROR', 408), true],
    [err('ERR_SONIOX_SERVER_ERROR', 429), true],
    [err('ERR_SONIOX_SERVER_ERROR', 500), true],
    [err('ERR_SONIOX_SERVER_ERROR', 502), true],
    [err('ERR_SONIOX_SERVER_ERROR', 503), true],
    [err('ERR_SONIOX_SERVER_ERROR', 504), true],
    [err('ERR_SONIOX_SERVER_ERROR', 400), false],
    [err('ERR_SONIOX_SERVER_ERROR', 401), false],
    [err('ERR_SONIOX_SERVER_ERROR', 402), false],
    [err('ERR_SONIOX_SERVER_ERROR', 403), false],
    [err('ERR_SONIOX_CLOSED'), true],
    [err('ERR_SONIOX_UNRESPONSIVE'), true],
    [err('ERR_SONIOX_BACKPRESSURE'), true],
    [err('ERR_SONIOX_FINISH_TIMEOUT'), true],
    [err('ERR_SONIOX_CONNECT'), true],
    [err('ERR_SONIOX_CONNECT', 408), true],
    [err('ERR_SONIOX_CONNECT', 429), true],
    [err('ERR_SONIOX_CONNECT', 502), true],
    [err('ERR_SONIOX_CONNECT', 503), true],
    [err('ERR_SONIOX_CONNECT', 400), false],
    [err('ERR_SONIOX_CONNECT', 401), false],
    [err('ERR_SONIOX_CONNECT', 403), false],
    [err('ERR_SONIOX_CONNECT', 404), false],
    [err('ERR_SONIOX_BAD_MESSAGE'), false],
    [err('ERR_SONIOX_GAVE_UP'), false],
  ]
  for (const [error, retriable] of table) {
    const code = sonioxCodeOf(error)
    t.equal(isRetriableSonioxError(error), retriable, `${error.code}${code === undefined ? '' : ` ${code}`}: ${retriable ? 'retriable' : 'permanent'}`)
  }
})

t.test('isAccountProblem', async (t) => {
  const table: Array<[AppError, boolean]> = [
    [sonioxError(401), true],
    [sonioxError(402), true],
    [sonioxError(403), true],
    [sonioxError(400), false],
    [sonioxError(429), false],
    [sonioxError(503), false],
    [new AppError('ERR_SONIOX_CLOSED'), false],
  ]
  for (const [error, expected] of table) {
    t.equal(isAccountProblem(error), expected, `${error.code} ${sonioxCodeOf(error) ?? '-'}`)
  }
  const connect = new SonioxError('ERR_SONIOX_CONNECT', 'HTTP 401', { sonioxCode: 401 })
  t.equal(isAccountProblem(connect), true, 'a refused upgrade with 401 counts as well')
})

t.test('isRequestRefused: Soniox\'s own 4xx answer that no new session changes (a model, an option), not the account\'s', async (t) => {
  const table: Array<[AppError, boolean]> = [
    [sonioxError(400), true],
    [sonioxError(404), true],
    [sonioxError(413), true],
    [sonioxError(401), false],
    [sonioxError(402), false],
    [sonioxError(403), false],
    [sonioxError(408), false],
    [sonioxError(429), false],
    [sonioxError(500), false],
    [sonioxError(503), false],
    [new SonioxError('ERR_SONIOX_CONNECT', 'HTTP 400', { sonioxCode: 400 }), false],
    [new AppError('ERR_SONIOX_CLOSED'), false],
  ]
  for (const [error, expected] of table) {
    t.equal(isRequestRefused(error), expected, `${error.code} ${sonioxCodeOf(error) ?? '-'}`)
    if (expected) t.equal(isRetriableSonioxError(error), false, 'and so never retried')
  }
})
