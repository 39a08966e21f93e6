/**
 * The body of `POST /conversations`: which channel to tap, the roles of its two streams, and the
 * same per-call options and metadata a registration takes (registrations.ts), applied to both legs.
 *
 * ```json
 * { "channel": "PJSIP/alice-00000001", "roles": { "in": "caller", "out": "agent" },
 *   "language_hints": ["en"], "metadata": { "ticket": "T-1042" } }
 * ```
 *
 * The same as form fields (what the dialplan's CURL() sends: it strips the quotes JSON needs):
 * `channel=${CHANNEL(uniqueid)}&roles=caller%2Cagent&language_hints=en%2Ces&metadata.ticket=T-1042`
 * (`roles` and `language_hints` comma-separated, every `metadata.<key>` a string).
 */
import { parseRegistration } from './registrations.js'
import { DEFAULT_ROLES, isRole, type ConversationRequest } from './conversation-taps.js'

/** A channel id or name is at most this long (Asterisk's names are far shorter). */
const MAX_CHANNEL_CHARS = 256

/** The fields of the JSON body: the tap's own, then the registration's it takes (sample_rate is not one). */
const BODY_FIELDS = ['channel', 'roles', 'language_hints', 'language_hints_strict', 'context', 'metadata']

export function parseConversationRequest(body: unknown): { request: ConversationRequest } | { problems: string[] } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { problems: ['the body must be a JSON object'] }
  const { channel, roles, sample_rate: sampleRate, ...rest } = body as Record<string, unknown>
  const problems: string[] = []
  if (typeof channel !== 'string' || channel === '' || channel.length > MAX_CHANNEL_CHARS) {
    problems.push(`channel must be the channel's id or name (a string of 1 to ${MAX_CHANNEL_CHARS} characters), e.g. "\${CHANNEL}" in the dialplan`)
  }
  let parsedRoles = DEFAULT_ROLES
  if (roles !== undefined) {
    const r = roles as Record<string, unknown>
    if (typeof roles !== 'object' || roles === null || Array.isArray(roles) || Object.keys(r).some((k) => k !== 'in' && k !== 'out')) {
      problems.push('roles must be an object { "in": "<role>", "out": "<role>" }')
    } else {
      // A role left out takes its default; one given (null included) must be a name.
      const inRole = r.in === undefined ? DEFAULT_ROLES.in : r.in
      const outRole = r.out === undefined ? DEFAULT_ROLES.out : r.out
      if (!isRole(inRole) || !isRole(outRole)) {
        problems.push('roles.in and roles.out must be names of 1 to 32 letters, digits, "_", "." or "-", starting with a letter')
      } else {
        parsedRoles = { in: inRole, out: outRole }
        if (parsedRoles.in === parsedRoles.out) problems.push('roles.in and roles.out must differ')
      }
    }
  }
  if (sampleRate !== undefined) problems.push('sample_rate is not taken here: a tap asks Asterisk for the channel\'s own rate')
  // Named here, with this body's fields: parseRegistration would list its own (sample_rate, not channel).
  for (const key of Object.keys(rest)) {
    if (!BODY_FIELDS.includes(key)) problems.push(`unknown field "${key}" (known: ${BODY_FIELDS.join(', ')})`)
  }
  const options = parseRegistration(Object.fromEntries(Object.entries(rest).filter(([key]) => BODY_FIELDS.includes(key))))
  if ('problems' in options) problems.push(...options.problems)
  if (problems.length > 0 || 'problems' in options) return { problems }
  return { request: { channel: channel as string, roles: parsedRoles, options: options.options } }
}

const FORM_FIELDS = ['channel', 'roles', 'language_hints', 'language_hints_strict']

/** Form fields (x-www-form-urlencoded) as the JSON body they stand for; parseConversationRequest checks the values. */
export function conversationBodyFromForm(text: string): { body: Record<string, unknown> } | { problems: string[] } {
  const body: Record<string, unknown> = {}
  // A Map, not an object: a key such as "__proto__" stays the metadata's own, as in the JSON twin.
  const metadata = new Map<string, string>()
  const problems: string[] = []
  for (const [key, value] of new URLSearchParams(text)) {
    if (key.startsWith('metadata.') && key.length > 'metadata.'.length) {
      const name = key.slice('metadata.'.length)
      if (metadata.has(name)) problems.push(`the form field "${key}" is given twice`)
      else metadata.set(name, value)
    } else if (!FORM_FIELDS.includes(key)) {
      problems.push(`unknown form field "${key}" (known: ${FORM_FIELDS.join(', ')}, metadata.<key>)`)
    } else if (key in body) {
      problems.push(`the form field "${key}" is given twice`)
    } else if (key === 'roles') {
      // Two names, always: a JSON body may leave a role to its default, but "roles=caller" in a form
      // reads as a mistake (which of the two?) rather than as "caller, and the default".
      const parts = value.split(',').map((part) => part.trim())
      if (parts.length === 2) body.roles = { in: parts[0], out: parts[1] }
      else problems.push(`the form field "roles" is two names, the "in" stream's then the "out" stream's, e.g. roles=caller%2Cagent (got ${parts.length})`)
    } else if (key === 'language_hints') {
      body.language_hints = value.split(',').map((part) => part.trim())
    } else if (key === 'language_hints_strict') {
      body.language_hints_strict = value === 'true' ? true : value === 'false' ? false : value
    } else {
      body[key] = value
    }
  }
  // Object.fromEntries defines each key as an own property (no __proto__ setter).
  if (metadata.size > 0) body.metadata = Object.fromEntries(metadata)
  return problems.length > 0 ? { problems } : { body }
}
