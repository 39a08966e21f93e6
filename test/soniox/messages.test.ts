/**
 * src/soniox/messages.ts: every Soniox server frame is JSON text without a type field; the parser
 * tells results, `finished` and errors apart and returns an Error (never throws) for anything else.
 */
import t from 'tap'
import { END_TOKEN, FIN_TOKEN, parseSonioxMessage, type SonioxMessage } from '../../src/soniox/messages.js'

function parse(value: unknown): SonioxMessage | Error {
  return parseSonioxMessage(typeof value === 'string' ? value : JSON.stringify(value))
}

t.test('a result with tokens and progress fields', async (t) => {
  const tokens = [
    { text: ' Hel', start_ms: 120, end_ms: 300, confidence: 0.91, is_final: true, speaker: '1', language: 'en' },
    { text: 'lo', start_ms: 300, end_ms: 420, confidence: 0.88, is_final: true },
    { text: ' wor', start_ms: 500, end_ms: 600, confidence: 0.5, is_final: false },
  ]
  const parsed = parse({ tokens, final_audio_proc_ms: 420, total_audio_proc_ms: 640 })
  t.strictSame(parsed, {
    kind: 'result',
    tokens,
    finalAudioProcMs: 420,
    totalAudioProcMs: 640,
    finished: false,
  })
})

t.test('an empty result (silence)', async (t) => {
  t.strictSame(parse({ tokens: [], final_audio_proc_ms: 0, total_audio_proc_ms: 0 }), {
    kind: 'result',
    tokens: [],
    finalAudioProcMs: 0,
    totalAudioProcMs: 0,
    finished: false,
  })
})

t.test('the alternative audio_final_proc_ms / audio_total_proc_ms spelling', async (t) => {
  const parsed = parse({ tokens: [], audio_final_proc_ms: 1000, audio_total_proc_ms: 1200 })
  t.match(parsed, { kind: 'result', finalAudioProcMs: 1000, totalAudioProcMs: 1200 })
  const both = parse({ tokens: [], final_audio_proc_ms: 5, audio_final_proc_ms: 7, total_audio_proc_ms: 6, audio_total_proc_ms: 8 })
  t.match(both, { finalAudioProcMs: 5, totalAudioProcMs: 6 }, 'the API reference spelling wins')
  const none = parse({ tokens: [] })
  t.match(none, { kind: 'result', finalAudioProcMs: undefined, totalAudioProcMs: undefined })
  const wrongType = parse({ tokens: [], final_audio_proc_ms: '420' })
  t.match(wrongType, { kind: 'result', finalAudioProcMs: undefined }, 'a non-number counter is ignored')
})

t.test('markers and translation fields are kept as tokens', async (t) => {
  const parsed = parse({
    tokens: [
      { text: END_TOKEN, is_final: true },
      { text: FIN_TOKEN, is_final: true },
      { text: ' Hallo', is_final: true, translation_status: 'translation', language: 'de', source_language: 'en' },
    ],
  })
  t.equal(END_TOKEN, '<end>')
  t.equal(FIN_TOKEN, '<fin>')
  t.match(parsed, {
    kind: 'result',
    tokens: [{ text: '<end>' }, { text: '<fin>' }, { text: ' Hallo', translation_status: 'translation', source_language: 'en' }],
  })
})

t.test('finished', async (t) => {
  const parsed = parse({ tokens: [], final_audio_proc_ms: 2000, total_audio_proc_ms: 2000, finished: true })
  t.strictSame(parsed, { kind: 'result', tokens: [], finalAudioProcMs: 2000, totalAudioProcMs: 2000, finished: true })
  t.match(parse({ finished: true }), { kind: 'result', tokens: [], finished: true }, 'tokens may be absent')
  t.match(parse({ tokens: [], finished: 'true' }), { finished: false }, 'only the boolean true counts')
})

t.test('old error shape: error_code + error_message', async (t) => {
  t.strictSame(parse({ tokens: [], error_code: 503, error_message: 'Cannot continue request (code N). Please restart the request.' }), {
    kind: 'error',
    code: 503,
    type: undefined,
    message: 'Cannot continue request (code N). Please restart the request.',
    requestId: undefined,
  })
})

t.test('new error shape: error_type, request_id, more_info', async (t) => {
  t.strictSame(
    parse({
      tokens: [],
      error_code: 401,
      error_type: 'unauthenticated',
      error_message: 'Invalid API key.',
      more_info: 'https://soniox.com/docs/api-reference/errors#unauthenticated',
      request_id: 'req-123',
    }),
    { kind: 'error', code: 401, type: 'unauthenticated', message: 'Invalid API key.', requestId: 'req-123' },
  )
})

t.test('an error with only one of code/message is still an error', async (t) => {
  t.match(parse({ error_message: 'Request timeout.' }), { kind: 'error', code: 0, message: 'Request timeout.' })
  t.match(parse({ error_code: 408 }), { kind: 'error', code: 408, message: '' })
  t.match(parse({ error_code: 500, tokens: 'garbage' }), { kind: 'error', code: 500 }, 'an error wins over malformed tokens')
})

t.test('not JSON', async (t) => {
  for (const text of ['', 'hello', '{"tokens": [', '<html>502 Bad Gateway</html>']) {
    const parsed = parseSonioxMessage(text)
    t.type(parsed, Error, JSON.stringify(text))
    t.match((parsed as Error).message, /not JSON/)
  }
  const long = parseSonioxMessage('x'.repeat(1000))
  t.ok((long as Error).message.length < 200, 'the echoed text is cut short')
})

t.test('JSON that is not an object', async (t) => {
  for (const value of [null, 42, 'text', true, [], [{ tokens: [] }]]) {
    const parsed = parse(JSON.stringify(value))
    t.type(parsed, Error, JSON.stringify(value))
    t.match((parsed as Error).message, /not a JSON object/)
  }
})

t.test('tokens not an array', async (t) => {
  for (const tokens of [{}, 'a', 3, true]) {
    const parsed = parse({ tokens })
    t.type(parsed, Error, JSON.stringify(tokens))
    t.match((parsed as Error).message, /"tokens" is not an array/)
  }
})

t.test('a token without text', async (t) => {
  for (const token of [{ is_final: true }, { text: 5, is_final: true }, null, 'word', { text: null, is_final: false }]) {
    const parsed = parse({ tokens: [{ text: ' ok', is_final: true }, token] })
    t.type(parsed, Error, JSON.stringify(token))
    t.match((parsed as Error).message, /token has no text/)
  }
})

t.test('never throws', async (t) => {
  for (const text of ['{', '}', '[', 'null', '{"tokens":[null]}', '{"__proto__":{"x":1}}', '\u0000']) {
    t.doesNotThrow(() => parseSonioxMessage(text), JSON.stringify(text))
  }
})
