/**
 * A strict reader of the Prometheus text exposition format (0.0.4), independent of src/server/metrics.ts:
 * it fails on any line a Prometheus server would reject, on a sample without its # TYPE, and on a
 * histogram whose buckets are not cumulative or do not end in +Inf = _count.
 */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Exposition {
  types: Map<string, string>
  help: Map<string, string>
  samples: Sample[]
  /** The value of the one sample with this name and exactly these labels; throws if absent. */
  value(name: string, labels?: Record<string, string>): number
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y

export function parseExposition(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline')
  const types = new Map<string, string>()
  const help = new Map<string, string>()
  const samples: Sample[] = []
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      const [, name = '', ...rest] = line.split(' ').slice(1)
      help.set(name, rest.join(' '))
      continue
    }
    if (line.startsWith('# TYPE ')) {
      const [name = '', type = ''] = line.split(' ').slice(2)
      if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type)) throw new Error(`bad type in ${JSON.stringify(line)}`)
      if (types.has(name)) throw new Error(`${name} has two # TYPE lines`)
      types.set(name, type)
      continue
    }
    const m = SAMPLE.exec(line)
    if (m === null) throw new Error(`not a valid sample line: ${JSON.stringify(line)}`)
    const [, name = '', , labelText = '', valueText = ''] = m
    const labels: Record<string, string> = {}
    LABEL.lastIndex = 0
    while (LABEL.lastIndex < labelText.length) {
      const l = LABEL.exec(labelText)
      if (l === null) throw new Error(`bad labels in ${JSON.stringify(line)}`)
      labels[l[1] as string] = (l[2] as string).replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
    }
    const family = familyOf(name, types)
    if (family === undefined) throw new Error(`sample ${name} comes before its # TYPE`)
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText)
    samples.push({ name, labels, value })
  }
  checkHistograms(types, samples)
  return {
    types,
    help,
    samples,
    value(name, want = {}) {
      const found = samples.filter((s) => s.name === name && sameLabels(s.labels, want))
      if (found.length !== 1) throw new Error(`${found.length} samples named ${name} with labels ${JSON.stringify(want)}`)
      return (found[0] as Sample).value
    },
  }
}

function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name
  const base = name.replace(/_(bucket|sum|count)$/, '')
  return types.get(base) === 'histogram' ? base : undefined
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a)
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k])
}

function checkHistograms(types: Map<string, string>, samples: Sample[]): void {
  for (const [name, type] of types) {
    if (type !== 'histogram') continue
    const buckets = samples.filter((s) => s.name === `${name}_bucket`)
    const key = (labels: Record<string, string>): string => JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort())
    for (const series of new Set(buckets.map((b) => key(b.labels)))) {
      const own = buckets.filter((b) => key(b.labels) === series)
      const les = own.map((b) => (b.labels.le === '+Inf' ? Infinity : Number(b.labels.le)))
      if (les.some((le, i) => i > 0 && le <= (les[i - 1] as number))) throw new Error(`${name}: buckets out of order`)
      if (les.at(-1) !== Infinity) throw new Error(`${name}: no +Inf bucket`)
      if (own.some((b, i) => i > 0 && b.value < (own[i - 1] as Sample).value)) throw new Error(`${name}: buckets not cumulative`)
      const count = samples.find((s) => s.name === `${name}_count` && key(s.labels) === series)
      if (count?.value !== own.at(-1)?.value) throw new Error(`${name}: +Inf bucket differs from _count`)
    }
  }
}

/** GET http://127.0.0.1:<port>/metrics, parsed strictly. */
export async function scrapeMetrics(port: number): Promise<Exposition> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`)
  return parseExposition(await res.text())
}
