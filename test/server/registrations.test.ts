/**
 * src/server/registrations.ts: the registration body schema and the TTL store (injected clock).
 */
import t from 'tap'
import { MAX_METADATA_CHARS, RegistrationStore, canonicalUuid, parseRegistration } from '../../src/server/registrations.js'

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
  const store = new RegistrationStore(1000, { now: () => clock.now, maxEntries: 3 })
  for (const id of ['a', 'b', 'c']) store.register(id, {})
  t.equal(store.register('d', {}), undefined, 'full: a fourth is refused')
  clock.now = 500
  t.ok(store.register('a', {}), 'replacing an existing one is not growth')
  clock.now = 1000
  t.equal(store.size, 1, 'b and c expired and were swept; the renewed a lives on')
  t.ok(store.register('d', {}), 'room again')
  t.ok(store.remove('d'))
  t.notOk(store.remove('d'), 'nothing left to remove')
})
