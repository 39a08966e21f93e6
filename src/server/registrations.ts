/**
 * Call pre-registration: `POST /calls/{uuid}` stores per-call options for a while (REGISTRATION_TTL_MS);
 * the call with that UUID takes them when its UUID frame arrives. With REQUIRE_REGISTRATION=true a
 * UUID nobody registered is refused, which turns the UUID from a correlation id into a one-time
 * ticket: a peer that can reach the AudioSocket port but not the HTTP token cannot start a call.
 *
 * A registration is used once: the call that takes it consumes it, so a UUID cannot be replayed.
 */
import { audioKindForSampleRate } from '../audiosocket/index.js'
import type { CallOptions } from '../call/call-session.js'
import { parseSonioxContext } from '../shared/soniox-context.js'
import { isLanguageCode } from '../shared/validate.js'
import { valueTooDeep } from '../shared/json-depth.js'

/** Bound on the JSON size of `metadata`: it is echoed in two events per call. */
export const MAX_METADATA_CHARS = 8192
/**
 * Bound on the nesting of `metadata`: the events that echo it are serialised recursively (JSON,
 * the worker's structured clone), which a few thousand levels would overflow.
 */
export const MAX_METADATA_DEPTH = 16
/** Default of REGISTRATION_MAX_COUNT: registrations held at most (a client registering without calling). */
export const MAX_REGISTRATIONS = 10000
/** Default of REGISTRATION_MAX_BYTES: bytes of the registrations' JSON held at most (16 MiB). */
export const MAX_REGISTRATION_BYTES = 16 * 2 ** 20

const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** The UUID as the AudioSocket parser reports it (lowercase 8-4-4-4-12), or undefined if it is not one. */
export function canonicalUuid(text: string): string | undefined {
  const lower = text.toLowerCase()
  return CANONICAL_UUID.test(lower) ? lower : undefined
}

const BODY_FIELDS = ['language_hints', 'language_hints_strict', 'context', 'metadata', 'sample_rate'] as const

/**
 * Validates a registration body (parsed JSON) into the call's options, or returns every problem.
 * An empty object is valid: the UUID is admitted with the configured defaults.
 *
 * ```json
 * { "language_hints": ["en", "es"], "language_hints_strict": true,
 *   "context": { "general": [{ "key": "domain", "value": "banking" }], "terms": ["Northwind"] },
 *   "metadata": { "customer_id": "C-1042", "queue": "support" }, "sample_rate": 16000 }
 * ```
 * `sample_rate` declares the rate the call's audio will have (e.g. 16000 for
 * `Dial(AudioSocket/.../c(slin16))`), so silence sent before its first audio frame has its kind.
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
    if (!Array.isArray(hints) || hints.some((h) => !isLanguageCode(h))) {
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
    } else if (valueTooDeep(metadata, MAX_METADATA_DEPTH)) {
      problems.push(`metadata nests arrays and objects more than ${MAX_METADATA_DEPTH} levels deep`)
    } else if (JSON.stringify(metadata).length > MAX_METADATA_CHARS) {
      problems.push(`metadata is longer than ${MAX_METADATA_CHARS} characters of JSON`)
    } else {
      options.metadata = metadata as Readonly<Record<string, unknown>>
    }
  }
  const sampleRate = record.sample_rate
  if (sampleRate !== undefined) {
    if (typeof sampleRate !== 'number' || audioKindForSampleRate(sampleRate) === undefined) {
      problems.push('sample_rate must be a rate AudioSocket has a kind for: 8000, 12000, 16000, 24000, 32000, 44100, 48000, 96000 or 192000')
    } else {
      options.sampleRate = sampleRate
    }
  }
  if (problems.length > 0) return { problems }
  if (Object.keys(recognition).length > 0) options.recognition = recognition
  return { options }
}

const AVR_CALL_FIELDS = ['uuid', 'payload'] as const

/**
 * AVR Core's pre-registration body, `POST /call` with `{ "uuid": "...", "payload": { ... } }` (its
 * dialplan posts the caller's number, the extension, UNIQUEID and CHANNEL in `payload`): the UUID,
 * and the options a `POST /calls/{uuid}` with `{ "metadata": payload }` would give. `payload` is
 * optional and bound like `metadata`; unknown fields are refused, as for registrations.
 */
export function parseAvrCall(body: unknown): { uuid: string; options: CallOptions } | { problems: string[] } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { problems: ['the body must be a JSON object: {"uuid": "<uuid>", "payload": {...}}'] }
  const record = body as Record<string, unknown>
  const problems: string[] = []
  for (const key of Object.keys(record)) {
    if (!(AVR_CALL_FIELDS as readonly string[]).includes(key)) problems.push(`unknown field "${key}" (known: ${AVR_CALL_FIELDS.join(', ')})`)
  }
  const uuid = typeof record.uuid === 'string' ? canonicalUuid(record.uuid) : undefined
  if (uuid === undefined) problems.push('uuid must be the call\'s UUID in its 36-character form, the one the AudioSocket line sends')
  const payload = record.payload
  let options: CallOptions = {}
  if (payload !== undefined) {
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
      problems.push('payload must be a JSON object')
    } else {
      const parsed = parseRegistration({ metadata: payload })
      if ('problems' in parsed) problems.push(...parsed.problems.map((problem) => problem.replace(/^metadata\b/, 'payload')))
      else options = parsed.options
    }
  }
  if (problems.length > 0 || uuid === undefined) return { problems }
  return { uuid, options }
}

interface Entry {
  /**
   * The options as JSON text, parsed again when the call takes them. Held as parsed objects, a
   * body's shape decides its heap (8 KB of nested empty arrays took 108 KB); as text it takes its
   * length (twice that if it holds a character beyond Latin-1), whatever the shape. So CallOptions
   * must stay plain JSON values (they come from a JSON body): a Date or an undefined would not survive.
   */
  readonly json: string
  /** UTF-8 length of `json`: what REGISTRATION_MAX_BYTES counts. */
  readonly bytes: number
  readonly expiresAt: number
}

export type RegisterResult =
  | { stored: true; expiresAt: number; replaced: boolean }
  /** Full: `limit` says which bound; `retryAfterMs` is when enough will have expired for this one to fit. */
  | { stored: false; limit: 'count' | 'bytes'; retryAfterMs: number }

/**
 * Registrations by UUID, each alive for `ttlMs`, bounded in number (`maxCount`) and in bytes of
 * their JSON (`maxBytes`). Expired entries are swept as new ones arrive: the TTL is the same for
 * all, so insertion order is expiry order (a re-registration moves to the end) and a sweep stops at
 * the first live entry. No timer.
 */
export class RegistrationStore {
  private readonly entries = new Map<string, Entry>()
  private storedBytes = 0
  private readonly now: () => number
  private readonly maxCount: number
  private readonly maxBytes: number

  constructor(
    private readonly ttlMs: number,
    options: { now?: () => number; maxCount?: number; maxBytes?: number } = {},
  ) {
    this.now = options.now ?? Date.now
    this.maxCount = options.maxCount ?? MAX_REGISTRATIONS
    this.maxBytes = options.maxBytes ?? MAX_REGISTRATION_BYTES
  }

  /** Stores (or replaces) the registration, unless that would pass either bound (the store is left as it was). */
  register(uuid: string, options: CallOptions): RegisterResult {
    this.sweep()
    const json = JSON.stringify(options)
    const bytes = Buffer.byteLength(json)
    const previous = this.entries.get(uuid)
    const count = this.entries.size + (previous === undefined ? 1 : 0)
    const total = this.storedBytes - (previous?.bytes ?? 0) + bytes
    if (count > this.maxCount || total > this.maxBytes) {
      return { stored: false, limit: count > this.maxCount ? 'count' : 'bytes', retryAfterMs: this.timeUntilRoom(uuid, count, total) }
    }
    if (previous !== undefined) this.delete(uuid, previous)
    const expiresAt = this.now() + this.ttlMs
    this.entries.set(uuid, { json, bytes, expiresAt })
    this.storedBytes += bytes
    return { stored: true, expiresAt, replaced: previous !== undefined }
  }

  /** Removes a registration; false if there was none (or it had expired). */
  remove(uuid: string): boolean {
    this.sweep()
    const entry = this.entries.get(uuid)
    if (entry === undefined) return false
    this.delete(uuid, entry)
    return true
  }

  /** The call's options (a frozen copy), consumed; undefined when not registered or expired. */
  take(uuid: string): CallOptions | undefined {
    const entry = this.entries.get(uuid)
    if (entry === undefined) return undefined
    this.delete(uuid, entry)
    return entry.expiresAt > this.now() ? freeze(JSON.parse(entry.json) as CallOptions) : undefined
  }

  get size(): number {
    this.sweep()
    return this.entries.size
  }

  /** Bytes of JSON held (REGISTRATION_MAX_BYTES counts these). */
  get bytes(): number {
    this.sweep()
    return this.storedBytes
  }

  private delete(uuid: string, entry: Entry): void {
    this.entries.delete(uuid)
    this.storedBytes -= entry.bytes
  }

  private sweep(): void {
    const now = this.now()
    for (const [uuid, entry] of this.entries) {
      if (entry.expiresAt > now) return
      this.delete(uuid, entry)
    }
  }

  /**
   * How long until enough entries expire (oldest first) for a registration that would make the
   * store `count` entries and `total` bytes to fit; a whole TTL if even an empty store is too small.
   */
  private timeUntilRoom(uuid: string, count: number, total: number): number {
    const now = this.now()
    for (const [id, entry] of this.entries) {
      // The entry being replaced is already counted out.
      if (id === uuid) continue
      count--
      total -= entry.bytes
      if (count <= this.maxCount && total <= this.maxBytes) return entry.expiresAt - now
    }
    return this.ttlMs
  }
}

/** Freezes parsed JSON all the way down: options that passed parseRegistration nest a few levels (MAX_METADATA_DEPTH), so recursion is safe. */
function freeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) freeze(child)
    Object.freeze(value)
  }
  return value
}
