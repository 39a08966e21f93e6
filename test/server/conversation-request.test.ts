/**
 * The body of POST /conversations (src/server/conversation-request.ts): parseConversationRequest on
 * JSON bodies, conversationBodyFromForm on the dialplan's CURL() form; and the roles helpers of
 * src/server/conversation-taps.ts (parseTapRoles for AUDIOSOCKET_SONIOX_TAP, isRole).
 */
import t from 'tap'
import { conversationBodyFromForm, parseConversationRequest } from '../../src/server/conversation-request.js'
import { DEFAULT_ROLES, isRole, parseTapRoles } from '../../src/server/conversation-taps.js'
import { MAX_METADATA_CHARS, parseRegistration } from '../../src/server/registrations.js'

/** The problems of a body that must be refused (fails the test if it was accepted). */
function problems(body: unknown): string[] {
  const parsed = parseConversationRequest(body)
  if (!('problems' in parsed)) throw new Error(`accepted: ${JSON.stringify(body)}`)
  return parsed.problems
}

function accepted(body: unknown) {
  const parsed = parseConversationRequest(body)
  if ('problems' in parsed) throw new Error(`refused: ${parsed.problems.join('; ')}`)
  return parsed.request
}

t.test('the smallest body: a channel; roles default to caller / agent, no options', async (t) => {
  t.same(accepted({ channel: '1733400000.42' }), { channel: '1733400000.42', roles: { in: 'caller', out: 'agent' }, options: {} })
  t.same(accepted({ channel: 'PJSIP/alice-00000001' }).channel, 'PJSIP/alice-00000001', 'a name is taken as well as an id')
  t.same(DEFAULT_ROLES, { in: 'caller', out: 'agent' })
})

t.test('not an object: refused', async (t) => {
  for (const body of [null, [], 'channel', 42, undefined]) {
    t.same(problems(body), ['the body must be a JSON object'], JSON.stringify(body) ?? 'undefined')
  }
})

t.test('channel is required, a string of 1 to 256 characters', async (t) => {
  const channelProblem = /^channel must be the channel's id or name \(a string of 1 to 256 characters\)/
  for (const body of [{}, { channel: '' }, { channel: 42 }, { channel: null }, { channel: ['a'] }, { channel: 'x'.repeat(257) }]) {
    const found = problems(body)
    t.equal(found.length, 1, JSON.stringify(body).slice(0, 40))
    t.match(found[0], channelProblem)
  }
  t.equal(accepted({ channel: 'x'.repeat(256) }).channel.length, 256, '256 characters pass')
})

t.test('roles: an object with in and out, each defaulting, names checked, different', async (t) => {
  t.same(accepted({ channel: 'c', roles: { in: 'customer', out: 'support.agent-2' } }).roles, { in: 'customer', out: 'support.agent-2' })
  t.same(accepted({ channel: 'c', roles: {} }).roles, { in: 'caller', out: 'agent' }, 'an empty object: both defaults')
  t.same(accepted({ channel: 'c', roles: { in: 'customer' } }).roles, { in: 'customer', out: 'agent' })
  t.same(accepted({ channel: 'c', roles: { out: 'operator' } }).roles, { in: 'caller', out: 'operator' })
  t.equal(accepted({ channel: 'c', roles: { in: 'A'.repeat(32) } }).roles.in.length, 32, '32 characters pass')

  const shape = 'roles must be an object { "in": "<role>", "out": "<role>" }'
  for (const roles of ['caller,agent', null, ['caller', 'agent'], 7, { in: 'caller', out: 'agent', third: 'x' }]) {
    t.same(problems({ channel: 'c', roles }), [shape], JSON.stringify(roles))
  }
  const names = 'roles.in and roles.out must be names of 1 to 32 letters, digits, "_", "." or "-", starting with a letter'
  for (const roles of [{ in: '' }, { in: 5 }, { out: '1st' }, { out: 'has space' }, { in: 'A'.repeat(33) }, { in: null }, { out: 'a/b' }]) {
    t.same(problems({ channel: 'c', roles }), [names], JSON.stringify(roles))
  }
  t.same(problems({ channel: 'c', roles: { in: 'same', out: 'same' } }), ['roles.in and roles.out must differ'])
  t.same(problems({ channel: 'c', roles: { in: 'agent' } }), ['roles.in and roles.out must differ'], 'a role equal to the other\'s default')
})

t.test('sample_rate is refused here, whatever its value', async (t) => {
  for (const rate of [16000, 8000, 'x']) {
    t.same(problems({ channel: 'c', sample_rate: rate }), ['sample_rate is not taken here: a tap asks Asterisk for the channel\'s own rate'], String(rate))
  }
})

t.test('an unknown field is named, with the fields this body takes', async (t) => {
  const found = problems({ channel: 'c', bogus: 1 })
  t.equal(found.length, 1)
  t.match(found[0], /^unknown field "bogus" \(known: /)
  const known = /\(known: ([^)]*)\)/.exec(found[0] ?? '')?.[1]?.split(', ') ?? []
  for (const field of ['channel', 'roles', 'language_hints', 'language_hints_strict', 'context', 'metadata']) t.ok(known.includes(field), `names ${field} as known`)
  t.notOk(known.includes('sample_rate'), 'does not name sample_rate, which this body refuses')
  t.match(problems({ channel: 'c', call_id: 'x', other: 2 }), [/"call_id"/, /"other"/], 'each unknown field, once')
  t.match(problems(JSON.parse('{"channel":"c","__proto__":{"metadata":{"a":1}}}')), [/^unknown field "__proto__"/], 'a JSON "__proto__" key is an unknown field, not a way in')
})

t.test('the registration fields pass through as the legs\' options, validated as for POST /calls', async (t) => {
  const body = {
    channel: 'PJSIP/alice-00000001',
    roles: { in: 'caller', out: 'agent' },
    language_hints: ['en', 'es'],
    language_hints_strict: true,
    context: { terms: ['Northwind'] },
    metadata: { ticket: 'T-1042', nested: { a: [1, 2] } },
  }
  const request = accepted(body)
  const registration = parseRegistration({ language_hints: body.language_hints, language_hints_strict: true, context: body.context, metadata: body.metadata })
  if ('problems' in registration) throw new Error('the registration twin is refused')
  t.same(request.options, registration.options, 'the same options a registration with these fields gets')
  t.same(request.options, {
    recognition: { languageHints: ['en', 'es'], languageHintsStrict: true, context: { terms: ['Northwind'] } },
    metadata: { ticket: 'T-1042', nested: { a: [1, 2] } },
  })

  t.same(problems({ channel: 'c', language_hints: 'en' }), ['language_hints must be an array of language codes, e.g. ["en", "es"]'])
  t.same(problems({ channel: 'c', language_hints: ['en', 'en'] }), ['language_hints lists a language more than once'])
  t.same(problems({ channel: 'c', language_hints_strict: 'yes' }), ['language_hints_strict must be true or false'])
  t.same(problems({ channel: 'c', metadata: ['x'] }), ['metadata must be a JSON object'])
  t.same(problems({ channel: 'c', metadata: { big: 'x'.repeat(MAX_METADATA_CHARS) } }), [`metadata is longer than ${MAX_METADATA_CHARS} characters of JSON`])
  t.ok(problems({ channel: 'c', context: 5 }).length > 0, 'a bad context is refused')
})

t.test('every problem at once', async (t) => {
  const found = problems({ channel: '', roles: { in: 'x', out: 'x' }, sample_rate: 8000, language_hints: 'en', bogus: true })
  t.equal(found.length, 5, found.join(' | '))
  t.match(found, [/^channel must/, /must differ/, /^sample_rate/])
  t.ok(found.some((p) => /language_hints must be an array/.test(p)))
  t.ok(found.some((p) => /unknown field "bogus"/.test(p)))
})

// ---- the form (CURL from the dialplan) ----------------------------------------------------------

t.test('the dialplan\'s form: the JSON body it stands for, and the request parsed from it', async (t) => {
  const form = conversationBodyFromForm('channel=1733.42&roles=caller%2Cagent&language_hints=en%2Ces&metadata.ticket=T-1')
  t.same(form, { body: { channel: '1733.42', roles: { in: 'caller', out: 'agent' }, language_hints: ['en', 'es'], metadata: { ticket: 'T-1' } } })
  if ('problems' in form) return
  const fromJson = accepted({ channel: '1733.42', roles: { in: 'caller', out: 'agent' }, language_hints: ['en', 'es'], metadata: { ticket: 'T-1' } })
  t.same(accepted(form.body), fromJson, 'the same request as its JSON twin')
  t.same(fromJson, { channel: '1733.42', roles: { in: 'caller', out: 'agent' }, options: { recognition: { languageHints: ['en', 'es'] }, metadata: { ticket: 'T-1' } } })
})

t.test('form values: spaces trimmed around commas, + as a space, strict as a boolean, metadata values strings', async (t) => {
  t.same(conversationBodyFromForm('channel=PJSIP%2Falice-00000001&roles=+customer+,+agent&language_hints=en+,+de&language_hints_strict=true&metadata.n=42&metadata.who=a+b'), {
    body: { channel: 'PJSIP/alice-00000001', roles: { in: 'customer', out: 'agent' }, language_hints: ['en', 'de'], language_hints_strict: true, metadata: { n: '42', who: 'a b' } },
  })
  t.same(conversationBodyFromForm('language_hints_strict=false'), { body: { language_hints_strict: false } })
  t.same(conversationBodyFromForm('language_hints_strict=yes'), { body: { language_hints_strict: 'yes' } }, 'left for the parser to refuse')
  t.same(problems({ language_hints_strict: 'yes', channel: 'c' }), ['language_hints_strict must be true or false'])
  t.same(conversationBodyFromForm(''), { body: {} }, 'an empty form: an empty body (the parser asks for the channel)')
})

t.test('form roles: exactly two names, checked as the JSON roles are', async (t) => {
  const named = /^the form field "roles" is two names, the "in" stream's then the "out" stream's, e\.g\. roles=caller%2Cagent/
  t.match(conversationBodyFromForm('channel=c&roles=a,b,c'), { problems: [named] })
  t.match(conversationBodyFromForm('channel=c&roles=caller'), { problems: [named] }, 'one name is not "that one and the default"')
  t.match(conversationBodyFromForm('channel=c&roles='), { problems: [named] })
  const emptyName = conversationBodyFromForm('channel=c&roles=caller,')
  if (!('problems' in emptyName)) t.match(problems(emptyName.body), [/^roles.in and roles.out must be names/])
  else t.fail('two parts, one empty, reach the parser')
  const same = conversationBodyFromForm('channel=c&roles=x,x')
  if (!('problems' in same)) t.same(problems(same.body), ['roles.in and roles.out must differ'])
  else t.fail('two names reach the parser')
})

t.test('form: an unknown field is named with the fields a form takes', async (t) => {
  const form = conversationBodyFromForm('channel=c&context=banking')
  t.same(form, { problems: ['unknown form field "context" (known: channel, roles, language_hints, language_hints_strict, metadata.<key>)'] })
  t.match(conversationBodyFromForm('sample_rate=16000&channel=c'), { problems: [/^unknown form field "sample_rate"/] })
  t.match(conversationBodyFromForm('metadata.=x'), { problems: [/^unknown form field "metadata\."/] }, 'metadata. without a key')
})

t.test('form: a field given twice is refused, not overwritten', async (t) => {
  t.same(conversationBodyFromForm('channel=a&channel=b'), { problems: ['the form field "channel" is given twice'] })
  t.same(conversationBodyFromForm('channel=a&roles=x,y&roles=y,x'), { problems: ['the form field "roles" is given twice'] })
  t.same(conversationBodyFromForm('channel=a&metadata.ticket=T-1&metadata.ticket=T-2'), { problems: ['the form field "metadata.ticket" is given twice'] }, 'a metadata key too')
})

t.test('form: any metadata key is the metadata\'s own, as in its JSON twin', async (t) => {
  const form = conversationBodyFromForm('channel=c&metadata.__proto__=x&metadata.constructor=y')
  if ('problems' in form) return t.fail(form.problems.join('; '))
  const metadata = form.body.metadata as Record<string, unknown>
  t.same(Object.keys(metadata), ['__proto__', 'constructor'], 'both keys kept as own keys, none lost')
  t.equal(JSON.stringify(metadata), JSON.stringify(JSON.parse('{"__proto__":"x","constructor":"y"}')))
  t.same(Object.getPrototypeOf({}), Object.prototype, 'nothing global changed')
})

// ---- roles helpers ------------------------------------------------------------------------------

t.test('parseTapRoles: AUDIOSOCKET_SONIOX_TAP as roles', async (t) => {
  for (const yes of ['1', 'yes', 'TRUE', ' on ', 'Yes']) t.equal(parseTapRoles(yes), DEFAULT_ROLES, `"${yes}": the defaults`)
  t.same(parseTapRoles('caller,agent'), { in: 'caller', out: 'agent' })
  t.same(parseTapRoles(' customer , operator '), { in: 'customer', out: 'operator' }, 'spaces trimmed')
  t.same(parseTapRoles('agent,caller'), { in: 'agent', out: 'caller' }, 'in the order given')
  for (const bad of ['', '0', 'caller', 'a,b,c', 'x,x', '1x,agent', 'caller,', ',agent', 'has space,agent', `${'a'.repeat(33)},b`]) {
    t.equal(parseTapRoles(bad), undefined, `"${bad}" is not roles`)
  }
})

t.test('isRole: a name of 1 to 32 letters, digits, _ . -, starting with a letter', async (t) => {
  for (const good of ['a', 'caller', 'Agent_2', 'x.y-z', 'A'.repeat(32)]) t.ok(isRole(good), good)
  for (const bad of ['', '1a', '_a', '-a', 'a b', 'a/b', 'a,b', 'A'.repeat(33), 5, null, undefined, ['a'], 'é']) t.notOk(isRole(bad), JSON.stringify(bad) ?? 'undefined')
})
