/**
 * Soniox's models API: `GET /v1/models` with the API key as Bearer, on the API host of the region
 * the WebSocket URL names. `audiosocket-soniox check` uses it to say whether the configured model
 * exists, is an alias (of which model), or is deprecated (and what replaces it).
 *
 * The answer, as documented (soniox-js `packages/node/src/types/public/models.ts` and
 * `async/models.ts`, Soniox's OpenAPI schema as generated into third-party SDKs):
 *
 *   { "models": [ { "id": "stt-rt-v6", "aliased_model_id": null, "name": "...",
 *                   "transcription_mode": "real_time" | "async", "context_version": 2,
 *                   "languages": [{ "code": "en", "name": "English" }], "supports_...": true, ... } ] }
 *
 * Deprecation is NOT in that schema. Soniox announces retirements elsewhere (stt-rt-v5 retires on
 * 2026-12-15), so this reader assumes it may come as `deprecated: true` with `retirement_date`
 * (YYYY-MM-DD) and `replacement_model_id`, and also accepts the spellings `is_deprecated`,
 * `deprecation_date`, `sunset_date`, `retires_at`, `replacement`, `replaced_by`,
 * `successor_model_id`. With none of them a model is simply not known to be deprecated. Anything
 * else unexpected (unknown fields, a bare array, entries without an id) is tolerated.
 */

/** One model as this project reads it from the list. */
export interface SonioxModelInfo {
  id: string
  /** The model this id stands for, when it is an alias. */
  aliasOf: string | null
  name: string | undefined
  /** From transcription_mode; undefined when the answer does not say. */
  realTime: boolean | undefined
  deprecated: boolean
  retirementDate: string | undefined
  replacement: string | undefined
}

export type ModelsAnswer = { ok: true; url: string; models: SonioxModelInfo[] } | { ok: false; url: string; status?: number; message: string }

/**
 * The models API URL for a real-time WebSocket URL. Soniox's hosts follow `stt-rt.{base}` /
 * `api.{base}` in every region (US soniox.com, EU eu.soniox.com, Japan jp.soniox.com, India
 * in.soniox.com), so `wss://stt-rt.eu.soniox.com/...` gives `https://api.eu.soniox.com/v1/models`.
 * Any other host (a local stand-in, a proxy) is asked on the same host and port, over http for
 * ws:// and https for wss://.
 */
export function modelsApiUrl(websocketUrl: string): string {
  const url = new URL(websocketUrl)
  const scheme = url.protocol === 'ws:' ? 'http:' : 'https:'
  const host = url.hostname.startsWith('stt-rt.') ? `api.${url.hostname.slice('stt-rt.'.length)}` : url.hostname
  return `${scheme}//${host}${url.port === '' ? '' : `:${url.port}`}/v1/models`
}

export interface FetchModelsOptions {
  websocketUrl: string
  apiKey: string
  timeoutMs: number
  /** Replaced in tests; default the global fetch. */
  fetch?: typeof fetch
}

/** Asks the models API. Never throws: a failure is an answer with what went wrong. */
export async function fetchSonioxModels(options: FetchModelsOptions): Promise<ModelsAnswer> {
  const url = modelsApiUrl(options.websocketUrl)
  const doFetch = options.fetch ?? fetch
  let response: Response
  try {
    response = await doFetch(url, {
      headers: { Authorization: `Bearer ${options.apiKey}`, Accept: 'application/json' },
      signal: AbortSignal.timeout(options.timeoutMs),
    })
  } catch (err) {
    return { ok: false, url, message: networkMessage(err, options.timeoutMs) }
  }
  let text: string
  try {
    text = await response.text()
  } catch (err) {
    return { ok: false, url, status: response.status, message: `the answer broke off: ${networkMessage(err, options.timeoutMs)}` }
  }
  const body = parseJson(text)
  if (!response.ok) return { ok: false, url, status: response.status, message: `HTTP ${response.status}${errorText(body, text)}` }
  const list = Array.isArray(body) ? body : isObject(body) && Array.isArray(body.models) ? body.models : undefined
  if (list === undefined) return { ok: false, url, status: response.status, message: 'the answer is not a models list' }
  const models = list.map(parseModel).filter((m): m is SonioxModelInfo => m !== undefined)
  return { ok: true, url, models }
}

/** One entry of the list; undefined without a usable id. */
export function parseModel(raw: unknown): SonioxModelInfo | undefined {
  if (!isObject(raw) || typeof raw.id !== 'string' || raw.id === '') return undefined
  const mode = raw.transcription_mode
  const retirementDate = firstString(raw, ['retirement_date', 'deprecation_date', 'sunset_date', 'retires_at'])
  const replacement = firstString(raw, ['replacement_model_id', 'replacement', 'replaced_by', 'successor_model_id'])
  return {
    id: raw.id,
    aliasOf: typeof raw.aliased_model_id === 'string' && raw.aliased_model_id !== '' ? raw.aliased_model_id : null,
    name: typeof raw.name === 'string' ? raw.name : undefined,
    realTime: mode === 'real_time' || mode === 'realtime' ? true : mode === 'async' ? false : undefined,
    deprecated: raw.deprecated === true || raw.is_deprecated === true || retirementDate !== undefined || replacement !== undefined,
    retirementDate,
    replacement,
  }
}

/** What the list says of one model id. */
export type ModelAssessment =
  /** Not in the list: Soniox refuses it (400 `Invalid model specified.`). */
  | { kind: 'unknown'; realTimeIds: string[] }
  /** An async model: the real-time WebSocket refuses it. */
  | { kind: 'async'; model: SonioxModelInfo }
  | {
      kind: 'model'
      model: SonioxModelInfo
      /** For an alias: the ids it leads to, in order, the last being the model that transcribes. Empty otherwise. */
      aliasChain: string[]
      /** The last alias target is not in the list (Soniox would say; we cannot). */
      danglingAlias: boolean
      /** The first deprecated model on the way (the configured one, or what its alias leads to). */
      deprecated: SonioxModelInfo | undefined
    }

export function assessModel(models: readonly SonioxModelInfo[], id: string): ModelAssessment {
  const byId = new Map(models.map((m) => [m.id, m]))
  const model = byId.get(id)
  if (model === undefined) return { kind: 'unknown', realTimeIds: models.filter((m) => m.realTime !== false && m.aliasOf === null).map((m) => m.id) }
  const chain: string[] = []
  let current = model
  let deprecated = model.deprecated ? model : undefined
  let danglingAlias = false
  while (current.aliasOf !== null && chain.length < 8 && !chain.includes(current.aliasOf) && current.aliasOf !== id) {
    chain.push(current.aliasOf)
    const next = byId.get(current.aliasOf)
    if (next === undefined) {
      danglingAlias = true
      break
    }
    current = next
    if (deprecated === undefined && current.deprecated) deprecated = current
  }
  if (current.realTime === false) return { kind: 'async', model: current }
  return { kind: 'model', model, aliasChain: chain, danglingAlias, deprecated }
}

function networkMessage(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${timeoutMs} ms`
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : ''
  return `${err instanceof Error ? err.message : String(err)}${cause}`
}

/** Soniox's REST error text (`message`, or `error_message` as the WebSocket names it), else a short excerpt. */
function errorText(body: unknown, text: string): string {
  if (isObject(body)) {
    const message = typeof body.message === 'string' ? body.message : typeof body.error_message === 'string' ? body.error_message : undefined
    const type = typeof body.error_type === 'string' ? body.error_type : undefined
    if (message !== undefined || type !== undefined) return `:${type === undefined ? '' : ` ${type}`}${message === undefined ? '' : ` ${message}`}`
  }
  const excerpt = text.trim().slice(0, 200)
  return excerpt === '' ? '' : `: ${excerpt}`
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function firstString(raw: Record<string, unknown>, keys: readonly string[]): string | undefined {
  for (const key of keys) {
    const value = raw[key]
    if (typeof value === 'string' && value !== '') return value
  }
  return undefined
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
