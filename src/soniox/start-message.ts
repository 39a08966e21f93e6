/**
 * The first (text) message of a Soniox real-time session. Only documented fields are sent, and
 * unset optional ones are omitted rather than sent as null: a model refuses a field it does not
 * take (e.g. the endpoint knobs on models before v5), and obsolete fields (enable_non_final_tokens)
 * are refused by a strict server. What is set is sent as it is: which model takes which option is
 * Soniox's to say (a 400), not a list kept here.
 * The API key is NOT here: it travels in the Authorization header (the start-message field is
 * deprecated and refused from 2027-01-15).
 */
import type { SonioxContext } from '../shared/soniox-context.js'

export interface RecognitionOptions {
  model: string
  languageHints: readonly string[]
  languageHintsStrict: boolean
  /** Validated by parseSonioxContext (shared/soniox-context.ts) wherever it enters. */
  context: SonioxContext | null
  endpointDetection: boolean
  maxEndpointDelayMs: number | null
  endpointSensitivity: number | null
  endpointLatencyAdjustmentLevel: number | null
  speakerDiarization: boolean
  languageIdentification: boolean
  translation: Readonly<{ type: 'one_way' | 'two_way'; target_language?: string; language_a?: string; language_b?: string }> | null
}

/**
 * How the call's audio is encoded. 16-bit linear PCM (what AudioSocket's slin kinds carry), or
 * G.711 as Asterisk sends it under kind 0x10 when the dialplan does not ask for slin: Soniox takes
 * `mulaw` and `alaw` as they are, so nothing is converted.
 */
export type AudioEncoding = 'pcm_s16le' | 'mulaw' | 'alaw'

export interface AudioFormat {
  sampleRate: number
  /** Default pcm_s16le. */
  encoding?: AudioEncoding
}

/** Bytes per sample of an encoding: 2 for 16-bit PCM, 1 for G.711. */
export function bytesPerSample(format: AudioFormat): number {
  return format.encoding === undefined || format.encoding === 'pcm_s16le' ? 2 : 1
}

/** Soniox limits client_reference_id to 256 characters; a call UUID is 36. */
const MAX_CLIENT_REFERENCE_ID = 256

export function buildStartMessage(options: RecognitionOptions, format: AudioFormat, clientReferenceId: string): Record<string, unknown> {
  const message: Record<string, unknown> = {
    model: options.model,
    audio_format: format.encoding ?? 'pcm_s16le',
    sample_rate: format.sampleRate,
    num_channels: 1,
    client_reference_id: clientReferenceId.slice(0, MAX_CLIENT_REFERENCE_ID),
  }
  if (options.languageHints.length > 0) message.language_hints = [...options.languageHints]
  if (options.languageHintsStrict) message.language_hints_strict = true
  if (options.context !== null) message.context = options.context
  message.enable_endpoint_detection = options.endpointDetection
  if (options.maxEndpointDelayMs !== null) message.max_endpoint_delay_ms = options.maxEndpointDelayMs
  if (options.endpointSensitivity !== null) message.endpoint_sensitivity = options.endpointSensitivity
  if (options.endpointLatencyAdjustmentLevel !== null) message.endpoint_latency_adjustment_level = options.endpointLatencyAdjustmentLevel
  if (options.speakerDiarization) message.enable_speaker_diarization = true
  if (options.languageIdentification) message.enable_language_identification = true
  if (options.translation !== null) message.translation = { ...options.translation }
  return message
}
