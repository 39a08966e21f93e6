/**
 * Inbound Soniox messages. Every server frame is JSON text with no type discriminator: a result
 * (`tokens` + progress), the last result (`finished: true`), or an error (`error_code`).
 */
import { AppError } from '../shared/errors.js'
export interface SonioxToken {
  text: string
  start_ms?: number
  end_ms?: number
  confidence?: number
  is_final: boolean
  speaker?: string
  language?: string
  translation_status?: 'none' | 'original' | 'translation'
  source_language?: string
}

export interface SonioxResult {
  kind: 'result'
  tokens: SonioxToken[]
  finalAudioProcMs: number | undefined
  totalAudioProcMs: number | undefined
  finished: boolean
}

export interface SonioxServerError {
  kind: 'error'
  code: number
  type: string | undefined
  message: string
  requestId: string | undefined
}

export type SonioxMessage = SonioxResult | SonioxServerError

/** Marker tokens: not transcript text. `<end>` = endpoint detected, `<fin>` = finalize applied. */
export const END_TOKEN = '<end>'
export const FIN_TOKEN = '<fin>'

/** Parses one server frame; returns an AppError describing what is wrong instead of throwing. */
export function parseSonioxMessage(text: string): SonioxMessage | AppError {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return badMessage(`not JSON: ${text.slice(0, 80)}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return badMessage('not a JSON object')
  const msg = value as Record<string, unknown>

  if (msg.error_code !== undefined || msg.error_message !== undefined) {
    return {
      kind: 'error',
      code: typeof msg.error_code === 'number' ? msg.error_code : 0,
      type: typeof msg.error_type === 'string' ? msg.error_type : undefined,
      message: typeof msg.error_message === 'string' ? msg.error_message : '',
      requestId: typeof msg.request_id === 'string' ? msg.request_id : undefined,
    }
  }
  const rawTokens = msg.tokens ?? []
  if (!Array.isArray(rawTokens)) return badMessage('"tokens" is not an array')
  const tokens: SonioxToken[] = []
  for (const t of rawTokens) {
    if (typeof t !== 'object' || t === null || typeof (t as SonioxToken).text !== 'string') {
      return badMessage('a token has no text')
    }
    tokens.push(t as SonioxToken)
  }
  return {
    kind: 'result',
    tokens,
    // The API reference names these final_/total_audio_proc_ms; one concept page writes
    // audio_final_/audio_total_proc_ms. Accepting both costs nothing.
    finalAudioProcMs: numberOr(msg.final_audio_proc_ms, msg.audio_final_proc_ms),
    totalAudioProcMs: numberOr(msg.total_audio_proc_ms, msg.audio_total_proc_ms),
    finished: msg.finished === true,
  }
}

function numberOr(a: unknown, b: unknown): number | undefined {
  if (typeof a === 'number') return a
  if (typeof b === 'number') return b
  return undefined
}

function badMessage(what: string): AppError {
  return new AppError('ERR_SONIOX_BAD_MESSAGE', `Soniox sent an unexpected message: ${what}`)
}
