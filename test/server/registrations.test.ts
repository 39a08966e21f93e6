/**
 * src/server/registrations.ts: the registration body schema and the TTL store (injected clock).
 */
import t from 'tap'
import { MAX_METADATA_CHARS, MAX_METADATA_DEPTH, RegistrationStore, canonicalUuid, parseRegistration } from '../../src/server/registrations.js'

const UUID = '40325ec2-5efd-4bd3-805f-53576e581d13'

t.test('a full body becomes the call options', async (t) => {
  const context = { general: [{ key: 'domain', value: 'banking' }], terms: ['Northwind'] }
  t.same(parseRegistration({ language_hints: ['en', 'es'], language_hints_strict: true, context, metadata: { customer: 'C-1', vip: true } }), {
    options: { recognition: { languageHints: ['en', 'es'], languageHintsStrict: true, context }, metadata: { customer: 'C-1', vip: true } },
  })
  t.same(parseRegistration({}), { options: {} }, 'an empty body admits the UUID with the configured defaults')
  t.same(parseRegistration({ metadata: { a: 1 } }), { options: { metadata: { a: 1 } } }, 'no recognition overrides unless given')
  t.same(parseRegistration({ context: 'legacy text context' }), { options: { recognition: { context: 'legacy text context' } } })
})

t.test('every problem of a body is listed', async (t) => {
  const result = parseRegistration({ language_hints: ['en', 'english'], language_hints_strict: 'yes', context: [1], metadata: 'x', languages: ['en'] })
  t.ok('problems' in result)
  if (!('problems' in result)) return
  t.match(result.problems.join('\n'), /unknown field "languages"/)
  t.match(result.problems.join('\n'), /language_hints must be an array of language codes/)
  t.match(result.problems.join('\n'), /language_hints_strict must be true or false/)
  t.match(result.problems.join('\n'), /context must be a Soniox context object/)
  t.match(result.problems.join('\n'), /metadata must be a JSON object/)
  t.same(parseRegistration(['en']), { problems: ['the body must be a JSON object'] })
  t.match(parseRegistration({ language_hints: ['en', 'en'] }), { problems: [/more than once/] })
  t.match(parseRegistration({ metadata: { blob: 'x'.repeat(MAX_METADATA_CHARS) } }), { problems: [/metadata is longer than/] })
  t.match(parseRegistration({ context: { text: 'x'.repeat(10001) } }), { problems: [/longer than Soniox's limit/] })
})

t.test('a context nested 4,000 levels deep (8 KB of JSON) is a 400 naming the field, never stored', async (t) => {
  const body = JSON.parse(`{"context":{"general":${'['.repeat(4000)}${']'.repeat(4000)}}}`) as unknown
  t.match(parseRegistration(body), { problems: [/^context\.general\[0\]: context\.general must be an array/] })
  t.match(parseRegistration({ context: { terms: [{ deep: [[['x']]] }] } }), { problems: [/^context\.terms must be an array of strings/] })
})

t.test('sample_rate declares the rate of the call audio (the kind of silence sent before its first frame)', async (t) => {
  t.same(parseRegistration({ sample_rate: 16000 }), { options: { sampleRate: 16000 } })
  for (const bad of [11025, '16000', 0, null]) t.match(parseRegistration({ sample_rate: bad }), { problems: [/^sample_rate must be a rate AudioSocket has a kind for/] }, String(bad))
})

t.test('UUIDs are taken in their canonical lowercase form', async (t) => {
  t.equal(canonicalUuid(UUID.toUpperCase()), UUID)
  t.equal(canonicalUuid(`${UUID}\n`), undefined, 'a trailing newline (SHELL(uuidgen) without tr) is not a UUID')
  t.equal(canonicalUuid('1700000000.12'), undefined, '${UNIQUEID} is not a UUID')
})

t.test('a registration lives for the TTL and is used once', async (t) => {
  const clock = { now: 1000 }
  const store = new RegistrationStore(60_000, { now: () => clock.now })
  t.match(store.register(UUID, { metadata: { a: 1 } }), { expiresAt: 61_000, replaced: false })
  t.same(store.take(UUID), { metadata: { a: 1 } })
  t.equal(store.take(UUID), undefined, 'consumed by the call that took it: a UUID cannot be replayed')

  store.register(UUID, {})
  clock.now += 60_000
  t.equal(store.take(UUID), undefined, 'expired exactly at the TTL')

  store.register(UUID, { metadata: { v: 1 } })
  clock.now += 30_000
  t.match(store.register(UUID, { metadata: { v: 2 } }), { expiresAt: clock.now + 60_000, replaced: true }, 'registering again replaces and renews')
  clock.now += 45_000
  t.same(store.take(UUID), { metadata: { v: 2 } })
})

t.test('expired entries are swept without a timer, and the store is bounded', async (t) => {
  const clock = { now: 0 }
  const store = new RegistrationStore(1000, { now: () => clock.now, maxCount: 3 })
  for (const id of ['a', 'b', 'c']) store.register(id, {})
  t.same(store.register('d', {}), { stored: false, limit: 'count', retryAfterMs: 1000 }, 'full: a fourth is refused until the oldest expires')
  clock.now = 500
  t.match(store.register('a', {}), { stored: true, replaced: true }, 'replacing an existing one is not growth')
  t.match(store.register('d', {}), { stored: false, limit: 'count', retryAfterMs: 500 }, 'b expires first now')
  clock.now = 1000
  t.equal(store.size, 1, 'b and c expired and were swept; the renewed a lives on')
  t.match(store.register('d', {}), { stored: true }, 'room again')
  t.ok(store.remove('d'))
  t.notOk(store.remove('d'), 'nothing left to remove')
})

t.test('the store is bounded in bytes of JSON too; a refusal leaves it as it was', async (t) => {
  const clock = { now: 0 }
  const metadata = (chars: number) => ({ metadata: { v: 'x'.repeat(chars) } })
  const size = (chars: number) => Buffer.byteLength(JSON.stringify(metadata(chars)))
  // Room for three 100-character registrations and a little more.
  const store = new RegistrationStore(1000, { now: () => clock.now, maxBytes: 3 * size(100) + 50 })
  for (const [i, id] of ['a', 'b', 'c'].entries()) {
    clock.now = i * 100
    t.match(store.register(id, metadata(100)), { stored: true })
  }
  t.equal(store.bytes, 3 * size(100))
  t.match(store.register('d', metadata(10)), { stored: true }, 'a small one still fits')
  t.same(store.register('e', metadata(100)), { stored: false, limit: 'bytes', retryAfterMs: 1000 - 200 }, 'past the bytes: refused until a has expired')
  t.same(store.register('e', metadata(2 * 100)), { stored: false, limit: 'bytes', retryAfterMs: 1100 - 200 }, 'one that needs two to expire: until b has too')
  t.same(store.register('b', metadata(2 * 100)), { stored: false, limit: 'bytes', retryAfterMs: 1000 - 200 }, 'a growing replacement is refused too')
  t.same(store.take('b'), metadata(100), 'and the registration it would have replaced is untouched')
  t.equal(store.bytes, 2 * size(100) + size(10), 'taking gives its bytes back')
  t.same(store.register('x', metadata(4000)), { stored: false, limit: 'bytes', retryAfterMs: 1000 }, 'larger than the whole store: never fits; a whole TTL')
  clock.now = 1000
  t.equal(store.bytes, size(100) + size(10), 'a expired, and its bytes with it')
  t.ok(store.remove('c'))
  t.equal(store.bytes, size(10))
})

t.test('the store holds registrations as JSON text: a taken one is an equal, frozen copy', async (t) => {
  const store = new RegistrationStore(1000)
  const options = { recognition: { languageHints: ['de'], context: { terms: ['Northwind'] } }, metadata: { nested: [[1, [2]], { a: null }] } }
  store.register(UUID, options)
  const taken = store.take(UUID)
  t.same(taken, options)
  t.not(taken, options)
  t.ok(Object.isFrozen(taken) && Object.isFrozen(taken?.metadata?.nested), 'frozen all the way down')
})

t.test('metadata nested deeper than MAX_METADATA_DEPTH is refused, however deep, without a stack overflow', async (t) => {
  const nest = (levels: number): unknown => {
    let value: unknown = 1
    for (let i = 0; i < levels; i++) value = [value]
    return value
  }
  t.same(parseRegistration({ metadata: { a: nest(MAX_METADATA_DEPTH - 1) } }), { options: { metadata: { a: nest(MAX_METADATA_DEPTH - 1) } } }, 'exactly at the limit')
  t.match(parseRegistration({ metadata: { a: nest(MAX_METADATA_DEPTH) } }), { problems: [/metadata nests arrays and objects more than 16 levels deep/] })
  t.match(parseRegistration({ metadata: { a: nest(100_000) } }), { problems: [/more than 16 levels deep/] }, 'JSON.stringify would throw RangeError here')
})
