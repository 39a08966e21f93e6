/**
 * Heap per pending call registration: 10,000 bodies of each kind go through parseRegistration into
 * a RegistrationStore (bounds lifted), and the growth of heapUsed is divided by 10,000. The figures
 * are behind the defaults of REGISTRATION_MAX_COUNT and REGISTRATION_MAX_BYTES (src/config.ts).
 *
 *   npx tsc -p tsconfig.bench.json && node --expose-gc dist-bench/bench/registration-heap.js
 */
import { MAX_METADATA_DEPTH, RegistrationStore, parseRegistration } from '../src/server/registrations.js'

const COUNT = 10_000

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc')

/** Every 3-letter language code, `aaa` to `zzz`: unique, so they pass the schema. */
function languageCodes(count: number): string[] {
  const letters = 'abcdefghijklmnopqrstuvwxyz'
  const codes: string[] = []
  for (const a of letters) for (const b of letters) for (const c of letters) if (codes.length < count) codes.push(a + b + c)
  return codes
}

/** `[[[...[[], [], ...]...]]]`: empty arrays (the costliest shape per character once parsed) at the allowed depth, ~`chars` of JSON. */
function nestedArrays(chars: number): unknown {
  let inner: unknown = Array.from({ length: Math.floor((chars - 2 * MAX_METADATA_DEPTH) / 3) }, () => [])
  // metadata itself, the wrappers, the list, the empty arrays: MAX_METADATA_DEPTH levels in all.
  for (let level = 3; level < MAX_METADATA_DEPTH; level++) inner = [inner]
  return inner
}

const typical = {
  language_hints: ['en', 'es'],
  context: { general: [{ key: 'domain', value: 'banking' }], terms: ['Northwind'] },
  metadata: { customer_id: 'C-1042', queue: 'support' },
}
/** As large as the bounds allow (body 64 KiB): metadata of nested arrays, context of one-letter terms, thousands of hints. */
const largest = {
  metadata: { a: nestedArrays(8150) },
  context: { terms: Array.from({ length: 2490 }, () => 'x') },
  language_hints: languageCodes(7000),
}
/** The same with one character beyond Latin-1, which makes V8 store the whole JSON text with two bytes per character. */
const largestTwoByte = { ...largest, metadata: { ...largest.metadata, b: '\u20ac' } }

function measure(name: string, body: unknown): void {
  const text = JSON.stringify(body)
  const parsed = parseRegistration(JSON.parse(text))
  if ('problems' in parsed) throw new Error(`${name}: ${parsed.problems.join('; ')}`)
  const store = new RegistrationStore(3_600_000, { maxCount: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER })
  gc?.()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < COUNT; i++) {
    // Each registration from its own request: parsed from text, as the HTTP endpoint does.
    const options = parseRegistration(JSON.parse(text))
    if ('problems' in options) throw new Error('refused')
    const stored = store.register(`00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, options.options)
    if (!stored.stored) throw new Error('refused by the store')
  }
  gc?.()
  const perRegistration = (process.memoryUsage().heapUsed - before) / COUNT
  console.log(
    `${name.padEnd(16)} body ${String(Buffer.byteLength(text)).padStart(6)} B, counted ${String(Math.round(store.bytes / COUNT)).padStart(6)} B, heap ${String(Math.round(perRegistration)).padStart(7)} B per registration`,
  )
}

measure('typical', typical)
measure('largest', largest)
measure('largest two-byte', largestTwoByte)
