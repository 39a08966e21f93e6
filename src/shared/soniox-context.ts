/**
 * The Soniox `context` object, validated against its documented shape at the edge (the
 * SONIOX_CONTEXT_FILE at start, the `context` of a call registration) by this one function.
 *
 *   { "general": [{ "key": "domain", "value": "banking" }], "text": "...",
 *     "terms": ["Northwind"], "translation_terms": [{ "source": "...", "target": "..." }] }
 *
 * A plain string is the older form, which Soniox still accepts. Anything else is refused naming the
 * field, and what is accepted is rebuilt from its validated fields only: nothing of the input's own
 * structure (extra keys, nesting, prototypes) reaches a session, and the result is frozen.
 */

export interface SonioxContextPair {
  readonly key: string
  readonly value: string
}

export interface SonioxTranslationTerm {
  readonly source: string
  readonly target: string
}

interface SonioxContextObject {
  general?: readonly SonioxContextPair[]
  text?: string
  terms?: readonly string[]
  translation_terms?: readonly SonioxTranslationTerm[]
}

export type SonioxContext = string | Readonly<SonioxContextObject>

/** Soniox refuses a context longer than this (characters of its JSON). */
export const MAX_CONTEXT_CHARS = 10000

const FIELDS = ['general', 'text', 'terms', 'translation_terms'] as const

const FORM = 'a Soniox context object ({"general": [{"key": ..., "value": ...}], "text": "...", "terms": ["..."], "translation_terms": [{"source": ..., "target": ...}]}) or a string'

/**
 * Validates `value` as a Soniox context. `name` prefixes each problem (e.g. "context"), so the
 * message names the field as the operator wrote it: `context.general[2].value must be a string`.
 */
export function parseSonioxContext(value: unknown, name: string): { context: SonioxContext } | { problems: string[] } {
  if (typeof value === 'string') return checkLength(value, name)
  if (!isPlainObject(value)) return { problems: [`${name} must be ${FORM}`] }
  const problems: string[] = []
  const context: SonioxContextObject = {}
  for (const key of Object.keys(value)) {
    if (!(FIELDS as readonly string[]).includes(key)) problems.push(`${name} has an unknown field "${key}" (known: ${FIELDS.join(', ')})`)
  }
  if (value.general !== undefined) {
    const general = pairs(value.general, `${name}.general`, ['key', 'value'], problems)
    if (general) context.general = Object.freeze(general.map(([key, value]) => Object.freeze({ key, value })))
  }
  if (value.text !== undefined) {
    if (typeof value.text === 'string') context.text = value.text
    else problems.push(`${name}.text must be a string`)
  }
  if (value.terms !== undefined) {
    if (Array.isArray(value.terms) && value.terms.every((term) => typeof term === 'string')) {
      context.terms = Object.freeze([...(value.terms as string[])])
    } else {
      problems.push(`${name}.terms must be an array of strings`)
    }
  }
  if (value.translation_terms !== undefined) {
    const terms = pairs(value.translation_terms, `${name}.translation_terms`, ['source', 'target'], problems)
    if (terms) context.translation_terms = Object.freeze(terms.map(([source, target]) => Object.freeze({ source, target })))
  }
  if (problems.length > 0) return { problems }
  return checkLength(Object.freeze(context), name)
}

/** An array of objects with exactly the two string fields `names`, as [first, second] tuples. */
function pairs(value: unknown, name: string, names: readonly [string, string], problems: string[]): Array<[string, string]> | undefined {
  const form = `${name} must be an array of {"${names[0]}": "...", "${names[1]}": "..."} objects`
  if (!Array.isArray(value)) {
    problems.push(form)
    return undefined
  }
  const out: Array<[string, string]> = []
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i]
    if (!isPlainObject(item)) {
      problems.push(`${name}[${i}]: ${form}`)
      return undefined
    }
    const extra = Object.keys(item).filter((key) => !names.includes(key))
    const first = item[names[0]]
    const second = item[names[1]]
    if (extra.length > 0) problems.push(`${name}[${i}] has an unknown field "${extra[0]}" (known: ${names.join(', ')})`)
    else if (typeof first !== 'string') problems.push(`${name}[${i}].${names[0]} must be a string`)
    else if (typeof second !== 'string') problems.push(`${name}[${i}].${names[1]} must be a string`)
    else {
      out.push([first, second])
      continue
    }
    return undefined
  }
  return out
}

function checkLength(context: SonioxContext, name: string): { context: SonioxContext } | { problems: string[] } {
  // Only validated shapes reach this stringify: at most three levels deep, so it cannot overflow the stack.
  const length = JSON.stringify(context).length
  if (length > MAX_CONTEXT_CHARS) return { problems: [`${name} is ${length} characters of JSON, longer than Soniox's limit of ${MAX_CONTEXT_CHARS}`] }
  return { context }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
