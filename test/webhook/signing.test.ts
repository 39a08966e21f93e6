import { createHmac } from 'node:crypto'
import http from 'node:http'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import { serializeEvent } from '../../src/events/serialize-event.js'
import { DeadLetterFile } from '../../src/webhook/dead-letter.js'
import { DeliveryQueue } from '../../src/webhook/delivery-queue.js'
import { Spool } from '../../src/webhook/spool.js'
import { decodeWebhookSecret, signPayload, webhookHeaders } from '../../src/webhook/signing.js'
import { startWebhookReceiver } from '../support/webhook-receiver.js'

// The test vector published with the Standard Webhooks specification and reused by its libraries.
// Reproducing it proves a receiver using any of those libraries will accept our signatures.
const SPEC_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const SPEC_ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek'
const SPEC_TIMESTAMP = 1614265330
const SPEC_BODY = '{"test": 2432232314}'
const SPEC_SIGNATURE = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='

t.test('reproduces the Standard Webhooks reference signature', async (t) => {
  const key = decodeWebhookSecret(SPEC_SECRET)
  t.equal(signPayload(key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY), SPEC_SIGNATURE)
})

t.test('signs id.timestamp.body with HMAC-SHA256, computed here by hand', async (t) => {
  // A second vector whose body has non-ASCII text: the MAC must cover the UTF-8 bytes.
  const keyBytes = Buffer.from([...Array(32).keys()]) // 0x00..0x1f
  const secret = `whsec_${keyBytes.toString('base64')}`
  const body = JSON.stringify({ id: 'evt_1', type: 'transcript.final', data: { text: 'grüß dich' } })
  const expected =
    'v1,' + createHmac('sha256', keyBytes).update(Buffer.from(`evt_1.1700000000.${body}`, 'utf8')).digest('base64')
  t.equal(signPayload(decodeWebhookSecret(secret), 'evt_1', 1700000000, body), expected)
})

t.test('a whsec_ secret is base64-decoded; any other string is its UTF-8 bytes', async (t) => {
  t.same(decodeWebhookSecret('whsec_aGVsbG8='), Buffer.from('hello'))
  t.same(decodeWebhookSecret('hello'), Buffer.from('hello', 'utf8'))
  // Looks like base64 but has no prefix: used as the literal characters, not decoded.
  t.same(decodeWebhookSecret('aGVsbG8='), Buffer.from('aGVsbG8=', 'utf8'))
  t.same(decodeWebhookSecret('pässwörd'), Buffer.from('pässwörd', 'utf8'))
  // The two interpretations give different keys, hence different signatures for the same payload.
  t.not(
    signPayload(decodeWebhookSecret('whsec_aGVsbG8='), 'a', 1, '{}'),
    signPayload(decodeWebhookSecret('aGVsbG8='), 'a', 1, '{}'),
  )
})

t.test('rejects secrets that would sign with a useless or unintended key', async (t) => {
  // Node's base64 decoder skips unknown characters silently; a typo must fail loudly at startup.
  t.throws(() => decodeWebhookSecret('whsec_not base64!'), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => decodeWebhookSecret('whsec_'), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => decodeWebhookSecret('whsec_x'), { code: 'ERR_CONFIG_INVALID' }) // decodes to zero bytes
  t.throws(() => decodeWebhookSecret(''), { code: 'ERR_CONFIG_INVALID' })
})

t.test('webhookHeaders carries id, whole-second timestamp and the matching signature', async (t) => {
  const key = decodeWebhookSecret(SPEC_SECRET)
  t.same(webhookHeaders(key, SPEC_ID, SPEC_TIMESTAMP + 0.9, SPEC_BODY), {
    'webhook-id': SPEC_ID,
    'webhook-timestamp': String(SPEC_TIMESTAMP),
    'webhook-signature': SPEC_SIGNATURE,
  })
})

/** POST a body with the given headers straight to the receiver, bypassing the sink. */
function post(url: string, body: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('the independent receiver accepts what the sink signs', async (t) => {
  const secret = 'whsec_' + Buffer.from('a-32-byte-secret-for-the-tests!!').toString('base64')
  const receiver = await startWebhookReceiver({ secret })
  t.teardown(() => receiver.close())
  const logger = pino({ level: 'silent' })
  const dir = t.testdir()
  const sink = new DeliveryQueue({
    url: receiver.url,
    secret,
    timeoutMs: 2000,
    maxAgeMs: 60_000,
    backoff: { initialMs: 1, maxMs: 5 },
    logger,
    spool: new Spool({ dir, maxBytes: 1 << 20, logger }),
    deadLetters: new DeadLetterFile(join(dir, 'dead-letter.jsonl')),
  })
  await sink.start()
  sink.publish(serializeEvent({ id: 'evt_signed', type: 'call.started', call_id: 'c1', seq: 0, time: new Date().toISOString(), data: { text: 'é' } }))
  await receiver.waitFor((events) => events.length === 1)
  await sink.close(1000)

  const [request] = receiver.requests
  t.equal(request?.headers['webhook-id'], 'evt_signed')
  t.equal(request?.signatureValid, true)
})

t.test('the receiver rejects a tampered body, a stale timestamp and a wrong key', async (t) => {
  const secret = 'plain-text-secret'
  const receiver = await startWebhookReceiver({ secret })
  t.teardown(() => receiver.close())
  const key = decodeWebhookSecret(secret)
  const body = '{"id":"evt_x","seq":0}'
  const now = Math.floor(Date.now() / 1000)

  await post(receiver.url, body, { ...webhookHeaders(key, 'evt_x', now, body) })
  await post(receiver.url, body.replace('"seq":0', '"seq":1'), { ...webhookHeaders(key, 'evt_x', now, body) })
  await post(receiver.url, body, { ...webhookHeaders(key, 'evt_x', now - 10 * 60, body) })
  await post(receiver.url, body, { ...webhookHeaders(Buffer.from('other'), 'evt_x', now, body) })

  // The first, untouched request proves the rejections are about the tampering, not the setup.
  t.same(
    receiver.requests.map((r) => r.signatureValid),
    [true, false, false, false],
  )
})

t.test('the receiver accepts a header listing several signatures if one matches', async (t) => {
  // Key rotation sends "v1,<old> v1,<new>"; verifiers must try each entry.
  const receiver = await startWebhookReceiver({ secret: 'new-secret' })
  t.teardown(() => receiver.close())
  const body = '{"id":"evt_r"}'
  const now = Math.floor(Date.now() / 1000)
  const oldSig = signPayload(Buffer.from('old-secret'), 'evt_r', now, body)
  const newSig = signPayload(Buffer.from('new-secret'), 'evt_r', now, body)
  await post(receiver.url, body, { 'webhook-id': 'evt_r', 'webhook-timestamp': String(now), 'webhook-signature': `${oldSig} ${newSig}` })
  await post(receiver.url, body, { 'webhook-id': 'evt_r', 'webhook-timestamp': String(now), 'webhook-signature': oldSig })
  t.same(
    receiver.requests.map((r) => r.signatureValid),
    [true, false],
  )
})
