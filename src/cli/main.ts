#!/usr/bin/env node
// The executable: run the command and exit with its code, in this one place.
import { main } from './run.js'

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`audiosocket-soniox: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exit(1)
  },
)
