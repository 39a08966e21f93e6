/**
 * src/soniox/transcript-assembler.ts (pure): Soniox result messages -> utterances. Final tokens
 * append, non-final tokens are replaced by each message, `<end>`/`<fin>` close an utterance, and
 * text is the tokens joined exactly as sent.
 */
import t from 'tap'
import type { SonioxResult, SonioxToken } from '../../src/soniox/messages.js'
import { TranscriptAssembler, type Utterance } from '../../src/soniox/transcript-assembler.js'

/** A final token; `at` gives start_ms (and end_ms = at + 100 unless `end` says otherwise). */
function fin(text: string, extra: Partial<SonioxToken> & { at?: number; end?: number } = {}): SonioxToken {
  const { at, end, ...rest } = extra
  const token: SonioxToken = { text, is_final: true, ...rest }
  if (at !== undefined) {
    token.start_ms = at
    token.end_ms = end ?? at + 100
  }
  return token
}

function nonFinal(text: string, extra: Partial<SonioxToken> & { at?: number } = {}): SonioxToken {
  return { ...fin(text, extra), is_final: false }
}

const END = fin('<end>')
const FIN = fin('<fin>')

function result(...tokens: SonioxToken[]): SonioxResult {
  return { kind: 'result', tokens, finalAudioProcMs: undefined, totalAudioProcMs: undefined, finished: false }
}

t.test('sub-word tokens are joined exactly, with their own spaces', async (t) => {
  const a = new TranscriptAssembler()
  const closed = a.push(result(fin(' Hel', { at: 0 }), fin('lo', { at: 100 }), fin(','), fin(' wor', { at: 300 }), fin('ld', { at: 400 }), fin('.'), END))
  t.equal(closed.length, 1)
  t.equal(closed[0]?.text, ' Hello, world.', 'no spaces added or trimmed')
  t.strictSame(
    closed[0]?.tokens.map((tok) => tok.text),
    [' Hel', 'lo', ',', ' wor', 'ld', '.'],
  )
  t.equal(a.transcript, ' Hello, world.')
})

t.test('non-final tokens are replaced by each message and never part of an utterance', async (t) => {
  const a = new TranscriptAssembler()
  t.strictSame(a.push(result(nonFinal(' Hel', { at: 0 }))), [])
  t.equal(a.partial()?.text, ' Hel')
  t.strictSame(a.push(result(nonFinal(' Help', { at: 0 }), nonFinal(' me', { at: 200 }))), [])
  t.equal(a.partial()?.text, ' Help me', 'the newer message replaces the older provisional text')
  // Soniox changes its mind: the final text differs from the provisional one.
  a.push(result(fin(' Hel', { at: 0 }), fin('lo', { at: 100 }), nonFinal(' the', { at: 300 })))
  t.equal(a.partial()?.text, ' Hello the')
  const closed = a.push(result(fin(' there', { at: 300 }), END, nonFinal(' how', { at: 900 })))
  t.equal(closed.length, 1)
  t.equal(closed[0]?.text, ' Hello there', 'only final tokens')
  t.equal(a.transcript, ' Hello there', 'provisional tokens never reach the transcript')
  t.equal(a.partial()?.text, ' how', 'after the close, only the new provisional tail is open')
  t.strictSame(a.push(result()), [], 'an empty message clears the provisional tail')
  t.equal(a.partial(), undefined)
})

t.test('<end> closes with reason endpoint, <fin> with reason finalize', async (t) => {
  const a = new TranscriptAssembler()
  const [first] = a.push(result(fin(' one', { at: 0 }), END))
  const [second] = a.push(result(fin(' two', { at: 500 }), FIN))
  t.equal(first?.reason, 'endpoint')
  t.equal(second?.reason, 'finalize')
  t.equal(first?.index, 0)
  t.equal(second?.index, 1)
  t.equal(a.utteranceCount, 2)
})

t.test('<fin> with nothing open produces no utterance', async (t) => {
  const a = new TranscriptAssembler()
  t.strictSame(a.push(result(FIN)), [])
  t.strictSame(a.push(result(END)), [], 'nor does a lone <end>')
  t.equal(a.utteranceCount, 0)
  // Provisional text is not "open" text: <fin> after only non-finals closes nothing.
  t.strictSame(a.push(result(nonFinal(' maybe'))), [])
  t.strictSame(a.push(result(FIN)), [])
  t.equal(a.utteranceCount, 0)
  const [u] = a.push(result(fin(' real'), END))
  t.equal(u?.index, 0, 'the first real utterance still gets index 0')
})

t.test('<end> then <fin> back to back produce one utterance', async (t) => {
  const same = new TranscriptAssembler()
  const closed = same.push(result(fin(' hi', { at: 0 }), END, FIN))
  t.equal(closed.length, 1, 'in one message')
  t.equal(closed[0]?.reason, 'endpoint')

  const split = new TranscriptAssembler()
  t.equal(split.push(result(fin(' hi', { at: 0 }), FIN)).length, 1)
  t.equal(split.push(result(END)).length, 0, '<end> right after <fin>, in the next message')
  t.equal(split.utteranceCount, 1)
})

t.test('flush closes the remainder', async (t) => {
  const a = new TranscriptAssembler()
  a.push(result(fin(' first', { at: 0 }), END))
  a.push(result(fin(' second', { at: 700 }), fin(' half', { at: 800 }), nonFinal(' never', { at: 900 })))
  const last = a.flush('call_end')
  t.equal(last?.text, ' second half', 'final tokens only; the provisional tail is dropped')
  t.equal(last?.reason, 'call_end')
  t.equal(last?.index, 1)
  t.equal(a.flush(), undefined, 'nothing left to flush')
  t.equal(a.partial(), undefined, 'flush clears the provisional tail')

  const b = new TranscriptAssembler()
  b.push(result(fin(' x')))
  t.equal(b.flush()?.reason, 'call_end', 'call_end is the default reason')
  const c = new TranscriptAssembler()
  c.push(result(fin(' y')))
  t.equal(c.flush('finalize')?.reason, 'finalize', 'a reason can be given')
})

t.test('markers never appear in text, tokens or transcript', async (t) => {
  const a = new TranscriptAssembler()
  const all: Utterance[] = []
  all.push(...a.push(result(FIN, fin(' a', { at: 0 }), END, END, fin(' b', { at: 200 }), FIN, fin(' c', { at: 400 }))))
  all.push(...a.push(result(END)))
  t.equal(all.length, 3)
  for (const u of all) {
    t.notMatch(u.text, /<end>|<fin>/)
    t.notOk(u.tokens.some((tok) => tok.text === '<end>' || tok.text === '<fin>'))
  }
  t.equal(a.transcript, ' a b c')
})

t.test('the utterance texts concatenated are the transcript, byte for byte', async (t) => {
  const a = new TranscriptAssembler()
  const texts: string[] = []
  const feed = (...tokens: SonioxToken[]): void => {
    for (const u of a.push(result(...tokens))) texts.push(u.text)
  }
  feed(fin(' Good', { at: 0 }), fin(' mor', { at: 100 }), nonFinal('ning'))
  feed(fin('ning', { at: 200 }), fin('!'), END, nonFinal(' I'))
  feed(fin(' I', { at: 900 }), fin("'d"), fin(' like', { at: 1000 }), FIN)
  feed(FIN, fin(' Ünï', { at: 2000 }), fin('cödé 😀', { at: 2100 }), fin('  double  space '))
  const last = a.flush()
  if (last) texts.push(last.text)
  t.equal(texts.join(''), a.transcript)
  t.equal(a.transcript, " Good morning! I'd like Ünïcödé 😀  double  space ")
  t.equal(texts.length, a.utteranceCount)
})

t.test('start_ms / end_ms come from the first / last timed token', async (t) => {
  const a = new TranscriptAssembler()
  const [u] = a.push(result(fin(' '), fin(' Hel', { at: 120, end: 250 }), fin('lo', { at: 250, end: 400 }), fin('!'), END))
  t.equal(u?.start_ms, 120, 'an untimed leading token is skipped')
  t.equal(u?.end_ms, 400, 'an untimed trailing token is skipped')

  const b = new TranscriptAssembler()
  const [untimed] = b.push(result(fin(' no'), fin(' times'), END))
  t.equal(untimed?.start_ms, null)
  t.equal(untimed?.end_ms, null)
  t.equal(untimed?.confidence, null, 'no confidence either')

  const c = new TranscriptAssembler()
  const [zero] = c.push(result(fin(' at', { at: 0, end: 0 }), END))
  t.equal(zero?.start_ms, 0, '0 is a time, not "missing"')
  t.equal(zero?.end_ms, 0)
})

t.test('an utterance left open by one Soniox session is completed by the next one\'s tokens', async (t) => {
  // Reconnect: session 1 sent final tokens but no <end>; session 2 (its tokens already moved into
  // call time by ResilientTranscriber) sends the rest and the <end>. One utterance, not two.
  const a = new TranscriptAssembler()
  a.push(result(fin(' hel', { at: 100, end: 200 }), fin('lo', { at: 200, end: 300 })))
  const [u] = a.push(result(fin(' again', { at: 5000, end: 5100 }), END))
  t.equal(u?.text, ' hello again')
  t.equal(u?.start_ms, 100)
  t.equal(u?.end_ms, 5100)
  t.equal(a.utteranceCount, 1)
})

t.test('confidence is the mean of the tokens, rounded to 3 places', async (t) => {
  const a = new TranscriptAssembler()
  const [u] = a.push(result(fin(' a', { confidence: 0.9 }), fin(' b', { confidence: 0.8 }), fin(' c', { confidence: 0.75 }), END))
  t.equal(u?.confidence, 0.817, '(0.9 + 0.8 + 0.75) / 3 = 0.81666...')
  const [v] = a.push(result(fin(' a', { confidence: 0.1234 }), fin(' b'), fin(' c', { confidence: 0.5678 }), END))
  t.equal(v?.confidence, 0.346, 'tokens without confidence are left out of the mean')
  const [w] = a.push(result(fin(' sure', { confidence: 1 }), END))
  t.equal(w?.confidence, 1)
  t.strictSame(w?.tokens, [{ text: ' sure', confidence: 1 }], 'each token keeps its own confidence')
})

t.test('speaker and language are the most frequent among the tokens', async (t) => {
  const a = new TranscriptAssembler()
  const [u] = a.push(
    result(
      fin(' hola', { speaker: '1', language: 'es' }),
      fin(' hi', { speaker: '2', language: 'en' }),
      fin(' there', { speaker: '2', language: 'en' }),
      fin(' friend', { speaker: '2', language: 'en' }),
      fin('!'),
      END,
    ),
  )
  t.equal(u?.speaker, '2')
  t.equal(u?.language, 'en')
  t.match(u?.tokens[0], { speaker: '1', language: 'es' }, 'tokens keep their own labels')
  const [plain] = a.push(result(fin(' none'), END))
  t.notOk(plain && 'speaker' in plain, 'no speaker key without labels')
  t.notOk(plain && 'language' in plain, 'no language key without labels')
})

t.test('translation tokens go to `translation`, not to the text', async (t) => {
  const a = new TranscriptAssembler()
  a.push(result(nonFinal(' Hal', { translation_status: 'translation' }), nonFinal(' Hel', { translation_status: 'original', at: 0 })))
  t.equal(a.partial()?.text, ' Hel', 'provisional translation tokens are not partial text')
  const closed = a.push(
    result(
      fin(' Hel', { translation_status: 'original', language: 'en', at: 0 }),
      fin('lo', { translation_status: 'original', language: 'en', at: 100 }),
      fin(' Hal', { translation_status: 'translation', language: 'de', source_language: 'en' }),
      fin('lo', { translation_status: 'translation', language: 'de', source_language: 'en' }),
      END,
    ),
  )
  t.equal(closed.length, 1)
  const u = closed[0]
  t.equal(u?.text, ' Hello')
  t.equal(u?.translation, ' Hallo')
  t.equal(u?.language, 'en', 'the language is that of the spoken tokens')
  t.equal(u?.tokens.length, 2, 'translated tokens are not utterance tokens')
  t.equal(a.transcript, ' Hello', 'nor part of the transcript')
  const [plain] = a.push(result(fin(' bye', { at: 500 }), END))
  t.notOk(plain && 'translation' in plain, 'no translation key when none arrived')
})

t.test('partial() is the open finals plus the provisional tokens', async (t) => {
  const a = new TranscriptAssembler()
  t.equal(a.partial(), undefined, 'nothing yet')
  a.push(result(fin(' It', { at: 300 }), fin(' is', { at: 400 }), nonFinal(' rain', { at: 500 }), nonFinal('ing', { at: 600 })))
  t.strictSame(a.partial(), { text: ' It is raining', start_ms: 300 })
  a.push(result(fin(' rain', { at: 500 })))
  t.strictSame(a.partial(), { text: ' It is rain', start_ms: 300 }, 'no non-finals in the latest message')
  a.push(result(END, nonFinal(' and', { at: 1500 })))
  t.strictSame(a.partial(), { text: ' and', start_ms: 1500 }, 'the closed utterance is gone')
  a.push(result(nonFinal(' untimed')))
  t.strictSame(a.partial(), { text: ' untimed', start_ms: null })
})
