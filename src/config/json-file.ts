/** JSON files the configuration names: CONFIG_FILE and SONIOX_CONTEXT_FILE. */
import { readFileSync } from 'node:fs'

/**
 * Reads a JSON file, or says why it cannot. A syntax error is reported by line and column only:
 * JSON.parse's own message quotes the text around the error, which may be a secret pasted
 * without quotes.
 */
export function readJsonFile(path: string): { value: unknown } | { problem: string } {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    return { problem: `cannot be read: ${(err as Error).message}` }
  }
  try {
    return { value: JSON.parse(text) }
  } catch (err) {
    const position = /position (\d+)/.exec((err as Error).message)?.[1]
    if (position === undefined) return { problem: 'is not valid JSON' }
    const before = text.slice(0, Number(position))
    const line = before.split('\n').length
    const column = Number(position) - before.lastIndexOf('\n')
    return { problem: `is not valid JSON (syntax error at line ${line}, column ${column}; are strings quoted?)` }
  }
}
