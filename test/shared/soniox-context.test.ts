/**
 * src/shared/soniox-context.ts: the one validator of Soniox `context` (config file and registrations).
 * Only the documented shape passes, rebuilt from its fields; anything else names the field.
 */
import t from 'tap'
import { MAX_CONTEXT_CHARS, parseSonioxContext } from '../../src/shared/soniox-context.js'

/** `{ general: [[[...[]...]]] }` nested `depth` levels: the 8 KB JSON that once killed the process. */
function deeplyNested(depth: number): unknown {
  return JSON.parse(`{"general":${'['.repeat(depth)}${']'.repeat(depth)}}`)
}

t.test('the documented shape passes and is rebuilt, frozen', async (t) => {
  const input = {
    general: [{ key: 'domain', value: 'banking' }],
    text: 'Support line of Northwind',
    terms: ['Northwind', 'AudioSocket'],
    translation_terms: [{ source: 'Konto', target: 'account' }],
  }
  const result = parseSonioxContext(input, 'context')
  if (!('context' in result)) throw new Error(result.problems.join('; '))
  t.same(result.context, input)
  t.not(result.context, input, 'a copy, not the caller object')
  t.ok(Object.isFrozen(result.context))
  const context = result.context as Exclude<typeof result.context, string>
  t.ok(Object.isFrozen(context.general) && Object.isFrozen(context.general?.[0]) && Object.isFrozen(context.terms))
  t.same(parseSonioxContext({}, 'context'), { context: {} }, 'an empty object is a valid context')
  t.same(parseSonioxContext('legacy text context', 'context'), { context: 'legacy text context' }, 'the older string form')
})

t.test('every deviation names its field', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [[1], /^context must be a Soniox context object/],
    [null, /^context must be a Soniox context object/],
    [42, /^context must be a Soniox context object/],
    [{ prompt: 'x' }, /^context has an unknown field "prompt"/],
    [{ general: { key: 'a', value: 'b' } }, /^context\.general must be an array of \{"key": "\.\.\.", "value": "\.\.\."\} objects/],
    [{ general: [{ key: 'a', value: 'b' }, 'c'] }, /^context\.general\[1\]: context\.general must be an array/],
    [{ general: [{ key: 'a', value: 7 }] }, /^context\.general\[0\]\.value must be a string/],
    [{ general: [{ key: ['a'], value: 'b' }] }, /^context\.general\[0\]\.key must be a string/],
    [{ general: [{ key: 'a', value: 'b', weight: 2 }] }, /^context\.general\[0\] has an unknown field "weight"/],
    [{ text: { nested: true } }, /^context\.text must be a string/],
    [{ terms: ['a', ['b']] }, /^context\.terms must be an array of strings/],
    [{ translation_terms: [{ source: 'a' }] }, /^context\.translation_terms\[0\]\.target must be a string/],
  ]
  for (const [input, problem] of cases) {
    const result = parseSonioxContext(input, 'context')
    t.ok('problems' in result, `${JSON.stringify(input)} is refused`)
    if ('problems' in result) t.match(result.problems[0], problem)
  }
  const several = parseSonioxContext({ text: 1, terms: 2, extra: 3 }, 'ctx')
  t.same('problems' in several && several.problems.length, 3, 'every problem at once, under the given name')
})

t.test('a context nested thousands of levels deep is refused, not thrown on', async (t) => {
  for (const depth of [4000, 100_000]) {
    const result = parseSonioxContext(deeplyNested(depth), 'context')
    t.match(result, { problems: [/^context\.general\[0\]: context\.general must be an array/] }, `${depth} levels`)
  }
  const inExtraField = JSON.parse(`{"text":"a","x":${'['.repeat(4000)}${']'.repeat(4000)}}`) as unknown
  t.match(parseSonioxContext(inExtraField, 'context'), { problems: [/unknown field "x"/] })
})

t.test("Soniox's size limit, counted in characters of JSON", async (t) => {
  const atLimit = { text: 'y'.repeat(MAX_CONTEXT_CHARS - JSON.stringify({ text: '' }).length) }
  t.ok('context' in parseSonioxContext(atLimit, 'context'), 'exactly the limit passes')
  t.match(parseSonioxContext({ text: `${atLimit.text}y` }, 'context'), { problems: [/10001 characters of JSON, longer than Soniox's limit of 10000/] })
  t.match(parseSonioxContext('z'.repeat(MAX_CONTEXT_CHARS), 'context'), { problems: [/longer than Soniox's limit/] }, 'the string form too')
})
