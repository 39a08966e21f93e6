/**
 * Where a process's main thread stalled, from a V8 CPU profile (`node --cpu-prof`, or the bench's
 * BENCH_PROFILE=<dir>): the longest stretches without an idle sample (the event loop never got to
 * wait for I/O), each with the functions that took its time.
 *
 *   node dist-bench/bench/profile-stalls.js <file.cpuprofile> [--top 5] [--functions 12]
 *
 * A stretch of busy samples is what every live call waited behind: its length bounds the
 * event-loop delay it caused. Self time per function (its own samples) names what to remove;
 * "entered from" names the callback the stretch ran in (the frame below the first JS frame).
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

export interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface Stall {
  /** Milliseconds from the start of the profile. */
  startMs: number
  durationMs: number
  /** Self time by function, largest first: [name, ms]. */
  functions: Array<[string, number]>
  /** Time by the first JS frame of each sample's stack (the callback that was running): [name, ms]. */
  entries: Array<[string, number]>
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame
  const file = url === '' ? '' : ` ${url.replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^node:/, 'node:')}:${lineNumber + 1}`
  return `${functionName || '(anonymous)'}${file}`
}

const NOT_BUSY = new Set(['(idle)'])
/** Samples attributed to the engine itself, not to a JS frame. */
const ENGINE = new Set(['(program)', '(garbage collector)', '(root)'])

/** The `top` longest busy stretches, each of at least `minMs`. */
export function findStalls(profile: CpuProfile, top: number, functionsShown: number, minMs = 5): Stall[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id)
  /** The first frame of the stack above the root (the entry into JS, or an engine pseudo-frame). */
  const entryOf = (id: number): string => {
    let at = id
    let below = id
    while (parent.has(at)) {
      below = at
      at = parent.get(at) as number
    }
    const node = byId.get(below) as ProfileNode
    return frameName(node)
  }
  const stretches: Array<{ start: number; end: number; from: number; to: number }> = []
  let t = 0
  let open: { start: number; from: number } | undefined
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0
    const node = byId.get(profile.samples[i] as number) as ProfileNode
    const busy = !NOT_BUSY.has(node.callFrame.functionName)
    if (busy && open === undefined) open = { start: t, from: i }
    if (!busy && open !== undefined) {
      stretches.push({ start: open.start, end: t, from: open.from, to: i })
      open = undefined
    }
  }
  return stretches
    .filter((s) => s.end - s.start >= minMs * 1000)
    .sort((a, b) => b.end - b.start - (a.end - a.start))
    .slice(0, top)
    .map((s) => {
      const self = new Map<string, number>()
      const entries = new Map<string, number>()
      for (let i = s.from; i < s.to; i++) {
        const id = profile.samples[i] as number
        const node = byId.get(id) as ProfileNode
        // A sample's time is the gap to the next sample.
        const us = profile.timeDeltas[i + 1] ?? 0
        const name = frameName(node)
        self.set(name, (self.get(name) ?? 0) + us)
        const entry = ENGINE.has(node.callFrame.functionName) ? node.callFrame.functionName : entryOf(id)
        entries.set(entry, (entries.get(entry) ?? 0) + us)
      }
      const ranked = (m: Map<string, number>): Array<[string, number]> =>
        [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, functionsShown).map(([k, v]) => [k, v / 1000])
      return { startMs: s.start / 1000, durationMs: (s.end - s.start) / 1000, functions: ranked(self), entries: ranked(entries) }
    })
}

function main(argv: string[]): void {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { top: { type: 'string', default: '5' }, functions: { type: 'string', default: '12' } } })
  const file = positionals[0]
  if (file === undefined) throw new Error('usage: profile-stalls <file.cpuprofile> [--top 5] [--functions 12]')
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const stalls = findStalls(profile, Number(values.top), Number(values.functions))
  if (stalls.length === 0) process.stdout.write('no busy stretch of 5 ms or more\n')
  for (const s of stalls) {
    process.stdout.write(`\n${s.durationMs.toFixed(1)} ms busy from ${(s.startMs / 1000).toFixed(3)} s\n  self time:\n`)
    for (const [name, ms] of s.functions) process.stdout.write(`    ${ms.toFixed(1).padStart(7)} ms  ${name}\n`)
    process.stdout.write('  entered from:\n')
    for (const [name, ms] of s.entries) process.stdout.write(`    ${ms.toFixed(1).padStart(7)} ms  ${name}\n`)
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '')
if (invokedDirectly) main(process.argv.slice(2))
