/**
 * Settings of the Soniox sessions (SONIOX_*): the account, the recognition options (which go into
 * each session's start message as they are) and the session's timing and recovery.
 */
import {
  attempts,
  endpointLatencyLevel,
  endpointSensitivity,
  languageList,
  maxEndpointDelayMs,
  nonNegativeMs,
  positiveMs,
  requiredSecret,
  sonioxContextFile,
  sonioxModel,
  strictBoolean,
  translation,
  websocketUrl,
} from './formats.js'
import { setting } from './setting.js'

export const sonioxSettings = {
  apiKey: setting(requiredSecret, { doc: 'Soniox API key (sent in the Authorization header).', default: '', env: 'SONIOX_API_KEY', sensitive: true }),
  websocketUrl: setting(websocketUrl, {
    doc: 'Soniox real-time WebSocket URL of the API key\'s region (EU: wss://stt-rt.eu.soniox.com/transcribe-websocket, JP: wss://stt-rt.jp.soniox.com/transcribe-websocket, India: wss://stt-rt.in.soniox.com/transcribe-websocket).',
    default: 'wss://stt-rt.soniox.com/transcribe-websocket',
    env: 'SONIOX_WEBSOCKET_URL',
  }),
  model: setting(sonioxModel, {
    doc: 'Soniox real-time model (`audiosocket-soniox check` asks Soniox whether it exists, is an alias or is deprecated).',
    default: 'stt-rt-v6',
    env: 'SONIOX_MODEL',
  }),
  languageHints: setting(languageList, { doc: 'Comma-separated language hints, e.g. "en,es".', default: [], env: 'SONIOX_LANGUAGE_HINTS' }),
  languageHintsStrict: setting(strictBoolean, { doc: 'Strongly bias recognition to the hinted languages.', default: false, env: 'SONIOX_LANGUAGE_HINTS_STRICT' }),
  /** Its value is the file's validated content; the loaded Config holds that as `context`. */
  contextFile: setting(sonioxContextFile, {
    doc: 'JSON file with a Soniox context object (general, text, terms, translation_terms).',
    default: null,
    env: 'SONIOX_CONTEXT_FILE',
  }),
  endpointDetection: setting(strictBoolean, { doc: 'Let Soniox detect the end of each utterance (<end> tokens).', default: true, env: 'SONIOX_ENDPOINT_DETECTION' }),
  maxEndpointDelayMs: setting(maxEndpointDelayMs, {
    doc: 'Upper bound between end of speech and endpoint, 500-3000 ms (Soniox default 2000).',
    default: null,
    env: 'SONIOX_MAX_ENDPOINT_DELAY_MS',
  }),
  endpointSensitivity: setting(endpointSensitivity, {
    doc: '-1.0 to 1.0, higher ends utterances sooner. Sent as set; a model that does not take it is refused by Soniox (400).',
    default: null,
    env: 'SONIOX_ENDPOINT_SENSITIVITY',
  }),
  endpointLatencyAdjustmentLevel: setting(endpointLatencyLevel, {
    doc: '0-3, higher lowers endpoint latency. Sent as set; a model that does not take it is refused by Soniox (400).',
    default: null,
    env: 'SONIOX_ENDPOINT_LATENCY_ADJUSTMENT_LEVEL',
  }),
  speakerDiarization: setting(strictBoolean, { doc: 'Label tokens with speakers.', default: false, env: 'SONIOX_SPEAKER_DIARIZATION' }),
  languageIdentification: setting(strictBoolean, { doc: 'Label tokens with their language.', default: false, env: 'SONIOX_LANGUAGE_IDENTIFICATION' }),
  translation: setting(translation, { doc: 'Translation: "one_way:<lang>" or "two_way:<lang>:<lang>".', default: null, env: 'SONIOX_TRANSLATION' }),
  connectTimeoutMs: setting(positiveMs, { doc: 'Bound on opening the Soniox WebSocket.', default: 10000, env: 'SONIOX_CONNECT_TIMEOUT_MS' }),
  finishTimeoutMs: setting(positiveMs, { doc: 'Bound on waiting for Soniox to send its last words after the call ends.', default: 10000, env: 'SONIOX_FINISH_TIMEOUT_MS' }),
  audioBatchMs: setting(nonNegativeMs, {
    // 60: over wss:// a message per 20 ms frame is a TLS record and a system call each; three frames
    // per message take the server from 1.07x to 0.93x a TLS relay's CPU at 100 calls for +40 ms p99
    // on a final word (bench/RESULTS.md, sessions 9 and 10). Soniox's own examples send 120 ms.
    doc: 'Send audio in messages of this many ms (0 = forward each frame as it arrives). A word reaches Soniox up to this much later; when the audio pauses, what is held goes out at most 20 ms past it.',
    default: 60,
    env: 'SONIOX_AUDIO_BATCH_MS',
  }),
  maxBufferedAudioMs: setting(positiveMs, {
    doc: 'Per call, audio kept until Soniox has finalized it (to resend after a failure) or while no session is up (reconnecting, 429); past it the oldest is dropped and counted in call.ended.',
    default: 30000,
    env: 'SONIOX_MAX_BUFFERED_AUDIO_MS',
  }),
  keepaliveMs: setting(positiveMs, {
    doc: 'Send a Soniox keepalive when no audio was sent for this long (Soniox closes idle sessions after 20 s).',
    default: 5000,
    env: 'SONIOX_KEEPALIVE_MS',
  }),
  pingIntervalMs: setting(positiveMs, { doc: 'WebSocket ping interval, to detect a half-open connection.', default: 5000, env: 'SONIOX_PING_INTERVAL_MS' }),
  pongTimeoutMs: setting(positiveMs, { doc: 'A ping unanswered this long fails the session, which is then replaced.', default: 5000, env: 'SONIOX_PONG_TIMEOUT_MS' }),
  maxSessionMs: setting(positiveMs, {
    doc: 'Continue in a new Soniox session after this much audio (Soniox ends sessions at 300 minutes).',
    default: 290 * 60 * 1000,
    env: 'SONIOX_MAX_SESSION_MS',
  }),
  reconnectMaxAttempts: setting(attempts, {
    doc: "Replacement sessions tried in one failure streak; the next failure ends the call's transcription.",
    default: 20,
    env: 'SONIOX_RECONNECT_MAX_ATTEMPTS',
  }),
  reconnectMaxMs: setting(positiveMs, {
    doc: 'Give up when no Soniox session has worked for this long since the first failure.',
    default: 300000,
    env: 'SONIOX_RECONNECT_MAX_MS',
  }),
  reconnectInitialDelayMs: setting(positiveMs, {
    doc: 'Delay before the second reconnection attempt (the first is immediate); doubles with jitter.',
    default: 500,
    env: 'SONIOX_RECONNECT_INITIAL_DELAY_MS',
  }),
  reconnectMaxDelayMs: setting(positiveMs, { doc: 'Cap on the delay between reconnection attempts.', default: 10000, env: 'SONIOX_RECONNECT_MAX_DELAY_MS' }),
}
