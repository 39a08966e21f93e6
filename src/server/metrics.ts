/**
 * A tiny Prometheus registry: counters, gauges and histograms with fixed buckets, rendered in the
 * text exposition format (version 0.0.4). No dependency, no timers, nothing per scrape but the
 * rendering itself and the reads of collected series (a value read from a function at each scrape;
 * `beforeCollect` hooks run first, once per scrape, for sources several series share).
 *
 * Hot paths (a call's frames) must cost a plain addition: resolve a labelled child ONCE with
 * `child(...values)` and keep it; `inc()` on a child is then one field update. `child()` itself is a
 * Map lookup on the joined label values, fine for rare events (an error, a call's end) but not per
 * frame. Label values must come from small fixed sets (never a call id): every distinct combination
 * is a time series kept forever.
 */
import { AppError } from '../shared/errors.js'

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

export class CounterChild {
  value = 0
  inc(n = 1): void {
    this.value += n
  }
}

export class GaugeChild {
  value = 0
  set(v: number): void {
    this.value = v
  }
  inc(n = 1): void {
    this.value += n
  }
  dec(n = 1): void {
    this.value -= n
  }
}

export class HistogramChild {
  /** Per-bucket counts (not cumulative); the last slot is +Inf. */
  readonly counts: number[]
  sum = 0
  count = 0
  constructor(readonly buckets: readonly number[]) {
    this.counts = new Array<number>(buckets.length + 1).fill(0)
  }
  observe(v: number): void {
    let i = 0
    while (i < this.buckets.length && v > (this.buckets[i] as number)) i++
    this.counts[i] = (this.counts[i] as number) + 1
    this.sum += v
    this.count++
  }
}

type MetricType = 'counter' | 'gauge' | 'histogram'

abstract class Family<C> {
  private readonly children = new Map<string, { values: readonly string[]; child: C }>()

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    readonly labelNames: readonly string[],
  ) {
    if (!METRIC_NAME.test(name)) throw new AppError('ERR_METRICS_DEFINITION', `invalid metric name ${JSON.stringify(name)}`)
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label === 'le') throw new AppError('ERR_METRICS_DEFINITION', `invalid label name ${JSON.stringify(label)} on ${name}`)
    }
  }

  /** The series for these label values (in labelNames order), created at first use. Keep the result. */
  child(...values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new AppError('ERR_METRICS_DEFINITION', `${this.name} takes ${this.labelNames.length} label value(s), got ${values.length}`)
    }
    const key = values.join('\u0000')
    let entry = this.children.get(key)
    if (entry === undefined) {
      entry = { values: [...values], child: this.create() }
      this.children.set(key, entry)
    }
    return entry.child
  }

  protected abstract create(): C

  /** Sample lines of this family (without HELP/TYPE). */
  abstract samples(): string[]

  protected series(): Iterable<{ values: readonly string[]; child: C }> {
    return this.children.values()
  }

  protected labels(values: readonly string[], extra?: string): string {
    const parts = values.map((v, i) => `${this.labelNames[i]}="${escapeLabelValue(v)}"`)
    if (extra !== undefined) parts.push(extra)
    return parts.length === 0 ? '' : `{${parts.join(',')}}`
  }
}

/**
 * Read at each scrape for a collected (unlabelled) series; undefined leaves the sample out (a
 * source that cannot be read this time: the family's HELP and TYPE stay).
 */
export type Collect = () => number | undefined

export class Counter extends Family<CounterChild> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    /** When given, the (unlabelled) total is read from it at each scrape (it must never decrease). */
    private readonly collect?: Collect,
  ) {
    super(name, help, 'counter', labelNames)
    if (collect !== undefined && labelNames.length > 0) throw new AppError('ERR_METRICS_DEFINITION', `${name}: a collected counter has no labels`)
  }
  protected create(): CounterChild {
    return new CounterChild()
  }
  /** For an unlabelled counter. */
  inc(n = 1): void {
    this.child().inc(n)
  }
  samples(): string[] {
    if (this.collect !== undefined) return collectedSample(this.name, this.collect)
    return [...this.series()].map(({ values, child }) => `${this.name}${this.labels(values)} ${formatNumber(child.value)}`)
  }
}

export class Gauge extends Family<GaugeChild> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    /** When given, the (unlabelled) value is read from it at each scrape instead of being set. */
    private readonly collect?: Collect,
  ) {
    super(name, help, 'gauge', labelNames)
    if (collect !== undefined && labelNames.length > 0) throw new AppError('ERR_METRICS_DEFINITION', `${name}: a collected gauge has no labels`)
  }
  protected create(): GaugeChild {
    return new GaugeChild()
  }
  set(v: number): void {
    this.child().set(v)
  }
  inc(n = 1): void {
    this.child().inc(n)
  }
  dec(n = 1): void {
    this.child().dec(n)
  }
  samples(): string[] {
    if (this.collect !== undefined) return collectedSample(this.name, this.collect)
    return [...this.series()].map(({ values, child }) => `${this.name}${this.labels(values)} ${formatNumber(child.value)}`)
  }
}

export class Histogram extends Family<HistogramChild> {
  readonly buckets: readonly number[]

  constructor(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []) {
    super(name, help, 'histogram', labelNames)
    const sorted = [...buckets].sort((a, b) => a - b)
    if (sorted.length === 0 || sorted.some((b, i) => !Number.isFinite(b) || (i > 0 && b === sorted[i - 1]))) {
      throw new AppError('ERR_METRICS_DEFINITION', `${name}: buckets must be distinct finite numbers`)
    }
    this.buckets = sorted
  }
  protected create(): HistogramChild {
    return new HistogramChild(this.buckets)
  }
  observe(v: number): void {
    this.child().observe(v)
  }
  samples(): string[] {
    const out: string[] = []
    for (const { values, child } of this.series()) {
      let cumulative = 0
      this.buckets.forEach((bound, i) => {
        cumulative += child.counts[i] as number
        out.push(`${this.name}_bucket${this.labels(values, `le="${formatNumber(bound)}"`)} ${cumulative}`)
      })
      out.push(`${this.name}_bucket${this.labels(values, 'le="+Inf"')} ${child.count}`)
      out.push(`${this.name}_sum${this.labels(values)} ${formatNumber(child.sum)}`)
      out.push(`${this.name}_count${this.labels(values)} ${child.count}`)
    }
    return out
  }
}

export class Registry {
  private readonly families = new Map<string, Family<unknown>>()
  private readonly hooks: Array<() => void> = []

  counter(name: string, help: string, labelNames: readonly string[] = [], collect?: Collect): Counter {
    return this.add(new Counter(name, help, labelNames, collect))
  }

  gauge(name: string, help: string, labelNames: readonly string[] = [], collect?: Collect): Gauge {
    return this.add(new Gauge(name, help, labelNames, collect))
  }

  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []): Histogram {
    return this.add(new Histogram(name, help, buckets, labelNames))
  }

  /**
   * Runs at the start of every render, before any series is read: one read of a source several
   * collected series share (process.cpuUsage(), /proc/self/status), so that they agree.
   */
  beforeCollect(hook: () => void): void {
    this.hooks.push(hook)
  }

  /** The whole registry in the Prometheus text format, families in registration order. */
  render(): string {
    for (const hook of this.hooks) hook()
    const lines: string[] = []
    for (const family of this.families.values()) {
      lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`, ...family.samples())
    }
    return `${lines.join('\n')}\n`
  }

  private add<F extends Family<unknown>>(family: F): F {
    if (this.families.has(family.name)) throw new AppError('ERR_METRICS_DEFINITION', `metric ${family.name} is registered twice`)
    this.families.set(family.name, family)
    // Unlabelled series exist from the start: a counter that is still 0 is a fact worth exporting.
    if (family.labelNames.length === 0) family.child()
    return family
  }
}

function collectedSample(name: string, collect: Collect): string[] {
  const value = collect()
  return value === undefined ? [] : [`${name} ${formatNumber(value)}`]
}

/** The Content-Type of `Registry.render()`. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

export function formatNumber(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  return String(v)
}

function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}
