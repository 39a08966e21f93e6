/**
 * A strict, deterministic stand-in for the Soniox real-time speech-to-text WebSocket API.
 *
 * Integration tests and the benchmark point the call server at this instead of
 * `wss://stt-rt.soniox.com/transcribe-websocket`. It follows the published protocol
 * (see /work/shared/reference/soniox-realtime.md) strictly, so that a client mistake — a typo in
 * a start-message field, a control message Soniox does not know, audio after end-of-stream —
 * turns into the same JSON error + close that Soniox would send, and is also recorded in
 * `session.violations` so a test can assert on it directly.
 *
 * "Recognition" is a pure function of the audio bytes: the stream is cut into fixed windows,
 * each loud window becomes one word picked by hashing its bytes. That makes the transcript
 * predictable from the audio alone (`expectedTranscript`), independent of how the client chunked
 * the audio, while still behaving like Soniox on the wire (sub-word tokens, non-final then final,
 * `<end>`/`<fin>` markers, progress counters, `finished`).
 *
 * The same HTTP server answers Soniox's models API (`GET /v1/models`, Bearer key), which real
 * Soniox serves on the API host of the region (api.soniox.com for stt-rt.soniox.com). Its list
 * (`FAKE_SONIOX_MODELS`) is also what the WebSocket accepts as `model`: an unknown model, or an
 * async one, is refused with 400 `Invalid model specified.` as Soniox does.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** Behaviour knobs for the stand-in. Every field is optional; defaults mirror what tests expect. */
export interface FakeSonioxOptions {
  /** The only API key accepted (header or deprecated `api_key`). Default `'test-key'`. */
  apiKey?: string;
  /** Milliseconds of audio per recognition window (one word per loud window). Default 400. */
  wordMs?: number;
  /**
   * With endpoint detection on, force an `<end>` once this many words of the current utterance
   * have become final, even if no silence follows. Default 6.
   */
  maxWordsPerUtterance?: number;
  /** RMS, in signed 16-bit sample units, below which a window counts as silence. Default 200. */
  silenceThreshold?: number;
  /**
   * How long a connection may wait before sending its start message before it gets
   * 408 `Start request timeout`. Default 10000 ms; tests shorten it to observe the timeout.
   */
  startTimeoutMs?: number;
  /**
   * After the start message, how long the session may go without any audio or keepalive before
   * it is closed with 408 `Request timeout.` (Soniox documents closing sessions idle for more
   * than 20 s). Default 20000 ms; 0 disables the check.
   */
  idleTimeoutMs?: number;
  /**
   * The models Soniox knows: what `GET /v1/models` lists and what the start message's `model` may
   * name (an alias stands for its target). Default `FAKE_SONIOX_MODELS`.
   */
  models?: readonly FakeSonioxModel[];
  /** When set, `GET /v1/models` answers this instead of the list (an API that is down or refuses). */
  modelsApiError?: { status: number; body: string };
}

/**
 * One entry of Soniox's models list as `GET /v1/models` returns it, plus what only the stand-in
 * uses. The documented fields (soniox-js `SonioxModel`, Soniox's OpenAPI schema) are `id`,
 * `aliased_model_id` (null unless an alias), `name`, `transcription_mode` (`real_time` | `async`),
 * `context_version`, `languages` and the `supports_*` / translation fields the stand-in fills in.
 * The deprecation fields are NOT in Soniox's published schema: they are the shape this project
 * assumes Soniox will use to announce a retirement (src/soniox/models-api.ts reads them, and
 * tolerates their absence).
 */
export interface FakeSonioxModel {
  id: string;
  aliased_model_id: string | null;
  name: string;
  transcription_mode: 'real_time' | 'async';
  /** Assumed field: the model is being retired. */
  deprecated?: boolean;
  /** Assumed field: the day it stops working (YYYY-MM-DD). */
  retirement_date?: string;
  /** Assumed field: the model to move to. */
  replacement_model_id?: string;
  /**
   * Stand-in only, never listed: start-message fields this model refuses with 400 (as Soniox
   * refuses an option a model does not take). An alias uses its target's.
   */
  refusedOptions?: readonly string[];
}

/**
 * Soniox's real-time models as of the reference note (2026-12): v6 current; v5 being retired on
 * 2026-12-15 in favour of v6 (kept until then); v4 retired on 2026-06-30 and routed to v5, v3 an
 * old alias; `stt-rt-preview` the moving alias of the newest model. One async model, which the
 * WebSocket refuses.
 */
export const FAKE_SONIOX_MODELS: readonly FakeSonioxModel[] = Object.freeze([
  { id: 'stt-rt-v6', aliased_model_id: null, name: 'Speech-to-Text Real-time v6', transcription_mode: 'real_time' },
  {
    id: 'stt-rt-v5',
    aliased_model_id: null,
    name: 'Speech-to-Text Real-time v5',
    transcription_mode: 'real_time',
    deprecated: true,
    retirement_date: '2026-12-15',
    replacement_model_id: 'stt-rt-v6',
  },
  { id: 'stt-rt-v4', aliased_model_id: 'stt-rt-v5', name: 'Speech-to-Text Real-time v4', transcription_mode: 'real_time' },
  { id: 'stt-rt-v3', aliased_model_id: 'stt-rt-v5', name: 'Speech-to-Text Real-time v3', transcription_mode: 'real_time' },
  { id: 'stt-rt-preview', aliased_model_id: 'stt-rt-v6', name: 'Speech-to-Text Real-time Preview', transcription_mode: 'real_time' },
  { id: 'stt-async-v6', aliased_model_id: null, name: 'Speech-to-Text Async v6', transcription_mode: 'async' },
] satisfies FakeSonioxModel[]);

/** One request the stand-in's HTTP API received. */
export interface FakeSonioxApiRequest {
  method: string;
  /** Path and query as sent. */
  url: string;
  /** The Authorization header as sent, if any. */
  authorization: string | undefined;
}

/** One token as Soniox sends it. `<end>` / `<fin>` carry only `text` and `is_final`. */
export interface Token {
  text: string;
  start_ms?: number;
  end_ms?: number;
  confidence?: number;
  is_final: boolean;
  speaker?: string;
  language?: string;
}

/** An error the stand-in can send: the documented `error_code` / `error_type` / `error_message`. */
export interface FakeSonioxError {
  code: number;
  type: string;
  message: string;
}

/** Lifecycle of one connection as seen by the stand-in. */
export type FakeSonioxSessionState = 'awaiting-start' | 'streaming' | 'finished' | 'errored' | 'closed';

/** Everything the stand-in observed and sent on one WebSocket connection. */
export interface FakeSonioxSession {
  /** HTTP headers of the upgrade request (lower-cased names, as Node gives them). */
  readonly headers: IncomingHttpHeaders;
  /** The parsed start message, once a JSON object arrived as the first frame. */
  readonly startMessage: Record<string, unknown> | undefined;
  /** Every audio byte received after the start message, concatenated in arrival order. */
  readonly audio: Buffer;
  /** Number of non-empty binary (audio) frames received after the start message. */
  readonly binaryFrames: number;
  /** Parsed `keepalive` / `finalize` control messages, in arrival order. */
  readonly controlMessages: Record<string, unknown>[];
  /** Every JSON message the stand-in sent on this connection (results, `finished`, errors), in order. */
  readonly sent: Record<string, unknown>[];
  /** Every final token sent, in order, including `<end>` and `<fin>` markers. */
  readonly finalTokens: Token[];
  /** Final token texts joined exactly as sent (word tokens carry their leading space), markers excluded. */
  readonly transcript: string;
  /** Final text split at `<end>` / `<fin>` markers, trimmed, empty pieces dropped. */
  readonly utterances: string[];
  /** Protocol problems caused by the client. Each one Soniox would reject also produced its error + close. */
  readonly violations: string[];
  /** Deprecated-but-accepted usage, e.g. `'api_key in start message'`. */
  readonly deprecations: string[];
  /** Current lifecycle state; `'closed'` once the socket is gone, whoever closed it. */
  readonly state: FakeSonioxSessionState;
  /** The error message sent on this connection (protocol error, injected rejection, or `fail()`). */
  readonly error: FakeSonioxError | undefined;
  /** How the client ended the audio: a zero-length binary frame or an empty text frame. */
  readonly endOfAudio: 'binary' | 'text' | undefined;
  /** WebSocket close code observed by the server (1006 when the TCP connection just vanished). */
  readonly closeCode: number | undefined;
  /** Who ended the connection: the client, the stand-in (error/finished), or `drop()`. */
  readonly closeInitiator: 'client' | 'server' | 'drop' | undefined;
  /** Test hook: send the documented error JSON now and close (e.g. 503 mid-call). No-op once closing. */
  fail(code: number, type: string, message: string): void;
  /** Test hook: destroy the TCP connection without a close frame (network loss). */
  drop(): void;
  /**
   * Test hook: a half-open connection. The stand-in stops reading the socket and sends nothing
   * more, so pings go unanswered and audio piles up, but no FIN or RST reaches the client.
   * It is torn down (as a drop) when the client gives up or the stand-in closes.
   */
  freeze(): void;
  /** Number of keepalive control messages received. */
  readonly keepalives: number;
}

/** A running stand-in server. */
export interface FakeSoniox {
  /** `ws://127.0.0.1:<port>/transcribe-websocket` */
  readonly url: string;
  /** `http://127.0.0.1:<port>`: the same server's REST API (`GET /v1/models`). */
  readonly apiUrl: string;
  /** Every HTTP request that was not a WebSocket upgrade, in arrival order. */
  readonly apiRequests: FakeSonioxApiRequest[];
  /** All sessions, in connection order. */
  readonly sessions: FakeSonioxSession[];
  /**
   * Resolves when `count` sessions have reached state `'closed'`, with the first `count` closed
   * sessions in connection order. Rejects after `timeoutMs` (default 5000) with a summary of states.
   */
  waitForSessions(count: number, timeoutMs?: number): Promise<FakeSonioxSession[]>;
  /** The next `count` connections answer their start message with this error and close. */
  rejectNextSessions(count: number, error: FakeSonioxError): void;
  /** Terminates open connections and stops listening. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Deterministic "recognition"
// ---------------------------------------------------------------------------------------------

/**
 * The 64 words the stand-in can "hear". 64 so that 6 bits of a hash pick one uniformly. Mixed
 * lengths on purpose: words of 4+ letters are sent as two sub-word tokens, shorter ones as one,
 * so clients must concatenate token texts rather than assume one token per word.
 */
export const FAKE_SONIOX_VOCABULARY: readonly string[] = Object.freeze([
  'north', 'river', 'apple', 'stone', 'cloud', 'green', 'table', 'seven',
  'light', 'window', 'garden', 'yellow', 'silver', 'paper', 'orange', 'market',
  'pencil', 'rocket', 'button', 'forest', 'castle', 'bridge', 'summer', 'winter',
  'spring', 'autumn', 'doctor', 'engine', 'planet', 'island', 'mirror', 'basket',
  'candle', 'dragon', 'flower', 'guitar', 'hammer', 'jacket', 'kitten', 'ladder',
  'meadow', 'needle', 'ocean', 'pepper', 'rabbit', 'saddle', 'tunnel', 'violet',
  'wagon', 'zebra', 'tree', 'lake', 'sun', 'red', 'oak', 'sea',
  'cat', 'dog', 'map', 'box', 'ice', 'tea', 'owl', 'cup',
]);

const END_TOKEN = '<end>';
const FIN_TOKEN = '<fin>';

type ResolvedOptions = Required<Omit<FakeSonioxOptions, 'modelsApiError'>> & Pick<FakeSonioxOptions, 'modelsApiError'>;

/** Defaults in one place so the server and `expectedTranscript` cannot drift apart. */
function resolveOptions(options: FakeSonioxOptions | undefined): ResolvedOptions {
  return {
    apiKey: options?.apiKey ?? 'test-key',
    wordMs: options?.wordMs ?? 400,
    maxWordsPerUtterance: options?.maxWordsPerUtterance ?? 6,
    silenceThreshold: options?.silenceThreshold ?? 200,
    startTimeoutMs: options?.startTimeoutMs ?? 10_000,
    idleTimeoutMs: options?.idleTimeoutMs ?? 20_000,
    models: options?.models ?? FAKE_SONIOX_MODELS,
    modelsApiError: options?.modelsApiError,
  };
}

interface RecognizerConfig {
  /** False for formats other than pcm_s16le: audio is accepted and counted but yields no words. */
  recognizes: boolean;
  sampleRate: number;
  channels: number;
  wordMs: number;
  maxWordsPerUtterance: number;
  silenceThreshold: number;
  endpointDetection: boolean;
  speaker: string | undefined;
  language: string | undefined;
}

/** A recognised word: its audio span (in sample frames since session start) and its tokens. */
interface Word {
  startFrame: number;
  tokens: Token[];
}

/** Body of a result message, before it is serialised. */
interface ResultBody {
  tokens: Token[];
  final_audio_proc_ms: number;
  total_audio_proc_ms: number;
}

/**
 * The windowing/word state machine. Both the live session and `expectedTranscript` drive this
 * same class, which is what guarantees they agree.
 *
 * Windows are laid on the byte stream, not on frames as received, so chunking cannot change the
 * result. A window is `round(sampleRate * wordMs / 1000)` sample frames; a finalize consumes the
 * partial window too, so the grid restarts at the finalize point (like a real model that has
 * committed everything so far).
 */
class Recognizer {
  readonly finalTokens: Token[] = [];
  private readonly frameBytes: number;
  private readonly windowFrames: number;
  private pending: Buffer = Buffer.alloc(0);
  /** Frames already cut into windows (complete or, after finalize, partial). */
  private consumedFrames = 0;
  /** The newest word: sent as non-final until the next window (or a finalize) settles it. */
  private tentative: Word | undefined;
  /** Words finalised since the last `<end>`/`<fin>`, for the max-words endpoint rule. */
  private utteranceWords = 0;

  constructor(private readonly cfg: RecognizerConfig) {
    this.frameBytes = 2 * cfg.channels;
    this.windowFrames = Math.max(1, Math.round((cfg.sampleRate * cfg.wordMs) / 1000));
  }

  /** Feed audio; returns one result per window completed by it (possibly none). */
  addAudio(chunk: Buffer): ResultBody[] {
    if (!this.cfg.recognizes || chunk.length === 0) return [];
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const windowBytes = this.windowFrames * this.frameBytes;
    const results: ResultBody[] = [];
    while (this.pending.length >= windowBytes) {
      const bytes = this.pending.subarray(0, windowBytes);
      this.pending = this.pending.subarray(windowBytes);
      results.push(this.completeWindow(bytes));
    }
    return results;
  }

  /** `{"type":"finalize"}`: settle everything heard so far, then `<fin>`. */
  finalize(): ResultBody {
    const tokens = this.flush();
    const fin: Token = { text: FIN_TOKEN, is_final: true };
    tokens.push(fin);
    this.finalTokens.push(fin);
    // <fin> closes the utterance for the client, so the next silence must not add an empty <end>.
    this.utteranceWords = 0;
    return this.body(tokens);
  }

  /** End of audio: settle everything; `undefined` when there was nothing left to send. */
  finish(): ResultBody | undefined {
    const tokens = this.flush();
    return tokens.length > 0 ? this.body(tokens) : undefined;
  }

  /** Progress counters for the `finished` message. */
  progress(): { final_audio_proc_ms: number; total_audio_proc_ms: number } {
    const { final_audio_proc_ms, total_audio_proc_ms } = this.body([]);
    return { final_audio_proc_ms, total_audio_proc_ms };
  }

  private completeWindow(bytes: Buffer): ResultBody {
    const startFrame = this.consumedFrames;
    this.consumedFrames += this.windowFrames;
    const finals: Token[] = [];
    const word = this.recognize(bytes, startFrame, this.windowFrames);
    if (this.tentative) this.settle(this.tentative, finals);
    this.tentative = undefined;
    if (word) {
      this.tentative = word;
    } else if (this.cfg.endpointDetection && this.utteranceWords > 0) {
      // Silence right after speech: Soniox's endpoint fires once the speaker paused.
      this.pushEnd(finals);
    }
    const nonFinal = this.tentative ? this.tentative.tokens.map((t) => ({ ...t, is_final: false })) : [];
    return this.body([...finals, ...nonFinal]);
  }

  /** Makes the tentative word and any trailing partial window final (shared by finalize and finish). */
  private flush(): Token[] {
    const finals: Token[] = [];
    if (this.tentative) this.settle(this.tentative, finals);
    this.tentative = undefined;
    const partialFrames = Math.floor(this.pending.length / this.frameBytes);
    if (partialFrames > 0) {
      const bytes = this.pending.subarray(0, partialFrames * this.frameBytes);
      this.pending = this.pending.subarray(partialFrames * this.frameBytes);
      const startFrame = this.consumedFrames;
      this.consumedFrames += partialFrames;
      const word = this.recognize(bytes, startFrame, partialFrames);
      if (word) this.settle(word, finals);
    }
    return finals;
  }

  /** Appends the word's tokens as final; applies the max-words endpoint rule. */
  private settle(word: Word, out: Token[]): void {
    for (const token of word.tokens) {
      const final = { ...token, is_final: true };
      out.push(final);
      this.finalTokens.push(final);
    }
    this.utteranceWords += 1;
    if (this.cfg.endpointDetection && this.utteranceWords >= this.cfg.maxWordsPerUtterance) this.pushEnd(out);
  }

  private pushEnd(out: Token[]): void {
    const end: Token = { text: END_TOKEN, is_final: true };
    out.push(end);
    this.finalTokens.push(end);
    this.utteranceWords = 0;
  }

  /** One window -> one word, or undefined for silence. */
  private recognize(bytes: Buffer, startFrame: number, frames: number): Word | undefined {
    if (rms(bytes) < this.cfg.silenceThreshold) return undefined;
    const digest = createHash('sha1').update(bytes).digest();
    const text = FAKE_SONIOX_VOCABULARY[(digest[0] ?? 0) & 63] ?? 'north';
    // Deterministic but not constant, so clients that average or threshold confidence see variety.
    const confidence = Math.round((0.75 + ((digest[1] ?? 0) % 25) / 100) * 100) / 100;
    const startMs = this.ms(startFrame);
    const endMs = this.ms(startFrame + frames);
    const pieces = splitWord(text);
    const tokens: Token[] = [];
    let cursor = startMs;
    let lettersSoFar = 0;
    pieces.forEach((piece, index) => {
      lettersSoFar += piece.trimStart().length;
      // Sub-word timestamps split the window in proportion to letters; the last piece ends the window.
      const pieceEnd =
        index === pieces.length - 1 ? endMs : startMs + Math.round(((endMs - startMs) * lettersSoFar) / text.length);
      const token: Token = { text: piece, start_ms: cursor, end_ms: pieceEnd, confidence, is_final: false };
      if (this.cfg.speaker !== undefined) token.speaker = this.cfg.speaker;
      if (this.cfg.language !== undefined) token.language = this.cfg.language;
      tokens.push(token);
      cursor = pieceEnd;
    });
    return { startFrame, tokens };
  }

  private ms(frames: number): number {
    return Math.round((frames * 1000) / this.cfg.sampleRate);
  }

  private body(tokens: Token[]): ResultBody {
    const finalFrames = this.tentative ? this.tentative.startFrame : this.consumedFrames;
    return {
      tokens,
      final_audio_proc_ms: this.cfg.recognizes ? this.ms(finalFrames) : 0,
      total_audio_proc_ms: this.cfg.recognizes ? this.ms(this.consumedFrames) : 0,
    };
  }
}

/** " north" -> [" nor", "th"]: words of 4+ letters become two pieces, the first keeping the space. */
function splitWord(word: string): string[] {
  if (word.length < 4) return [` ${word}`];
  const cut = Math.ceil(word.length / 2);
  return [` ${word.slice(0, cut)}`, word.slice(cut)];
}

/** Root mean square of the complete little-endian s16 samples in `bytes` (all channels together). */
function rms(bytes: Buffer): number {
  const samples = Math.floor(bytes.length / 2);
  if (samples === 0) return 0;
  let sum = 0;
  for (let i = 0; i < samples; i++) {
    const s = bytes.readInt16LE(i * 2);
    sum += s * s;
  }
  return Math.sqrt(sum / samples);
}

function transcriptOf(tokens: readonly Token[]): string {
  return tokens
    .filter((t) => t.text !== END_TOKEN && t.text !== FIN_TOKEN)
    .map((t) => t.text)
    .join('');
}

function utterancesOf(tokens: readonly Token[]): string[] {
  const out: string[] = [];
  let current = '';
  for (const t of tokens) {
    if (t.text === END_TOKEN || t.text === FIN_TOKEN) {
      out.push(current);
      current = '';
    } else {
      current += t.text;
    }
  }
  out.push(current);
  return out.map((u) => u.trim()).filter((u) => u.length > 0);
}

/**
 * Pure reference: the transcript the stand-in produces for `audio` (pcm_s16le) when it is sent
 * in any chunking and ended with an empty frame, without finalize messages.
 *
 * Extra options beyond `FakeSonioxOptions`: `numChannels` (default 1) and
 * `enableEndpointDetection` (default true, as the project's start message sets it; it only
 * affects `utterances`, never `transcript`).
 */
export function expectedTranscript(
  audio: Buffer,
  sampleRate: number,
  options?: FakeSonioxOptions & { numChannels?: number; enableEndpointDetection?: boolean },
): { transcript: string; utterances: string[] } {
  const opts = resolveOptions(options);
  const recognizer = new Recognizer({
    recognizes: true,
    sampleRate,
    channels: options?.numChannels ?? 1,
    wordMs: opts.wordMs,
    maxWordsPerUtterance: opts.maxWordsPerUtterance,
    silenceThreshold: opts.silenceThreshold,
    endpointDetection: options?.enableEndpointDetection ?? true,
    speaker: undefined,
    language: undefined,
  });
  recognizer.addAudio(audio);
  recognizer.finish();
  return { transcript: transcriptOf(recognizer.finalTokens), utterances: utterancesOf(recognizer.finalTokens) };
}

// ---------------------------------------------------------------------------------------------
// Start-message validation
// ---------------------------------------------------------------------------------------------

/** A rejection: the documented error to send plus a precise note for `violations`. */
interface Problem {
  error: FakeSonioxError;
  violation: string;
}

const MSG = {
  malformedStart: 'Start request is malformed.',
  startNotText: 'Start request must be a text message.',
  invalidModel: 'Invalid model specified.',
  missingFormat:
    'Missing audio format. Specify a valid audio format (e.g. s16le, f32le, wav, ogg, flac...) or "auto" for auto format detection.',
  missingRate: 'Audio data sample rate must be specified for PCM formats',
  missingChannels: 'Audio data channels must be specified for PCM formats',
  hintsUnique: 'Language hints must be unique.',
  invalidHint: 'Invalid language hint.',
  refTooLong: 'Client reference ID is too long (max length 256)',
  contextTooLong: 'Context is too long (max length 10000).',
  invalidTarget: 'Invalid translation target language.',
  controlInvalidType: 'Control request invalid type.',
  controlMalformed: 'Control request is malformed.',
  missingKey: 'Missing API key.',
  invalidKey: 'Invalid API key.',
  startTimeout: 'Start request timeout',
  idleTimeout: 'Request timeout.',
} as const;

function badRequest(message: string, violation: string): Problem {
  return { error: { code: 400, type: 'invalid_request', message }, violation };
}

function malformed(violation: string): Problem {
  return badRequest(MSG.malformedStart, violation);
}

const START_FIELDS = new Set([
  'api_key',
  'model',
  'audio_format',
  'sample_rate',
  'num_channels',
  'language_hints',
  'language_hints_strict',
  'context',
  'enable_speaker_diarization',
  'enable_language_identification',
  'enable_endpoint_detection',
  'max_endpoint_delay_ms',
  'endpoint_sensitivity',
  'endpoint_latency_adjustment_level',
  'client_reference_id',
  'translation',
]);

/**
 * The real-time model `id` names in `models`, with its aliases followed; undefined for an unknown
 * or async model (the WebSocket refuses both as an invalid model).
 */
function resolveModel(models: readonly FakeSonioxModel[], id: string): FakeSonioxModel | undefined {
  let model = models.find((m) => m.id === id);
  for (let hops = 0; model?.aliased_model_id != null && hops < 8; hops++) {
    const target: string = model.aliased_model_id;
    model = models.find((m) => m.id === target);
  }
  return model?.transcription_mode === 'real_time' ? model : undefined;
}
const CONTAINER_FORMATS = new Set(['auto', 'aac', 'aiff', 'amr', 'asf', 'flac', 'mp3', 'ogg', 'wav', 'webm']);
/** Documented raw formats (need sample_rate + num_channels). */
const RAW_FORMATS = new Set<string>(['pcm_s8', 'pcm_u8', 'mulaw', 'alaw']);
for (const kind of ['s', 'u']) for (const bits of [8, 16, 24, 32]) for (const e of ['le', 'be']) RAW_FORMATS.add(`pcm_${kind}${bits}${e}`);
for (const bits of [32, 64]) for (const e of ['le', 'be']) RAW_FORMATS.add(`pcm_f${bits}${e}`);
/** Older short spellings (`s16le`), which Soniox's own error text still suggests; accepted, flagged. */
const SHORT_RAW_FORMATS = new Set([...RAW_FORMATS].filter((f) => f.startsWith('pcm_')).map((f) => f.slice(4)));
const LANGUAGE_CODE = /^[a-z]{2,3}(-[A-Za-z]{2,4})?$/;

const BOOLEAN_FIELDS = [
  'language_hints_strict',
  'enable_speaker_diarization',
  'enable_language_identification',
  'enable_endpoint_detection',
] as const;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isSet(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/** Checks shapes and JSON types: failures are what a strict deserialiser would call malformed. */
function checkStartShape(msg: Record<string, unknown>): Problem | undefined {
  for (const key of Object.keys(msg)) {
    if (!START_FIELDS.has(key)) return malformed(`unknown start message field "${key}"`);
  }
  for (const key of ['model', 'audio_format', 'client_reference_id'] as const) {
    if (isSet(msg[key]) && typeof msg[key] !== 'string') return malformed(`start message field "${key}" must be a string`);
  }
  for (const key of BOOLEAN_FIELDS) {
    if (isSet(msg[key]) && typeof msg[key] !== 'boolean') return malformed(`start message field "${key}" must be a boolean`);
  }
  const rate = msg.sample_rate;
  if (isSet(rate) && !(typeof rate === 'number' && Number.isInteger(rate) && rate > 0)) {
    return malformed(`sample_rate must be a positive integer, got ${JSON.stringify(rate)}`);
  }
  const channels = msg.num_channels;
  if (isSet(channels) && channels !== 1 && channels !== 2) {
    return malformed(`num_channels must be 1 or 2, got ${JSON.stringify(channels)}`);
  }
  const hints = msg.language_hints;
  if (isSet(hints) && !(Array.isArray(hints) && hints.every((h) => typeof h === 'string'))) {
    return malformed('language_hints must be an array of strings');
  }
  const delay = msg.max_endpoint_delay_ms;
  if (isSet(delay) && !(typeof delay === 'number' && delay >= 500 && delay <= 3000)) {
    return malformed(`max_endpoint_delay_ms must be a number in 500..3000, got ${JSON.stringify(delay)}`);
  }
  const sensitivity = msg.endpoint_sensitivity;
  if (isSet(sensitivity) && !(typeof sensitivity === 'number' && sensitivity >= -1 && sensitivity <= 1)) {
    return malformed(`endpoint_sensitivity must be a number in -1..1, got ${JSON.stringify(sensitivity)}`);
  }
  const level = msg.endpoint_latency_adjustment_level;
  if (isSet(level) && !(typeof level === 'number' && Number.isInteger(level) && level >= 0 && level <= 3)) {
    return malformed(`endpoint_latency_adjustment_level must be an integer in 0..3, got ${JSON.stringify(level)}`);
  }
  const contextProblem = checkContextShape(msg.context);
  if (contextProblem) return malformed(contextProblem);
  const translationProblem = checkTranslationShape(msg.translation);
  if (translationProblem) return malformed(translationProblem);
  return undefined;
}

function checkContextShape(context: unknown): string | undefined {
  // A plain string is the legacy (v1) context, still accepted for backward compatibility.
  if (!isSet(context) || typeof context === 'string') return undefined;
  if (!isPlainObject(context)) return 'context must be an object (or a legacy string)';
  const isPairList = (value: unknown, a: string, b: string): boolean =>
    Array.isArray(value) &&
    value.every(
      (item) =>
        isPlainObject(item) &&
        Object.keys(item).every((k) => k === a || k === b) &&
        typeof item[a] === 'string' &&
        typeof item[b] === 'string',
    );
  for (const [key, value] of Object.entries(context)) {
    if (!isSet(value)) continue;
    if (key === 'general' && !isPairList(value, 'key', 'value')) return 'context.general must be [{key, value}] strings';
    if (key === 'text' && typeof value !== 'string') return 'context.text must be a string';
    if (key === 'terms' && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
      return 'context.terms must be an array of strings';
    }
    if (key === 'translation_terms' && !isPairList(value, 'source', 'target')) {
      return 'context.translation_terms must be [{source, target}] strings';
    }
    if (!['general', 'text', 'terms', 'translation_terms'].includes(key)) return `unknown context field "${key}"`;
  }
  return undefined;
}

function checkTranslationShape(translation: unknown): string | undefined {
  if (!isSet(translation)) return undefined;
  if (!isPlainObject(translation)) return 'translation must be an object';
  const expected =
    translation.type === 'one_way'
      ? ['type', 'target_language']
      : translation.type === 'two_way'
        ? ['type', 'language_a', 'language_b']
        : undefined;
  if (!expected) return `translation.type must be "one_way" or "two_way", got ${JSON.stringify(translation.type)}`;
  for (const key of Object.keys(translation)) {
    if (!expected.includes(key)) return `unknown translation field "${key}" for type ${String(translation.type)}`;
  }
  for (const key of expected) {
    if (typeof translation[key] !== 'string') return `translation.${key} must be a string`;
  }
  return undefined;
}

/** Semantic checks, after authentication, in the order a client most likely trips over them. */
function checkStartValues(msg: Record<string, unknown>, models: readonly FakeSonioxModel[]): Problem | undefined {
  const model = msg.model;
  const known = typeof model === 'string' ? resolveModel(models, model) : undefined;
  if (typeof model !== 'string' || known === undefined) {
    return badRequest(MSG.invalidModel, `invalid model ${JSON.stringify(model)}`);
  }
  const format = msg.audio_format;
  if (typeof format !== 'string') return badRequest(MSG.missingFormat, 'audio_format missing');
  const raw = RAW_FORMATS.has(format) || SHORT_RAW_FORMATS.has(format);
  if (!raw && !CONTAINER_FORMATS.has(format)) {
    return badRequest(`Invalid audio data format: ${format}`, `unknown audio_format "${format}"`);
  }
  if (raw && !isSet(msg.sample_rate)) return badRequest(MSG.missingRate, `sample_rate missing for ${format}`);
  if (raw && !isSet(msg.num_channels)) return badRequest(MSG.missingChannels, `num_channels missing for ${format}`);
  const hints = msg.language_hints;
  if (Array.isArray(hints)) {
    if (new Set(hints).size !== hints.length) return badRequest(MSG.hintsUnique, 'language_hints contain duplicates');
    const bad = hints.find((h) => typeof h !== 'string' || !LANGUAGE_CODE.test(h));
    if (bad !== undefined) return badRequest(MSG.invalidHint, `invalid language hint ${JSON.stringify(bad)}`);
  }
  // A model refuses an option it does not take (e.g. the v5 endpoint knobs on models before v5);
  // null is fine (means "unset").
  const refused = known.refusedOptions?.find((f) => isSet(msg[f]));
  if (refused !== undefined) return malformed(`${refused} is not accepted by ${model === known.id ? model : `${model} (${known.id})`}`);
  const ref = msg.client_reference_id;
  if (typeof ref === 'string' && ref.length > 256) {
    return badRequest(MSG.refTooLong, `client_reference_id is ${ref.length} chars (max 256)`);
  }
  const context = msg.context;
  if (isSet(context)) {
    const size = typeof context === 'string' ? context.length : JSON.stringify(context).length;
    if (size > 10_000) return badRequest(MSG.contextTooLong, `context is ${size} chars (max 10000)`);
  }
  const translation = msg.translation;
  if (isPlainObject(translation)) {
    for (const key of ['target_language', 'language_a', 'language_b']) {
      const lang = translation[key];
      if (typeof lang === 'string' && !LANGUAGE_CODE.test(lang)) {
        return badRequest(MSG.invalidTarget, `invalid translation language ${JSON.stringify(lang)}`);
      }
    }
  }
  return undefined;
}

/** Extracts the key from `Authorization: Bearer <key>`; `null` when the header is present but unusable. */
function bearerKey(headers: IncomingHttpHeaders): string | undefined | null {
  const header = headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match?.[1] ?? null;
}

// ---------------------------------------------------------------------------------------------
// Sessions and server
// ---------------------------------------------------------------------------------------------

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

class Session implements FakeSonioxSession {
  startMessage: Record<string, unknown> | undefined;
  binaryFrames = 0;
  readonly controlMessages: Record<string, unknown>[] = [];
  readonly sent: Record<string, unknown>[] = [];
  readonly violations: string[] = [];
  readonly deprecations: string[] = [];
  state: FakeSonioxSessionState = 'awaiting-start';
  error: FakeSonioxError | undefined;
  endOfAudio: 'binary' | 'text' | undefined;
  closeCode: number | undefined;
  closeInitiator: 'client' | 'server' | 'drop' | undefined;

  private readonly audioChunks: Buffer[] = [];
  private audioCache: Buffer | undefined;
  private recognizer: Recognizer | undefined;
  private startTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Duplex,
    readonly headers: IncomingHttpHeaders,
    private readonly opts: ResolvedOptions,
    private readonly injected: FakeSonioxError | undefined,
    onClosed: () => void,
  ) {
    ws.on('message', (data, isBinary) => this.onMessage(toBuffer(data), isBinary));
    // Malformed frames (bad UTF-8, bad opcodes) make `ws` close the socket itself; record why.
    ws.on('error', (err) => this.violations.push(`WebSocket protocol error: ${err.message}`));
    ws.on('close', (code) => {
      this.clearTimers();
      this.closeCode = code;
      this.closeInitiator ??= 'client';
      this.state = 'closed';
      onClosed();
    });
    this.startTimer = setTimeout(() => {
      this.violations.push(`no start message within ${opts.startTimeoutMs} ms`);
      this.sendError({ code: 408, type: 'request_timeout', message: MSG.startTimeout });
    }, opts.startTimeoutMs);
  }

  get audio(): Buffer {
    this.audioCache ??= Buffer.concat(this.audioChunks);
    return this.audioCache;
  }

  get finalTokens(): Token[] {
    return this.recognizer ? [...this.recognizer.finalTokens] : [];
  }

  get transcript(): string {
    return transcriptOf(this.finalTokens);
  }

  get utterances(): string[] {
    return utterancesOf(this.finalTokens);
  }

  fail(code: number, type: string, message: string): void {
    if (this.state === 'closed' || this.closeInitiator !== undefined) return;
    this.sendError({ code, type, message });
  }

  drop(): void {
    if (this.state === 'closed') return;
    this.closeInitiator = 'drop';
    this.ws.terminate();
  }

  freeze(): void {
    if (this.state === 'closed') return;
    this.closeInitiator = 'drop';
    this.clearTimers();
    // Not reading means ws never sees the client's pings, so it never answers them; the kernel
    // still accepts bytes until the windows fill, exactly like a peer that vanished silently.
    this.socket.pause();
    this.ws.removeAllListeners('message');
    this.send = () => {};
  }

  get keepalives(): number {
    return this.controlMessages.filter((m) => m.type === 'keepalive').length;
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    switch (this.state) {
      case 'awaiting-start':
        this.onStart(data, isBinary);
        return;
      case 'streaming':
        this.onStreaming(data, isBinary);
        return;
      case 'finished':
        // The client itself said the audio was over; nothing may follow.
        this.violations.push(`${isBinary ? 'binary' : 'text'} frame (${data.length} bytes) after end of audio`);
        return;
      default:
        // After an error the server has already closed; frames still in flight are not the client's fault.
        return;
    }
  }

  private onStart(data: Buffer, isBinary: boolean): void {
    clearTimeout(this.startTimer);
    this.startTimer = undefined;
    const problem = this.acceptStart(data, isBinary);
    if (problem) this.violations.push(problem.violation);
    if (this.injected) {
      this.sendError(this.injected);
      return;
    }
    if (problem) {
      this.sendError(problem.error);
      return;
    }
    const msg = this.startMessage ?? {};
    const format = msg.audio_format as string;
    if (SHORT_RAW_FORMATS.has(format)) this.deprecations.push(`audio_format "${format}" (documented name is pcm_${format})`);
    const hints = Array.isArray(msg.language_hints) ? (msg.language_hints as string[]) : [];
    this.recognizer = new Recognizer({
      recognizes: format === 'pcm_s16le',
      sampleRate: typeof msg.sample_rate === 'number' ? msg.sample_rate : 16000,
      channels: typeof msg.num_channels === 'number' ? msg.num_channels : 1,
      wordMs: this.opts.wordMs,
      maxWordsPerUtterance: this.opts.maxWordsPerUtterance,
      silenceThreshold: this.opts.silenceThreshold,
      endpointDetection: msg.enable_endpoint_detection === true,
      speaker: msg.enable_speaker_diarization === true ? '1' : undefined,
      language: msg.enable_language_identification === true ? (hints[0] ?? 'en') : undefined,
    });
    this.state = 'streaming';
    this.touch();
  }

  /** Parses and validates the first frame; records the start message and auth deprecations. */
  private acceptStart(data: Buffer, isBinary: boolean): Problem | undefined {
    if (isBinary) return badRequest(MSG.startNotText, `first frame was binary (${data.length} bytes), not a text start message`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString('utf8'));
    } catch {
      return malformed('start message is not valid JSON');
    }
    if (!isPlainObject(parsed)) return malformed('start message is not a JSON object');
    this.startMessage = parsed;

    const apiKey = parsed.api_key;
    if (isSet(apiKey) && typeof apiKey !== 'string') return malformed('api_key must be a string');
    if (typeof apiKey === 'string') this.deprecations.push('api_key in start message');
    const fromHeader = bearerKey(this.headers);
    if (fromHeader === null) {
      return { error: unauthenticated(MSG.invalidKey), violation: 'Authorization header is not "Bearer <key>"' };
    }
    // The key sent with the connection is the connection's key; api_key only counts without one.
    const key = fromHeader ?? (typeof apiKey === 'string' ? apiKey : undefined);
    if (key === undefined) {
      return { error: unauthenticated(MSG.missingKey), violation: 'no API key (Authorization header or api_key)' };
    }
    if (key !== this.opts.apiKey) return { error: unauthenticated(MSG.invalidKey), violation: 'wrong API key' };
    if (fromHeader !== undefined && typeof apiKey === 'string' && apiKey !== fromHeader) {
      // Undocumented combination: accepted (header wins) but almost certainly a client bug.
      this.violations.push('api_key in start message differs from the Authorization header key');
    }
    return checkStartShape(parsed) ?? checkStartValues(parsed, this.opts.models);
  }

  private onStreaming(data: Buffer, isBinary: boolean): void {
    const recognizer = this.recognizer;
    if (!recognizer) return;
    if (data.length === 0) {
      this.endOfAudio = isBinary ? 'binary' : 'text';
      this.finish(recognizer);
      return;
    }
    if (isBinary) {
      this.touch();
      this.binaryFrames += 1;
      this.audioChunks.push(Buffer.from(data));
      this.audioCache = undefined;
      for (const result of recognizer.addAudio(data)) this.send({ ...result });
      return;
    }
    const text = data.toString('utf8');
    let control: unknown;
    try {
      control = JSON.parse(text);
    } catch {
      control = undefined;
    }
    const problem = checkControl(control, text);
    if (problem) {
      this.violations.push(problem.violation);
      this.sendError(problem.error);
      return;
    }
    const message = control as Record<string, unknown>;
    this.controlMessages.push(message);
    this.touch();
    if (message.type === 'finalize') this.send({ ...recognizer.finalize() });
    // keepalive: Soniox documents no answer; it only resets the idle timer (done above).
  }

  private finish(recognizer: Recognizer): void {
    const rest = recognizer.finish();
    if (rest) this.send({ ...rest });
    this.send({ tokens: [], ...recognizer.progress(), finished: true });
    this.state = 'finished';
    this.clearTimers();
    this.closeInitiator = 'server';
    this.ws.close(1000);
  }

  /** Restarts the "no audio or keepalive" timer. */
  private touch(): void {
    if (this.opts.idleTimeoutMs <= 0) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.violations.push(`no audio or keepalive for ${this.opts.idleTimeoutMs} ms`);
      this.sendError({ code: 408, type: 'request_timeout', message: MSG.idleTimeout });
    }, this.opts.idleTimeoutMs);
  }

  private sendError(error: FakeSonioxError): void {
    this.error = error;
    this.state = 'errored';
    this.clearTimers();
    this.send({
      tokens: [],
      error_code: error.code,
      error_type: error.type,
      error_message: error.message,
      request_id: randomUUID(),
    });
    this.closeInitiator = 'server';
    // Close code 1000 on purpose: Soniox's close codes are undocumented, so a client must detect
    // errors from the JSON frame; a non-1000 code here would let a sloppy client pass by accident.
    this.ws.close(1000);
  }

  private send = (message: Record<string, unknown>): void => {
    this.sent.push(message);
    this.ws.send(JSON.stringify(message));
  }

  private clearTimers(): void {
    clearTimeout(this.startTimer);
    clearTimeout(this.idleTimer);
    this.startTimer = undefined;
    this.idleTimer = undefined;
  }
}

function unauthenticated(message: string): FakeSonioxError {
  return { code: 401, type: 'unauthenticated', message };
}

/** Control frames must be exactly `{"type":"keepalive"}` or `{"type":"finalize"[, "trailing_silence_ms": n]}`. */
function checkControl(control: unknown, text: string): Problem | undefined {
  const preview = text.length > 80 ? `${text.slice(0, 80)}...` : text;
  if (!isPlainObject(control)) return badRequest(MSG.controlMalformed, `control message is not a JSON object: ${preview}`);
  const type = control.type;
  if (typeof type !== 'string') return badRequest(MSG.controlMalformed, `control message without a string "type": ${preview}`);
  if (type !== 'keepalive' && type !== 'finalize') {
    return badRequest(MSG.controlInvalidType, `unknown control message type "${type}"`);
  }
  const allowed = type === 'finalize' ? ['type', 'trailing_silence_ms'] : ['type'];
  const extra = Object.keys(control).find((k) => !allowed.includes(k));
  if (extra !== undefined) return badRequest(MSG.controlMalformed, `unexpected field "${extra}" in ${type} message`);
  const trailing = control.trailing_silence_ms;
  if (isSet(trailing) && !(typeof trailing === 'number' && Number.isFinite(trailing) && trailing >= 0)) {
    return badRequest(MSG.controlMalformed, `trailing_silence_ms must be a non-negative number, got ${JSON.stringify(trailing)}`);
  }
  return undefined;
}

/**
 * Soniox's REST answers for the models API: `GET /v1/models` with the Bearer key. Error bodies
 * follow Soniox's REST error shape (`status_code`, `error_type`, `message`, `request_id`).
 */
function answerApi(req: IncomingMessage, res: ServerResponse, opts: ResolvedOptions): void {
  const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const error = (status: number, type: string, message: string, headers?: Record<string, string>): void =>
    json(status, { status_code: status, error_type: type, message, validation_errors: [], request_id: randomUUID() }, headers);
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/v1/models') return error(404, 'not_found', 'Not found.');
  if (req.method !== 'GET') return error(405, 'method_not_allowed', 'Method not allowed.', { allow: 'GET' });
  const key = bearerKey(req.headers);
  if (key === undefined) return error(401, 'unauthenticated', MSG.missingKey);
  if (key !== opts.apiKey) return error(401, 'unauthenticated', MSG.invalidKey);
  if (opts.modelsApiError !== undefined) {
    res.writeHead(opts.modelsApiError.status, { 'content-type': 'application/json' });
    res.end(opts.modelsApiError.body);
    return;
  }
  json(200, { models: opts.models.map(listedModel) });
}

/** A model as `GET /v1/models` lists it: the documented fields, the assumed deprecation fields, no stand-in internals. */
function listedModel(model: FakeSonioxModel): Record<string, unknown> {
  const { refusedOptions, ...listed } = model;
  const refuses = (option: string): boolean => refusedOptions?.includes(option) ?? false;
  return {
    ...listed,
    context_version: 2,
    languages: [
      { code: 'en', name: 'English' },
      { code: 'es', name: 'Spanish' },
      { code: 'de', name: 'German' },
    ],
    supports_language_hints_strict: !refuses('language_hints_strict'),
    supports_max_endpoint_delay: !refuses('max_endpoint_delay_ms'),
    supports_endpoint_sensitivity: !refuses('endpoint_sensitivity'),
    supports_endpoint_latency_adjustment: !refuses('endpoint_latency_adjustment_level'),
    endpoint_latency_adjustment_max_level: refuses('endpoint_latency_adjustment_level') ? 0 : 3,
    translation_targets: [],
    two_way_translation_pairs: [],
    one_way_translation: 'all_languages',
    two_way_translation: 'all_languages',
  };
}

class Server implements FakeSoniox {
  readonly sessions: Session[] = [];
  readonly apiRequests: FakeSonioxApiRequest[] = [];
  private readonly rejections: FakeSonioxError[] = [];
  private waiters: Array<() => void> = [];

  constructor(
    private readonly http: HttpServer,
    private readonly wss: WebSocketServer,
    readonly url: string,
    readonly apiUrl: string,
    opts: ResolvedOptions,
  ) {
    http.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.apiRequests.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
      req.resume();
      req.on('end', () => answerApi(req, res, opts));
    });
    wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
      const session = new Session(ws, req.socket, req.headers, opts, this.rejections.shift(), () => this.notify());
      this.sessions.push(session);
    });
  }

  waitForSessions(count: number, timeoutMs = 5000): Promise<FakeSonioxSession[]> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const closed = this.sessions.filter((s) => s.state === 'closed');
        if (closed.length < count) return false;
        resolve(closed.slice(0, count));
        return true;
      };
      if (check()) return;
      const waiter = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const states = this.sessions.map((s, i) => `#${i}:${s.state}`).join(', ') || 'no sessions';
        reject(new Error(`fake Soniox: ${count} closed session(s) not reached within ${timeoutMs} ms (${states})`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  rejectNextSessions(count: number, error: FakeSonioxError): void {
    for (let i = 0; i < count; i++) this.rejections.push({ ...error });
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve, reject) => this.wss.close((err) => (err ? reject(err) : resolve())));
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeAllConnections();
    await closed;
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** Starts the stand-in on 127.0.0.1 with an ephemeral port; resolves once it is listening. */
export async function startFakeSoniox(options?: FakeSonioxOptions): Promise<FakeSoniox> {
  const opts = resolveOptions(options);
  // One HTTP server for both, so the models API is found from the WebSocket URL alone.
  const http = createServer();
  // Soniox accepts every upgrade and only judges the key once the start message arrives, so no
  // verifyClient here; the `path` option still rejects other URLs like the real endpoint would.
  const wss = new WebSocketServer({ server: http, path: '/transcribe-websocket' });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = http.address() as AddressInfo;
  return new Server(http, wss, `ws://127.0.0.1:${port}/transcribe-websocket`, `http://127.0.0.1:${port}`, opts);
}
