/**
 * src/config/schema.ts and setting.ts: the schema as a whole. Convict keeps coercions in one global
 * table keyed by format name, so two different formats under one name would silently share one.
 */
import t from 'tap'
import { schema, type Config } from '../../src/config/schema.js'
import { forEachSetting, type Format } from '../../src/config/setting.js'

t.test('each format name belongs to exactly one format', async (t) => {
  const byName = new Map<string, Format<unknown>>()
  let settings = 0
  forEachSetting(schema, (key, setting) => {
    settings++
    const known = byName.get(setting.format.name)
    t.ok(known === undefined || known === setting.format, `${key}: format ${setting.format.name}`)
    byName.set(setting.format.name, setting.format)
  })
  t.ok(settings > 50 && byName.size > 20, `${settings} settings, ${byName.size} formats`)
})

t.test("a setting's type is its format's", async (t) => {
  // Compile-time: these assignments fail to typecheck if a type drifts from its format.
  const port: Config['audiosocket']['port'] = 9092
  const encoding: Config['audiosocket']['slinEncoding'] = 'mulaw'
  const rate: Config['audiosocket']['slinSampleRate'] = 16000
  const translation: Config['soniox']['translation'] = { type: 'two_way', language_a: 'en', language_b: 'es' }
  const token: Config['http']['token'] = null
  t.same([port, encoding, rate, translation, token], [9092, 'mulaw', 16000, { type: 'two_way', language_a: 'en', language_b: 'es' }, null])
  // @ts-expect-error a rate the format does not produce
  const badRate: Config['audiosocket']['slinSampleRate'] = 44100
  t.equal(badRate, 44100)
})
