/**
 * src/shared/errors.ts: one catalogue of codes, and the "Error codes" table of docs/errors.md (which
 * the README links) says exactly what it says (fastify's errors test: a code missing from the docs,
 * or documented but gone, fails).
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { AppError, ErrorCodes, isAppError } from '../../src/shared/errors.js'

const ERRORS_DOC = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')

/** docs/errors.md's error table: `| `ERR_X` | meaning |` rows under its "Error codes" heading. */
function documentedCodes(): Map<string, string> {
  const section = ERRORS_DOC.split(/^# Error codes$/m)[1]?.split(/^#{1,3} /m)[0] ?? ''
  const rows = new Map<string, string>()
  for (const match of section.matchAll(/^\| `(ERR_[A-Z0-9_]+)` \| (.*) \|$/gm)) rows.set(match[1] as string, match[2] as string)
  return rows
}

t.test("docs/errors.md's error table lists every code of the catalogue with its meaning, and no other", async (t) => {
  const documented = documentedCodes()
  t.ok(documented.size > 0, 'docs/errors.md has an "Error codes" table')
  t.match(README, /\]\(docs\/errors\.md\)/, 'the README links docs/errors.md')
  for (const [code, meaning] of Object.entries(ErrorCodes)) {
    t.equal(documented.get(code), meaning.replaceAll('|', '\\|'), `${code} is documented with the catalogue's words`)
  }
  for (const code of documented.keys()) t.ok(code in ErrorCodes, `${code} in docs/errors.md exists in the catalogue`)
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
