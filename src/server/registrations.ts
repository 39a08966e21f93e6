/**
 * Call pre-registration: `POST /calls/{uuid}` stores per-call options for a while (REGISTRATION_TTL_MS);
 * the call with that UUID takes them when its UUID frame arrives. With REQUIRE_REGISTRATION=true a
 * UUID nobody registered is refused, which turns the UUID from a correlation id into a one-time
 * ticket: a peer that can reach the AudioSocket port but not the HTTP token cannot start a call.
 *
 * A registration is used once: the call that takes it consumes it, so a UUID cannot be replayed.
 */
import type { CallOptions } from '../call/call-session.js'
import { parseSonioxContext } from '../soniox/context.js'
import { LANGUAGE_CODE } from '../soniox/start-message.js'

/** Bound on the JSON size of `metadata`: it is echoed in two events per call. */
export const MAX_METADATA_CHARS = 8192
/** Registrations held at most; past it new ones are refused (a client registering without calling). */
export const MAX_REGISTRATIONS = 10000

const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** The UUID as the AudioSocket parser reports it (lowercase 8-4-4-4-12), or undefined if it is not one. */
export function canonicalUuid(text: string): string | undefined {
  const lower = text.toLowerCase()
  return CANONICAL_UUID.test(lower) ? lower : undefined
}

const BODY_FIELDS = ['language_hints', 'language_hints_strict', 'context', 'metadata'] as const

/**
 * Validates a registration body (parsed JSON) into the call's options, or returns every problem.
 * An empty object is valid: the UUID is admitted with the configured defaults.
 *
 * ```json
 * { "language_hints": ["en", "es"], "language_hints_strict": true,
 *   "context": { "general": [{ "key": "domain", "value": "banking" }], "terms": ["Northwind"] },
 *   "metadata": { "customer_id": "C-1042", "queue": "support" } }
 * ```
 */
export function parseRegistration(body: unknown): { options: CallOptions } | { problems: string[] } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { problems: ['the body must be a JSON object'] }
  const record = body as Record<string, unknown>
  const problems: string[] = []
  for (const key of Object.keys(record)) {
    if (!(BODY_FIELDS as readonly string[]).includes(key)) problems.push(`unknown field "${key}" (known: ${BODY_FIELDS.join(', ')})`)
  }
  const recognition: NonNullable<CallOptions['recognition']> = {}
  const options: CallOptions = {}

  const hints = record.language_hints
  if (hints !== undefined) {
    if (!Array.isArray(hints) || hints.some((h) => typeof h !== 'string' || !LANGUAGE_CODE.test(h))) {
      problems.push('language_hints must be an array of language codes, e.g. ["en", "es"]')
    } else if (new Set(hints).size !== hints.length) {
      problems.push('language_hints lists a language more than once')
    } else {
      recognition.languageHints = hints as string[]
    }
  }
  const strict = record.language_hints_strict
  if (strict !== undefined) {
    if (typeof strict !== 'boolean') problems.push('language_hints_strict must be true or false')
    else recognition.languageHintsStrict = strict
  }
  if (record.context !== undefined) {
    const context = parseSonioxContext(record.context, 'context')
    if ('problems' in context) problems.push(...context.problems)
    else recognition.context = context.context
  }
  const metadata = record.metadata
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      problems.push('metadata must be a JSON object')
    } else if (JSON.stringify(metadata).length > MAX_METADATA_CHARS) {
      problems.push(`metadata is longer than ${MAX_METADATA_CHARS} characters of JSON`)
    } else {
      options.metadata = metadata as Readonly<Record<string, unknown>>
    }
  }
  if (problems.length > 0) return { problems }
  if (Object.keys(recognition).length > 0) options.recognition = recognition
  return { options }
}

interface Entry {
  readonly options: CallOptions
  readonly expiresAt: number
}

/**
 * Registrations by UUID, each alive for `ttlMs`. Expired entries are swept as new ones arrive: the
 * TTL is the same for all, so insertion order is expiry order (a re-registration moves to the end)
 * and a sweep stops at the first live entry. No timer.
 */
export class RegistrationStore {
  private readonly entries = new Map<string, Entry>()
  private readonly now: () => number
  private readonly maxEntries: number

  constructor(
    private readonly ttlMs: number,
    options: { now?: () => number; maxEntries?: number } = {},
  ) {
    this.now = options.now ?? Date.now
    this.maxEntries = options.maxEntries ?? MAX_REGISTRATIONS
  }

  /** Stores (or replaces) the registration; returns its expiry, or undefined when the store is full. */
  register(uuid: string, options: CallOptions): { expiresAt: number; replaced: boolean } | undefined {
    this.sweep()
    const replaced = this.entries.delete(uuid)
    if (!replaced && this.entries.size >= this.maxEntries) return undefined
    const expiresAt = this.now() + this.ttlMs
    this.entries.set(uuid, { options, expiresAt })
    return { expiresAt, replaced }
  }

  /** Removes a registration; false if there was none (or it had expired). */
  remove(uuid: string): boolean {
    this.sweep()
    return this.entries.delete(uuid)
  }

  /** The call's options, consumed; undefined when not registered or expired. */
  take(uuid: string): CallOptions | undefined {
    const entry = this.entries.get(uuid)
    if (entry === undefined) return undefined
    this.entries.delete(uuid)
    return entry.expiresAt > this.now() ? entry.options : undefined
  }

  get size(): number {
    this.sweep()
    return this.entries.size
  }

  private sweep(): void {
    const now = this.now()
    for (const [uuid, entry] of this.entries) {
      if (entry.expiresAt > now) return
      this.entries.delete(uuid)
    }
  }
}
