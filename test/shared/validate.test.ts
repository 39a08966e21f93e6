/**
 * src/shared/validate.ts: the rules the configuration, call registrations and the webhook
 * transport share (language codes, extra webhook headers, PEM certificate blocks).
 */
import t from 'tap'
import { isLanguageCode, pemCertificates, webhookHeaderProblem } from '../../src/shared/validate.js'

t.test('language codes: ISO 639 with optional subtags', async (t) => {
  for (const code of ['en', 'fil', 'zh-Hans', 'pt-BR', 'es-419']) t.ok(isLanguageCode(code), code)
  for (const code of ['english', 'EN', 'e', 'en_US', '', 3]) t.notOk(isLanguageCode(code), String(code))
})

t.test('extra webhook headers: token names, values without control characters, none the server sets', async (t) => {
  t.equal(webhookHeaderProblem('X-Tenant', 'acme'), undefined)
  t.equal(webhookHeaderProblem('Authorization', 'Bearer tok-123'), undefined)
  t.equal(webhookHeaderProblem('Bad Name', 'tok-123'), '"Bad Name" is not a valid header name')
  t.equal(webhookHeaderProblem('X-Token', 123), 'the value of X-Token must be a string without control characters')
  t.equal(webhookHeaderProblem('X-Token', 'tok-123\r\nInjected: 1'), 'the value of X-Token must be a string without control characters')
  t.equal(webhookHeaderProblem('Webhook-Signature', 'v1,x'), 'Webhook-Signature is set by the server and cannot be overridden', 'case-insensitive')
  for (const name of ['X-Token', 'Bad Name', 'Content-Type']) t.notMatch(webhookHeaderProblem(name, 'tok-123\n') ?? '', /tok-123/, 'never the value')
})

t.test('PEM certificate blocks', async (t) => {
  const block = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----'
  t.same(pemCertificates(`${block}\n${block}\n`), [block, block])
  t.same(pemCertificates('-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n'), [])
  t.same(pemCertificates('-----BEGIN CERTIFICATE-----\nMIIB\n'), [], 'a block without its end is none')
})
