/**
 * Self-test of the Soniox stand-in, driven by a plain `ws` client, so that integration tests
 * built on it can trust both its wire behaviour and `expectedTranscript()`.
 */
import t, { type Test } from 'tap';
import { WebSocket } from 'ws';
import {
  FAKE_SONIOX_MODELS,
  FAKE_SONIOX_VOCABULARY,
  expectedTranscript,
  startFakeSoniox,
  type FakeSoniox,
  type FakeSonioxOptions,
  type Token,
} from '../support/fake-soniox.js';

type Msg = Record<string, unknown>;

const KEY = 'test-key';
const RATE = 8000;

/** The start message the project is meant to send (reference section 2.3). */
const START = {
  model: 'stt-rt-v6',
  audio_format: 'pcm_s16le',
  sample_rate: RATE,
  num_channels: 1,
  language_hints: ['en'],
  enable_endpoint_detection: true,
  max_endpoint_delay_ms: 2000,
  client_reference_id: 'call-1',
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

type Segment = { tone: number; ms: number } | { silence: number };

/**
 * Builds s16le PCM from tone bursts and silences. Phase runs on the global sample index so every
 * window of a burst has different bytes (and so, usually, a different word).
 */
function pcm(segments: Segment[], sampleRate = RATE, channels = 1): Buffer {
  const parts: Buffer[] = [];
  let index = 0;
  for (const seg of segments) {
    const ms = 'tone' in seg ? seg.ms : seg.silence;
    const frames = Math.round((sampleRate * ms) / 1000);
    const buf = Buffer.alloc(frames * 2 * channels);
    for (let f = 0; f < frames; f++, index++) {
      const value = 'tone' in seg ? Math.round(8000 * Math.sin((2 * Math.PI * seg.tone * index) / sampleRate)) : 0;
      for (let c = 0; c < channels; c++) buf.writeInt16LE(value, (f * channels + c) * 2);
    }
    parts.push(buf);
  }
  return Buffer.concat(parts);
}

interface TestClient {
  ws: WebSocket;
  messages: Msg[];
  binaryFromServer: number;
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves with the first received message (past or future) matching `pred`; rejects if the socket closes first. */
  waitFor(pred: (m: Msg) => boolean): Promise<Msg>;
  sendJson(value: unknown): void;
  sendAudio(audio: Buffer, chunkBytes: number): number;
}

async function connect(url: string, key: string | null = KEY): Promise<TestClient> {
  const ws = new WebSocket(url, key === null ? {} : { headers: { Authorization: `Bearer ${key}` } });
  const messages: Msg[] = [];
  const waiters: Array<{ pred: (m: Msg) => boolean; resolve: (m: Msg) => void; reject: (e: Error) => void }> = [];
  const client: TestClient = {
    ws,
    messages,
    binaryFromServer: 0,
    closed: new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        for (const w of waiters.splice(0)) w.reject(new Error(`socket closed (${code}) before the awaited message`));
        resolve({ code, reason: reason.toString() });
      });
    }),
    waitFor(pred) {
      const found = messages.find(pred);
      if (found) return Promise.resolve(found);
      if (ws.readyState === WebSocket.CLOSED) return Promise.reject(new Error('socket already closed'));
      return new Promise((resolve, reject) => waiters.push({ pred, resolve, reject }));
    },
    sendJson(value) {
      ws.send(JSON.stringify(value));
    },
    sendAudio(audio, chunkBytes) {
      let frames = 0;
      for (let offset = 0; offset < audio.length; offset += chunkBytes) {
        ws.send(audio.subarray(offset, offset + chunkBytes));
        frames++;
      }
      return frames;
    },
  };
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      client.binaryFromServer++;
      return;
    }
    const m = JSON.parse(data.toString()) as Msg;
    messages.push(m);
    for (const w of [...waiters]) {
      if (w.pred(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return client;
}

async function fake(t: Test, options?: FakeSonioxOptions): Promise<FakeSoniox> {
  const server = await startFakeSoniox(options);
  t.teardown(() => server.close());
  return server;
}

function tokensOf(m: Msg): Token[] {
  return (m.tokens as Token[] | undefined) ?? [];
}

const isMarker = (tok: Token): boolean => tok.text === '<end>' || tok.text === '<fin>';

/** How a client is supposed to assemble text: append-only finals, markers removed. */
function clientTranscript(messages: Msg[]): string {
  return messages
    .flatMap(tokensOf)
    .filter((tok) => tok.is_final && !isMarker(tok))
    .map((tok) => tok.text)
    .join('');
}

/** Runs one complete session: start, audio in `chunkBytes` frames, empty binary frame, until close. */
async function runSession(
  server: FakeSoniox,
  audio: Buffer,
  chunkBytes: number,
  start: Msg = START,
): Promise<{ client: TestClient; close: { code: number; reason: string } }> {
  const client = await connect(server.url);
  client.sendJson(start);
  client.sendAudio(audio, chunkBytes);
  client.ws.send(Buffer.alloc(0));
  const close = await client.closed;
  return { client, close };
}

/** The exact error frame shape Soniox sends, then the close. */
async function expectError(
  t: Test,
  client: TestClient,
  code: number,
  type: string,
  message: string,
): Promise<void> {
  const close = await client.closed;
  const last = client.messages.at(-1);
  t.ok(last, 'an error message arrived before the close');
  t.same(Object.keys(last ?? {}).sort(), ['error_code', 'error_message', 'error_type', 'request_id', 'tokens']);
  t.match(last, { tokens: [], error_code: code, error_type: type, error_message: message });
  t.type(last?.request_id, 'string');
  t.ok(String(last?.request_id).length > 0, 'request_id is not empty');
  t.equal(close.code, 1000, 'server closes right after the error');
}

// ---------------------------------------------------------------------------------------------
// Pure reference
// ---------------------------------------------------------------------------------------------

t.test('vocabulary and expectedTranscript basics', async (t) => {
  t.equal(FAKE_SONIOX_VOCABULARY.length, 64);
  t.equal(new Set(FAKE_SONIOX_VOCABULARY).size, 64, 'words are unique');
  t.ok(FAKE_SONIOX_VOCABULARY.every((w) => /^[a-z]+$/.test(w)), 'plain lower-case words');
  t.ok(FAKE_SONIOX_VOCABULARY.some((w) => w.length < 4), 'some words stay a single token');

  t.same(expectedTranscript(pcm([{ silence: 2000 }]), RATE), { transcript: '', utterances: [] }, 'silence -> nothing');

  // 500 Hz at 8 kHz repeats exactly every 400 ms window, so both windows carry identical bytes.
  const repeated = expectedTranscript(pcm([{ tone: 500, ms: 800 }]), RATE);
  const [a, b] = repeated.transcript.trim().split(' ');
  t.ok(a && FAKE_SONIOX_VOCABULARY.includes(a), 'word comes from the vocabulary');
  t.equal(a, b, 'identical window bytes -> identical word');

  const one = expectedTranscript(pcm([{ tone: 437, ms: 400 }]), RATE).transcript;
  const other = expectedTranscript(pcm([{ tone: 611, ms: 400 }]), RATE).transcript;
  t.not(one, other, 'different audio -> different word');
  t.match(one, /^ [a-z]+$/, 'transcript keeps the leading space of the word tokens');

  // A loud partial window at the end still becomes a word; a silent one does not.
  t.equal(expectedTranscript(pcm([{ tone: 437, ms: 500 }]), RATE).transcript.trim().split(' ').length, 2);
  t.equal(expectedTranscript(pcm([{ tone: 437, ms: 400 }, { silence: 100 }]), RATE).transcript, one);
});

// ---------------------------------------------------------------------------------------------
// Happy path
// ---------------------------------------------------------------------------------------------

t.test('valid pcm_s16le 8 kHz session streams like Soniox', async (t) => {
  const server = await fake(t);
  // Windows (400 ms): T T T S S T T S -> utterances of 3 and 2 words.
  const audio = pcm([{ tone: 437, ms: 1200 }, { silence: 800 }, { tone: 611, ms: 800 }, { silence: 400 }]);
  const { client, close } = await runSession(server, audio, 320);
  const { messages } = client;

  t.equal(close.code, 1000, 'normal close after finished');
  t.equal(client.binaryFromServer, 0, 'server only sends text frames');
  t.equal(messages.length, 9, 'one result per window plus the finished message');

  messages.slice(0, 8).forEach((m, i) => {
    t.equal(m.total_audio_proc_ms, (i + 1) * 400, `window ${i}: total_audio_proc_ms`);
    t.type(m.final_audio_proc_ms, 'number');
    t.ok((m.final_audio_proc_ms as number) <= (m.total_audio_proc_ms as number), 'final <= total');
    t.notOk('finished' in m, 'only the last message carries finished');
  });
  t.same(messages[8], { tokens: [], final_audio_proc_ms: 3200, total_audio_proc_ms: 3200, finished: true });
  const finals = messages.map((m) => m.final_audio_proc_ms as number);
  t.same(finals, [...finals].sort((x, y) => x - y), 'final_audio_proc_ms never goes back');

  // <end>: exactly after each utterance, in the silence window that follows speech, with no extra fields.
  const endAt = messages.flatMap((m, i) => (tokensOf(m).some((tok) => tok.text === '<end>') ? [i] : []));
  t.same(endAt, [3, 7], '<end> in the first silence window after each burst');
  for (const i of endAt) {
    const toks = tokensOf(messages[i] ?? {});
    t.same(toks.at(-1), { text: '<end>', is_final: true }, '<end> closes the message and has no timestamps');
  }

  // Every word token: first seen non-final, then exactly once final, never again.
  const history = new Map<string, boolean[]>();
  for (const m of messages) {
    for (const tok of tokensOf(m)) {
      if (isMarker(tok)) continue;
      const key = `${tok.start_ms}|${tok.text}`;
      history.set(key, [...(history.get(key) ?? []), tok.is_final]);
      t.type(tok.end_ms, 'number');
      t.ok((tok.confidence ?? -1) >= 0 && (tok.confidence ?? 2) <= 1, 'confidence in 0..1');
    }
  }
  t.ok(history.size > 0);
  for (const [key, seq] of history) t.same(seq, [false, true], `token ${key} goes non-final -> final`);

  // Within a message, finals come before non-finals.
  for (const m of messages) {
    const flags = tokensOf(m).map((tok) => tok.is_final);
    t.same(flags, [...flags].sort((x, y) => Number(y) - Number(x)), 'finals precede non-finals');
  }

  // Sub-words: pieces of one word share a window; the first carries the space.
  const finalWordTokens = messages.flatMap(tokensOf).filter((tok) => tok.is_final && !isMarker(tok));
  const words = clientTranscript(messages).trim().split(' ');
  t.equal(words.length, 5);
  t.ok(words.every((w) => FAKE_SONIOX_VOCABULARY.includes(w)), 'all words from the vocabulary');
  t.equal(finalWordTokens.length, words.reduce((n, w) => n + (w.length >= 4 ? 2 : 1), 0), '4+ letter words are split in 2');
  for (const tok of finalWordTokens) {
    const startsWord = tok.text.startsWith(' ');
    t.ok(startsWord || finalWordTokens.some((o) => o.end_ms === tok.start_ms && o.text.startsWith(' ')), `piece "${tok.text}" follows its word start`);
  }

  // The client sees its close before the server's socket is gone; wait for the server side.
  const [session] = await server.waitForSessions(1);
  t.ok(session);
  if (!session) return;
  t.equal(session.state, 'closed');
  t.equal(session.closeInitiator, 'server');
  t.equal(session.endOfAudio, 'binary');
  t.same(session.violations, []);
  t.same(session.deprecations, []);
  t.equal(session.headers.authorization, `Bearer ${KEY}`);
  t.same(session.startMessage, START);
  t.ok(session.audio.equals(audio), 'every audio byte recorded');
  t.equal(session.binaryFrames, audio.length / 320);
  t.same(session.sent, messages, 'sent mirrors what the client received');
  t.equal(session.transcript, clientTranscript(messages));
  t.equal(session.utterances.length, 2);
  t.same(session.utterances.map((u) => u.split(' ').length), [3, 2]);
  t.same(expectedTranscript(audio, RATE), { transcript: session.transcript, utterances: session.utterances });
  t.equal(server.sessions[0], session, 'sessions lists it in connection order');
});

t.test('expectedTranscript matches the session for any chunking', async (t) => {
  const server = await fake(t);
  // Ends in a 300 ms loud partial window, which must still come out (final) at end of audio.
  const audio = pcm([{ tone: 437, ms: 1000 }, { silence: 400 }, { tone: 733, ms: 700 }]);
  const expected = expectedTranscript(audio, RATE);
  t.ok(expected.transcript.length > 0);
  // Sizes that split windows, samples (odd sizes) and everything-at-once.
  const sizes = [audio.length, 320, 1001, 7];
  const runs = await Promise.all(sizes.map((size) => runSession(server, audio, size)));
  runs.forEach(({ client, close }, i) => {
    t.equal(close.code, 1000);
    t.equal(clientTranscript(client.messages), expected.transcript, `chunk ${sizes[i]}: client view`);
  });
  const sessions = await server.waitForSessions(sizes.length);
  for (const s of sessions) {
    t.same({ transcript: s.transcript, utterances: s.utterances }, expected, 'session agrees with the reference');
    t.same(s.violations, []);
  }
  const lastWord = sessions[0]?.finalTokens.filter((tok) => !isMarker(tok)).at(-1);
  t.equal(lastWord?.end_ms, 2100, 'the trailing partial window became a final word');

  // Stereo 16 kHz: the window covers both channels.
  const stereo = pcm([{ tone: 437, ms: 800 }, { silence: 400 }, { tone: 611, ms: 400 }], 16000, 2);
  const { client } = await runSession(server, stereo, 2000, { ...START, sample_rate: 16000, num_channels: 2 });
  const stereoExpected = expectedTranscript(stereo, 16000, { numChannels: 2 });
  t.equal(stereoExpected.transcript.trim().split(' ').length, 3);
  t.equal(clientTranscript(client.messages), stereoExpected.transcript);
});

t.test('endpoint detection: forced <end> after maxWordsPerUtterance, none when disabled', async (t) => {
  const server = await fake(t, { maxWordsPerUtterance: 3 });
  const speech = pcm([{ tone: 437, ms: 3200 }]); // 8 words, no silence at all
  const { client } = await runSession(server, speech, 1600);
  const ends = client.messages.flatMap(tokensOf).filter((tok) => tok.text === '<end>');
  t.equal(ends.length, 2, '<end> after words 3 and 6');
  const [session] = await server.waitForSessions(1);
  t.same(session?.utterances.map((u) => u.split(' ').length), [3, 3, 2]);
  t.same(expectedTranscript(speech, RATE, { maxWordsPerUtterance: 3 }).utterances, session?.utterances);

  const bursts = pcm([{ tone: 437, ms: 800 }, { silence: 800 }, { tone: 611, ms: 800 }, { silence: 400 }]);
  const off = await runSession(server, bursts, 320, { ...START, enable_endpoint_detection: false });
  t.notOk(off.client.messages.flatMap(tokensOf).some(isMarker), 'no <end> without endpoint detection');
  const sessions = await server.waitForSessions(2);
  t.equal(sessions[1]?.utterances.length, 1);
  t.same(expectedTranscript(bursts, RATE, { maxWordsPerUtterance: 3, enableEndpointDetection: false }), {
    transcript: sessions[1]?.transcript,
    utterances: sessions[1]?.utterances,
  });
});

t.test('finalize makes everything final and ends with <fin>; keepalive gets no answer', async (t) => {
  const server = await fake(t);
  const client = await connect(server.url);
  client.sendJson(START);
  const first = pcm([{ tone: 437, ms: 1000 }]);
  client.sendAudio(first.subarray(0, 12800), 320); // two complete 400 ms windows (6400 bytes each)
  await client.waitFor((m) => m.total_audio_proc_ms === 800);
  client.sendJson({ type: 'keepalive' });
  client.sendAudio(first.subarray(12800), 320); // 200 ms partial window: no result on its own
  client.sendJson({ type: 'finalize', trailing_silence_ms: 200 });
  const fin = await client.waitFor((m) => tokensOf(m).some((tok) => tok.text === '<fin>'));

  t.equal(client.messages.length, 3, 'keepalive and the partial chunk produced no message');
  const toks = tokensOf(fin);
  t.ok(toks.every((tok) => tok.is_final), 'nothing stays non-final after finalize');
  t.same(toks.at(-1), { text: '<fin>', is_final: true });
  t.ok(toks.some((tok) => tok.start_ms === 400 && tok.text.startsWith(' ')), 'pending word finalised');
  t.ok(toks.some((tok) => tok.start_ms === 800 && tok.text.startsWith(' ')), 'partial window finalised as a word');
  t.equal(toks.filter((tok) => !isMarker(tok)).at(-1)?.end_ms, 1000);
  t.equal(fin.final_audio_proc_ms, 1000);
  t.equal(fin.total_audio_proc_ms, 1000);

  client.sendAudio(pcm([{ silence: 400 }, { tone: 611, ms: 400 }]), 800);
  client.ws.send(''); // end of audio as an empty text frame, like SDK-JS
  const close = await client.closed;
  t.equal(close.code, 1000);
  t.equal(client.messages.at(-1)?.finished, true);
  const [session] = await server.waitForSessions(1);
  t.ok(session);
  if (!session) return;
  t.equal(session.endOfAudio, 'text');
  t.same(session.controlMessages, [{ type: 'keepalive' }, { type: 'finalize', trailing_silence_ms: 200 }]);
  t.same(session.utterances.map((u) => u.split(' ').length), [3, 1], '<fin> splits utterances');
  t.equal(session.transcript, clientTranscript(client.messages));
  t.same(session.violations, []);
});

// ---------------------------------------------------------------------------------------------
// Rejections
// ---------------------------------------------------------------------------------------------

interface Rejection {
  name: string;
  key?: string | null;
  start: Msg | string | Buffer;
  code: number;
  type: string;
  message: string;
  violation: RegExp;
}

const MALFORMED = 'Start request is malformed.';
const rejections: Rejection[] = [
  { name: 'missing key', key: null, start: START, code: 401, type: 'unauthenticated', message: 'Missing API key.', violation: /no API key/ },
  { name: 'wrong header key', key: 'nope', start: START, code: 401, type: 'unauthenticated', message: 'Invalid API key.', violation: /wrong API key/ },
  { name: 'wrong api_key', key: null, start: { ...START, api_key: 'nope' }, code: 401, type: 'unauthenticated', message: 'Invalid API key.', violation: /wrong API key/ },
  { name: 'unknown model', start: { ...START, model: 'stt-rt-v9' }, code: 400, type: 'invalid_request', message: 'Invalid model specified.', violation: /invalid model "stt-rt-v9"/ },
  { name: 'async model', start: { ...START, model: 'stt-async-v6' }, code: 400, type: 'invalid_request', message: 'Invalid model specified.', violation: /invalid model "stt-async-v6"/ },
  { name: 'retired model no longer listed', start: { ...START, model: 'stt-rt-v2' }, code: 400, type: 'invalid_request', message: 'Invalid model specified.', violation: /invalid model/ },
  {
    name: 'missing audio_format',
    start: { ...START, audio_format: undefined },
    code: 400,
    type: 'invalid_request',
    message: 'Missing audio format. Specify a valid audio format (e.g. s16le, f32le, wav, ogg, flac...) or "auto" for auto format detection.',
    violation: /audio_format missing/,
  },
  { name: 'unknown audio_format', start: { ...START, audio_format: 'avi' }, code: 400, type: 'invalid_request', message: 'Invalid audio data format: avi', violation: /avi/ },
  { name: 'missing sample_rate', start: { ...START, sample_rate: undefined }, code: 400, type: 'invalid_request', message: 'Audio data sample rate must be specified for PCM formats', violation: /sample_rate missing/ },
  { name: 'missing num_channels', start: { ...START, num_channels: null }, code: 400, type: 'invalid_request', message: 'Audio data channels must be specified for PCM formats', violation: /num_channels missing/ },
  { name: 'obsolete field', start: { ...START, enable_non_final_tokens: true }, code: 400, type: 'invalid_request', message: MALFORMED, violation: /"enable_non_final_tokens"/ },
  { name: 'typo field', start: { ...START, sample_rate_hertz: 8000 }, code: 400, type: 'invalid_request', message: MALFORMED, violation: /"sample_rate_hertz"/ },
  { name: 'latency level out of range', start: { ...START, endpoint_latency_adjustment_level: 4 }, code: 400, type: 'invalid_request', message: MALFORMED, violation: /0\.\.3/ },
  { name: 'endpoint delay out of range', start: { ...START, max_endpoint_delay_ms: 100 }, code: 400, type: 'invalid_request', message: MALFORMED, violation: /500\.\.3000/ },
  { name: 'non-boolean flag', start: { ...START, enable_endpoint_detection: 'yes' }, code: 400, type: 'invalid_request', message: MALFORMED, violation: /boolean/ },
  { name: 'non-integer sample_rate', start: { ...START, sample_rate: '8000' }, code: 400, type: 'invalid_request', message: MALFORMED, violation: /positive integer/ },
  { name: 'duplicate hints', start: { ...START, language_hints: ['en', 'en'] }, code: 400, type: 'invalid_request', message: 'Language hints must be unique.', violation: /duplicates/ },
  { name: 'invalid hint', start: { ...START, language_hints: ['english'] }, code: 400, type: 'invalid_request', message: 'Invalid language hint.', violation: /english/ },
  { name: 'long client_reference_id', start: { ...START, client_reference_id: 'x'.repeat(257) }, code: 400, type: 'invalid_request', message: 'Client reference ID is too long (max length 256)', violation: /257/ },
  { name: 'long context', start: { ...START, context: { text: 'x'.repeat(10_000) } }, code: 400, type: 'invalid_request', message: 'Context is too long (max length 10000).', violation: /max 10000/ },
  { name: 'bad translation', start: { ...START, translation: { type: 'one_way', language_a: 'en' } }, code: 400, type: 'invalid_request', message: MALFORMED, violation: /translation field "language_a"/ },
  { name: 'binary start', start: Buffer.from(JSON.stringify(START)), code: 400, type: 'invalid_request', message: 'Start request must be a text message.', violation: /binary/ },
  { name: 'non-JSON start', start: 'hello', code: 400, type: 'invalid_request', message: MALFORMED, violation: /not valid JSON/ },
  { name: 'array start', start: JSON.stringify([START]), code: 400, type: 'invalid_request', message: MALFORMED, violation: /not a JSON object/ },
];

t.test('start-message rejections send the documented error and close', async (t) => {
  const server = await fake(t);
  for (const r of rejections) {
    await t.test(r.name, async (t) => {
      const before = server.sessions.length;
      const client = await connect(server.url, r.key === undefined ? KEY : r.key);
      if (Buffer.isBuffer(r.start)) client.ws.send(r.start);
      else client.ws.send(typeof r.start === 'string' ? r.start : JSON.stringify(r.start));
      await expectError(t, client, r.code, r.type, r.message);
      t.equal(client.messages.length, 1, 'nothing but the error');
      const session = server.sessions[before];
      await server.waitForSessions(before + 1);
      t.equal(session?.state, 'closed');
      t.same(session?.error, { code: r.code, type: r.type, message: r.message });
      t.equal(session?.violations.length, 1);
      t.match(session?.violations[0], r.violation);
    });
  }
});

t.test('documented optional fields, nulls and endpoint knobs are accepted', async (t) => {
  const server = await fake(t);
  const starts: Msg[] = [
    { ...START, endpoint_sensitivity: 0.3, endpoint_latency_adjustment_level: 2 },
    { ...START, model: 'stt-rt-v5', endpoint_sensitivity: -0.2, endpoint_latency_adjustment_level: 1 },
    { ...START, model: 'stt-rt-preview' },
    // PIPECAT-style: every unset optional field sent as null, on v4 (retired, routed to v5).
    {
      ...START,
      model: 'stt-rt-v4',
      language_hints: null,
      language_hints_strict: null,
      context: null,
      enable_speaker_diarization: null,
      enable_language_identification: null,
      endpoint_sensitivity: null,
      endpoint_latency_adjustment_level: null,
      client_reference_id: null,
      translation: null,
    },
    {
      ...START,
      model: 'stt-rt-v3',
      language_hints_strict: true,
      context: { general: [{ key: 'domain', value: 'telephony' }], text: 'call', terms: ['Asterisk'], translation_terms: [{ source: 'a', target: 'b' }] },
      translation: { type: 'two_way', language_a: 'en', language_b: 'es' },
      enable_speaker_diarization: true,
      enable_language_identification: true,
    },
    { ...START, context: 'legacy plain-string context' },
  ];
  const audio = pcm([{ tone: 437, ms: 400 }]);
  for (const start of starts) {
    const { client, close } = await runSession(server, audio, 800, start);
    t.equal(close.code, 1000);
    t.equal(client.messages.at(-1)?.finished, true, `accepted: ${JSON.stringify(start).slice(0, 60)}`);
  }
  const sessions = await server.waitForSessions(starts.length);
  t.ok(sessions.every((s) => s.violations.length === 0 && s.error === undefined));
  const annotated = sessions[4]?.finalTokens.find((tok) => !isMarker(tok));
  t.equal(annotated?.speaker, '1', 'diarization adds speaker');
  t.equal(annotated?.language, 'en', 'language identification adds language');
});

t.test('bad control messages are rejected', async (t) => {
  const server = await fake(t);
  const cases: Array<{ name: string; frame: string; message: string; violation: RegExp }> = [
    { name: 'close type', frame: '{"type":"close"}', message: 'Control request invalid type.', violation: /"close"/ },
    { name: 'Deepgram CloseStream', frame: '{"type":"CloseStream"}', message: 'Control request invalid type.', violation: /CloseStream/ },
    { name: 'not JSON', frame: 'hello', message: 'Control request is malformed.', violation: /not a JSON object/ },
    { name: 'start message re-sent', frame: JSON.stringify(START), message: 'Control request is malformed.', violation: /without a string "type"/ },
    { name: 'string trailing_silence_ms', frame: '{"type":"finalize","trailing_silence_ms":"300"}', message: 'Control request is malformed.', violation: /trailing_silence_ms/ },
    { name: 'extra keepalive field', frame: '{"type":"keepalive","now":1}', message: 'Control request is malformed.', violation: /"now"/ },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const before = server.sessions.length;
      const client = await connect(server.url);
      client.sendJson(START);
      client.sendAudio(pcm([{ tone: 437, ms: 400 }]), 6400);
      await client.waitFor((m) => m.total_audio_proc_ms === 400);
      client.ws.send(c.frame);
      await expectError(t, client, 400, 'invalid_request', c.message);
      await server.waitForSessions(before + 1);
      t.match(server.sessions[before]?.violations, [c.violation]);
    });
  }
});

t.test('start timeout and idle timeout', async (t) => {
  const server = await fake(t, { startTimeoutMs: 50, idleTimeoutMs: 100 });
  const silent = await connect(server.url);
  await expectError(t, silent, 408, 'request_timeout', 'Start request timeout');
  t.match(server.sessions[0]?.violations, [/no start message/]);

  const idle = await connect(server.url);
  idle.sendJson(START);
  await expectError(t, idle, 408, 'request_timeout', 'Request timeout.');
  t.match(server.sessions[1]?.violations, [/no audio or keepalive/]);
});

// ---------------------------------------------------------------------------------------------
// Authentication variants and test hooks
// ---------------------------------------------------------------------------------------------

t.test('deprecated api_key in the start message is accepted and recorded', async (t) => {
  const server = await fake(t);
  const client = await connect(server.url, null);
  client.sendJson({ ...START, api_key: KEY });
  client.sendAudio(pcm([{ tone: 437, ms: 800 }]), 800);
  client.ws.send(Buffer.alloc(0));
  await client.closed;
  t.equal(client.messages.at(-1)?.finished, true);
  const [session] = await server.waitForSessions(1);
  t.same(session?.deprecations, ['api_key in start message']);
  t.same(session?.violations, []);
  t.equal(session?.headers.authorization, undefined);
  t.equal(session?.transcript.trim().split(' ').length, 2);
});

t.test('rejectNextSessions rejects exactly the next N connections', async (t) => {
  const server = await fake(t);
  const error = { code: 503, type: 'service_unavailable', message: 'Cannot continue request (code 7). Please restart the request.' };
  server.rejectNextSessions(2, error);
  for (let i = 0; i < 2; i++) {
    const client = await connect(server.url);
    client.sendJson(START);
    await expectError(t, client, 503, 'service_unavailable', error.message);
  }
  const { client } = await runSession(server, pcm([{ tone: 437, ms: 400 }]), 800);
  t.equal(client.messages.at(-1)?.finished, true, 'third connection works');
  const sessions = await server.waitForSessions(3);
  t.same(sessions.map((s) => s.error?.code), [503, 503, undefined]);
  t.ok(sessions.every((s) => s.violations.length === 0), 'an injected rejection is not a client violation');
  t.same(sessions[0]?.startMessage, START, 'start message still recorded');
});

t.test('fail() sends the error mid-stream and closes', async (t) => {
  const server = await fake(t);
  const client = await connect(server.url);
  client.sendJson(START);
  client.sendAudio(pcm([{ tone: 437, ms: 800 }]), 320);
  await client.waitFor((m) => m.total_audio_proc_ms === 800);
  const session = server.sessions[0];
  session?.fail(503, 'service_unavailable', 'Cannot continue request (code 3). Please restart the request.');
  await expectError(t, client, 503, 'service_unavailable', 'Cannot continue request (code 3). Please restart the request.');
  t.equal(client.messages.length, 3, 'two results, then the error');
  await server.waitForSessions(1);
  t.equal(session?.state, 'closed');
  t.equal(session?.closeInitiator, 'server');
  t.same(session?.violations, []);
  session?.fail(500, 'internal_error', 'late'); // no-op once closed
  t.equal(session?.error?.code, 503);
});

t.test('drop() cuts the TCP connection without a close frame', async (t) => {
  const server = await fake(t);
  const client = await connect(server.url);
  client.sendJson(START);
  client.sendAudio(pcm([{ tone: 437, ms: 400 }]), 320);
  await client.waitFor((m) => m.total_audio_proc_ms === 400);
  server.sessions[0]?.drop();
  const close = await client.closed;
  t.equal(close.code, 1006, 'abnormal closure: no close frame');
  t.notOk(client.messages.some((m) => 'error_code' in m || 'finished' in m), 'no error or finished message');
  const [session] = await server.waitForSessions(1);
  t.equal(session?.closeInitiator, 'drop');
});

t.test('anything after end of audio is a violation', async (t) => {
  const server = await fake(t);
  const client = await connect(server.url);
  client.sendJson(START);
  client.sendAudio(pcm([{ tone: 437, ms: 400 }]), 800);
  client.ws.send(Buffer.alloc(0));
  client.sendJson({ type: 'keepalive' });
  await client.closed;
  t.equal(client.messages.at(-1)?.finished, true, 'the session still finished');
  const [session] = await server.waitForSessions(1);
  t.match(session?.violations, [/text frame .* after end of audio/]);
  t.same(session?.controlMessages, [], 'late keepalive not counted as a control message');
});

t.test('client closing mid-stream is recorded as a client close', async (t) => {
  const server = await fake(t);
  const client = await connect(server.url);
  client.sendJson(START);
  client.sendAudio(pcm([{ tone: 437, ms: 400 }]), 800);
  await client.waitFor((m) => m.total_audio_proc_ms === 400);
  client.ws.close(1000);
  await client.closed;
  const [session] = await server.waitForSessions(1);
  t.equal(session?.closeInitiator, 'client');
  t.equal(session?.closeCode, 1000);
  t.equal(session?.endOfAudio, undefined, 'no end-of-audio frame was sent');
});

t.test('server plumbing: wrong path refused, waitForSessions times out', async (t) => {
  const server = await fake(t);
  t.match(server.url, /^ws:\/\/127\.0\.0\.1:\d+\/transcribe-websocket$/);
  await t.rejects(connect(server.url.replace('/transcribe-websocket', '/other')), /Unexpected server response: 400/);
  await t.rejects(server.waitForSessions(1, 20), /1 closed session\(s\) not reached/);
});

t.test('a model that does not take an option refuses it (400), its aliases too; null still means unset', async (t) => {
  const models = [
    ...FAKE_SONIOX_MODELS,
    { id: 'stt-rt-old', aliased_model_id: null, name: 'Old', transcription_mode: 'real_time' as const, refusedOptions: ['endpoint_sensitivity', 'endpoint_latency_adjustment_level'] },
    { id: 'stt-rt-old-alias', aliased_model_id: 'stt-rt-old', name: 'Old alias', transcription_mode: 'real_time' as const },
  ];
  const server = await fake(t, { models });
  for (const [model, shown] of [['stt-rt-old', 'stt-rt-old'], ['stt-rt-old-alias', 'stt-rt-old-alias \\(stt-rt-old\\)']] as const) {
    const client = await connect(server.url);
    client.sendJson({ ...START, model, endpoint_sensitivity: 0.3 });
    await expectError(t, client, 400, 'invalid_request', MALFORMED);
    const session = server.sessions.at(-1);
    await server.waitForSessions(server.sessions.length);
    t.match(session?.violations[0], new RegExp(`endpoint_sensitivity is not accepted by ${shown}`));
  }
  const { client } = await runSession(server, pcm([{ tone: 437, ms: 400 }]), 800, { ...START, model: 'stt-rt-old', endpoint_sensitivity: null });
  t.equal(client.messages.at(-1)?.finished, true, 'sent as null: accepted');
  const { client: v6 } = await runSession(server, pcm([{ tone: 437, ms: 400 }]), 800, { ...START, endpoint_sensitivity: 0.3 });
  t.equal(v6.messages.at(-1)?.finished, true, 'another model takes it');
});

async function getModels(url: string, headers: Record<string, string> = { Authorization: `Bearer ${KEY}` }, method = 'GET'): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method, headers });
  return { status: res.status, body: await res.json() };
}

t.test('GET /v1/models on the WebSocket\'s server: the models list as Soniox sends it', async (t) => {
  const server = await fake(t);
  t.equal(server.apiUrl, server.url.replace(/^ws:/, 'http:').replace('/transcribe-websocket', ''));
  const { status, body } = await getModels(`${server.apiUrl}/v1/models`);
  t.equal(status, 200);
  t.same(body.models.map((m: Msg) => m.id), ['stt-rt-v6', 'stt-rt-v5', 'stt-rt-v4', 'stt-rt-v3', 'stt-rt-preview', 'stt-async-v6']);
  const byId = new Map<string, Msg>(body.models.map((m: Msg) => [m.id, m]));
  t.match(byId.get('stt-rt-v6'), {
    id: 'stt-rt-v6',
    aliased_model_id: null,
    name: String,
    context_version: 2,
    transcription_mode: 'real_time',
    languages: [{ code: 'en', name: 'English' }],
    supports_language_hints_strict: true,
    supports_max_endpoint_delay: true,
    translation_targets: [],
    two_way_translation_pairs: [],
  });
  t.notOk('deprecated' in (byId.get('stt-rt-v6') ?? {}), 'a current model carries no deprecation fields');
  t.match(byId.get('stt-rt-v5'), { aliased_model_id: null, deprecated: true, retirement_date: '2026-12-15', replacement_model_id: 'stt-rt-v6' });
  t.match(byId.get('stt-rt-preview'), { aliased_model_id: 'stt-rt-v6' });
  t.match(byId.get('stt-rt-v4'), { aliased_model_id: 'stt-rt-v5' });
  t.match(byId.get('stt-async-v6'), { transcription_mode: 'async' });
  t.ok(body.models.every((m: Msg) => !('refusedOptions' in m)), 'stand-in internals are not listed');
  t.same(server.apiRequests, [{ method: 'GET', url: '/v1/models', authorization: `Bearer ${KEY}` }]);

  const custom = await fake(t, { models: [{ id: 'stt-rt-x', aliased_model_id: null, name: 'X', transcription_mode: 'real_time', refusedOptions: ['endpoint_sensitivity'] }] });
  const customBody = (await getModels(`${custom.apiUrl}/v1/models?limit=10`)).body;
  t.match(customBody.models, [{ id: 'stt-rt-x', supports_endpoint_sensitivity: false, supports_endpoint_latency_adjustment: true }], 'a custom list, and a query string is ignored');
});

t.test('GET /v1/models: key, method and path errors as Soniox\'s REST errors; an injected failure', async (t) => {
  const server = await fake(t);
  const url = `${server.apiUrl}/v1/models`;
  const shape = { status_code: Number, error_type: String, message: String, request_id: String };
  const missing = await getModels(url, {});
  t.equal(missing.status, 401);
  t.match(missing.body, { ...shape, status_code: 401, error_type: 'unauthenticated', message: 'Missing API key.' });
  const wrong = await getModels(url, { Authorization: 'Bearer nope' });
  t.match(wrong, { status: 401, body: { error_type: 'unauthenticated', message: 'Invalid API key.' } });
  t.match(await getModels(url, undefined, 'POST'), { status: 405, body: { error_type: 'method_not_allowed' } });
  t.match(await getModels(`${server.apiUrl}/v1/transcriptions`), { status: 404, body: { error_type: 'not_found' } });

  const down = await fake(t, { modelsApiError: { status: 503, body: '{"status_code":503,"error_type":"service_unavailable","message":"Try again."}' } });
  t.match(await getModels(`${down.apiUrl}/v1/models`), { status: 503, body: { error_type: 'service_unavailable' } });
  t.match(await getModels(`${down.apiUrl}/v1/models`, {}), { status: 401 }, 'the key is still checked first');
});
