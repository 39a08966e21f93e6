/**
 * src/shared/errors.ts: one catalogue of codes, and the README's "Error codes" table says exactly
 * what it says (fastify's errors test: a code missing from the docs, or documented but gone, fails).
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { AppError, ErrorCodes, isAppError } from '../../src/shared/errors.js'

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')

/** The README's error table: `| `ERR_X` | meaning |` rows under its "Error codes" heading. */
function documentedCodes(): Map<string, string> {
  const section = README.split(/^### Error codes$/m)[1]?.split(/^#{2,3} /m)[0] ?? ''
  const rows = new Map<string, string>()
  for (const match of section.matchAll(/^\| `(ERR_[A-Z0-9_]+)` \| (.*) \|$/gm)) rows.set(match[1] as string, match[2] as string)
  return rows
}

t.test("the README's error table lists every code of the catalogue with its meaning, and no other", async (t) => {
  const documented = documentedCodes()
  t.ok(documented.size > 0, 'the README has an "Error codes" table')
  for (const [code, meaning] of Object.entries(ErrorCodes)) {
    t.equal(documented.get(code), meaning.replaceAll('|', '\\|'), `${code} is documented with the catalogue's words`)
  }
  for (const code of documented.keys()) t.ok(code in ErrorCodes, `${code} in the README exists in the catalogue`)
})

t.test('an AppError carries its code, the catalogue text by default, and its cause', async (t) => {
  const cause = new Error('low level')
  const err = new AppError('ERR_SPOOL_OPEN', undefined, { cause })
  t.equal(err.code, 'ERR_SPOOL_OPEN')
  t.equal(err.message, ErrorCodes.ERR_SPOOL_OPEN)
  t.equal(err.cause, cause)
  t.ok(isAppError(err))
  t.notOk(isAppError(cause))
})
