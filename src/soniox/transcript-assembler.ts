/**
 * Turns Soniox result messages into utterances. Pure: no I/O, no clock.
 *
 * Soniox sends each final token once and never changes it; non-final tokens are replaced by every
 * message. So: final tokens append to the open utterance, the latest message's non-final tokens
 * are the provisional tail, and an `<end>` (endpoint) or `<fin>` (finalize applied) token closes
 * the utterance. Text is the tokens joined exactly as sent (they carry their own spaces), so the
 * concatenation of every utterance's text is the whole call transcript, byte for byte.
 */
import { END_TOKEN, FIN_TOKEN, type SonioxResult, type SonioxToken } from './messages.js'

export type UtteranceReason = 'endpoint' | 'finalize' | 'call_end'

export interface UtteranceToken {
  text: string
  start_ms?: number
  end_ms?: number
  confidence?: number
  speaker?: string
  language?: string
}

export interface Utterance {
  index: number
  text: string
  start_ms: number | null
  end_ms: number | null
  /** Mean confidence of the utterance's tokens, or null if Soniox gave none. */
  confidence: number | null
  speaker?: string
  language?: string
  /** With translation enabled: the translated text Soniox sent for this utterance. */
  translation?: string
  tokens: UtteranceToken[]
  reason: UtteranceReason
}

export interface PartialText {
  text: string
  start_ms: number | null
}

export class TranscriptAssembler {
  private openTokens: SonioxToken[] = []
  private openTranslation: string[] = []
  private provisional: SonioxToken[] = []
  private utteranceIndex = 0
  private readonly finalPieces: string[] = []

  /** Feeds one result message; returns the utterances it closed, in order. */
  push(result: SonioxResult): Utterance[] {
    const closed: Utterance[] = []
    const provisional: SonioxToken[] = []
    for (const token of result.tokens) {
      if (!token.is_final) {
        provisional.push(token)
        continue
      }
      if (token.text === END_TOKEN || token.text === FIN_TOKEN) {
        const utterance = this.close(token.text === END_TOKEN ? 'endpoint' : 'finalize')
        if (utterance) closed.push(utterance)
        continue
      }
      if (token.translation_status === 'translation') {
        this.openTranslation.push(token.text)
        continue
      }
      this.openTokens.push(token)
      this.finalPieces.push(token.text)
    }
    this.provisional = provisional
    return closed
  }

  /** Closes whatever final text is still open (the call ended without a last `<end>`). */
  flush(reason: UtteranceReason = 'call_end'): Utterance | undefined {
    this.provisional = []
    return this.close(reason)
  }

  /** The open utterance including provisional (non-final) text, for transcript.partial. */
  partial(): PartialText | undefined {
    const tokens = [...this.openTokens, ...this.provisional.filter((t) => t.translation_status !== 'translation')]
    if (tokens.length === 0) return undefined
    return { text: tokens.map((t) => t.text).join(''), start_ms: tokens.find((t) => t.start_ms !== undefined)?.start_ms ?? null }
  }

  /** Every final token so far joined exactly (markers removed): the call's transcript. */
  get transcript(): string {
    return this.finalPieces.join('')
  }

  get utteranceCount(): number {
    return this.utteranceIndex
  }

  private close(reason: UtteranceReason): Utterance | undefined {
    const tokens = this.openTokens
    const translation = this.openTranslation
    this.openTokens = []
    this.openTranslation = []
    // Soniox may send <fin> with nothing pending, or <end> right after <fin>: no empty utterances.
    if (tokens.length === 0) return undefined

    const confidences = tokens.map((t) => t.confidence).filter((c): c is number => typeof c === 'number')
    const utterance: Utterance = {
      index: this.utteranceIndex++,
      text: tokens.map((t) => t.text).join(''),
      start_ms: tokens.find((t) => t.start_ms !== undefined)?.start_ms ?? null,
      end_ms: findLast(tokens, (t) => t.end_ms !== undefined)?.end_ms ?? null,
      confidence: confidences.length > 0 ? round3(confidences.reduce((a, b) => a + b, 0) / confidences.length) : null,
      tokens: tokens.map((t) => this.toUtteranceToken(t)),
      reason,
    }
    const speaker = mostFrequent(tokens.map((t) => t.speaker))
    if (speaker !== undefined) utterance.speaker = speaker
    const language = mostFrequent(tokens.map((t) => t.language))
    if (language !== undefined) utterance.language = language
    if (translation.length > 0) utterance.translation = translation.join('')
    return utterance
  }

  private toUtteranceToken(t: SonioxToken): UtteranceToken {
    const out: UtteranceToken = { text: t.text }
    if (t.start_ms !== undefined) out.start_ms = t.start_ms
    if (t.end_ms !== undefined) out.end_ms = t.end_ms
    if (t.confidence !== undefined) out.confidence = t.confidence
    if (t.speaker !== undefined) out.speaker = t.speaker
    if (t.language !== undefined) out.language = t.language
    return out
  }
}

function findLast<T>(items: T[], predicate: (item: T) => boolean): T | undefined {
  for (let i = items.length - 1; i >= 0; i--) {
    const item = items[i] as T
    if (predicate(item)) return item
  }
  return undefined
}

function mostFrequent(values: Array<string | undefined>): string | undefined {
  const counts = new Map<string, number>()
  let best: string | undefined
  let bestCount = 0
  for (const v of values) {
    if (v === undefined) continue
    const n = (counts.get(v) ?? 0) + 1
    counts.set(v, n)
    if (n > bestCount) {
      best = v
      bestCount = n
    }
  }
  return best
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000
}
