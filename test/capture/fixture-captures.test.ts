/**
 * fixtures/captures/ holds exactly what its sources give, byte for byte (the fixtures carry a
 * fixed tool name, so a version bump does not change them). REGENERATE_FIXTURES=1 rewrites the
 * files from their sources instead of checking them (see fixtures/README.md).
 */
import t from 'tap'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { decodeCapture, encodeCapture } from '../../src/capture/index.js'
import { FIXTURE_CAPTURES, FIXTURE_CAPTURE_DIR } from '../support/capture-fixtures.js'

const regenerate = process.env.REGENERATE_FIXTURES === '1'

for (const fixture of FIXTURE_CAPTURES) {
  t.test(fixture.file, async (t) => {
    const expected = encodeCapture(fixture.build())
    const path = `${FIXTURE_CAPTURE_DIR}${fixture.file}`
    if (regenerate) {
      mkdirSync(FIXTURE_CAPTURE_DIR, { recursive: true })
      writeFileSync(path, expected)
      t.pass(`wrote ${fixture.file} (${fixture.what})`)
      return
    }
    t.ok(existsSync(path), `${fixture.file} exists (regenerate with REGENERATE_FIXTURES=1)`)
    const actual = readFileSync(path)
    t.ok(actual.equals(expected), `${fixture.file} is exactly what its source gives: ${fixture.what}`)
    t.doesNotThrow(() => decodeCapture(actual, { name: fixture.file }), 'and reads back as a capture')
  })
}
