/**
 * How deeply JSON nests, measured without recursion. V8's JSON.parse is iterative and builds a
 * structure of any depth, but JSON.stringify, structured clone (worker messages) and recursive
 * walks throw RangeError (stack overflow) a few thousand levels down: about 5,000 on Node 20's
 * default stack, fewer when called from deep in a stack. Input from a peer is measured with these
 * before anything recursive touches it. Depth counts arrays and objects: `{}` is 1, `{"a": []}` 2.
 */

/** Whether JSON text nests arrays and objects deeper than `limit` (brackets inside strings do not count). */
export function jsonTextTooDeep(text: string, limit: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) {
      inString = true
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > limit) return true
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--
    }
  }
  return false
}

/** Whether a value's arrays and objects nest deeper than `limit` (a cycle counts as too deep). */
export function valueTooDeep(value: unknown, limit: number): boolean {
  const pending: Array<{ item: unknown; depth: number }> = [{ item: value, depth: 1 }]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { item, depth } = next
    if (typeof item !== 'object' || item === null) continue
    if (depth > limit) return true
    for (const child of Object.values(item)) pending.push({ item: child, depth: depth + 1 })
  }
  return false
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
