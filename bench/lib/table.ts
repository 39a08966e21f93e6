/** The Markdown tables every scenario writes: one number format, one row shape, the same count rows. */
import type { RunCounts } from './reports.js'

export function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a'
}

/** `| name | a | b | b / a |`; a missing value is "-", and `ratio: false` leaves the last cell empty. */
export function row(name: string, a: number | undefined, b: number | undefined, digits = 2, ratio = true): string {
  return `| ${name} | ${a === undefined ? '-' : fmt(a, digits)} | ${b === undefined ? '-' : fmt(b, digits)} | ${ratio && a !== undefined && b !== undefined ? `${fmt(b / a)}x` : ''} |`
}

/** The rows that say whether a run lost anything: words produced and delivered, failures, errors, lateness. */
export function countRows(a: RunCounts | undefined, b: RunCounts | undefined, labels: { failed: string; errors: string }): string[] {
  return [
    row('words produced by the stand-in', a?.wordsProduced, b?.wordsProduced, 0, false),
    row('words delivered to the receiver', a?.wordsDelivered, b?.wordsDelivered, 0, false),
    row(labels.failed, a?.callsFailed, b?.callsFailed, 0, false),
    row(labels.errors, a?.errors, b?.errors, 0, false),
    row('load generator max write lateness ms', a?.maxLoadLatenessMs, b?.maxLoadLatenessMs, 1, false),
  ]
}
