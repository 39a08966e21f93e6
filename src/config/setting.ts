/**
 * The typed schema helper. A setting is declared once, with its format; the type of its value is
 * the type its format's `check` returns, so the `Config` type is derived from the schema and never
 * written a second time beside it.
 *
 *   port: setting(tcpPort, { env: 'AUDIOSOCKET_PORT', default: 9092, doc: '...' })   // -> number
 */

/**
 * How a setting is read. Convict finds `coerce` by `name`; `check` is run by `load.ts` itself, so
 * each problem names the environment variable the operator set.
 */
export interface Format<T> {
  /** Unique among the formats: convict looks the coercion up by it. */
  readonly name: string
  /**
   * Text (an environment variable, a string in the file) to a value. Text that does not parse is
   * returned unchanged, so the problem shows what the operator wrote.
   */
  readonly coerce?: (text: string) => unknown
  /**
   * The value, checked and in its final form; throws an Error saying what is expected (an
   * AggregateError for several problems, one line each).
   */
  readonly check: (value: unknown) => T
  /**
   * The value as a problem line may show it (default JSON); URL formats mask credentials, and
   * undefined leaves it out (a file format's problem names the path already).
   */
  readonly show?: (value: unknown) => string | undefined
}

export interface Setting<T> {
  readonly format: Format<T>
  readonly env: string
  /** The value, or text as an operator would write it ('24h', '16M'): it is coerced like theirs. */
  readonly default: NoInfer<T> | string
  /** One line for the README, `settings` and `--help`. */
  readonly doc: string
  /** Never shown: not in problems, not by `settings`. */
  readonly sensitive?: boolean
}

export function setting<T>(format: Format<T>, spec: Omit<Setting<T>, 'format'>): Setting<T> {
  return { format, ...spec }
}

/** Settings grouped by area, as nested objects; a key path (`soniox.model`) is the file key. */
export interface SettingTree {
  readonly [key: string]: Setting<unknown> | SettingTree
}

/** The values a tree of settings holds once loaded: each one of its format's type. */
export type SettingValues<S> = { [K in keyof S]: S[K] extends Setting<infer T> ? T : SettingValues<S[K]> }

export function isSetting(node: Setting<unknown> | SettingTree): node is Setting<unknown> {
  return typeof node.env === 'string'
}

/** Visits every setting of `tree` in declaration order with its dotted key. */
export function forEachSetting(tree: SettingTree, visit: (key: string, setting: Setting<unknown>) => void, prefix = ''): void {
  for (const [name, node] of Object.entries(tree)) {
    if (isSetting(node)) visit(prefix + name, node)
    else forEachSetting(node, visit, `${prefix}${name}.`)
  }
}

/** Builds the values of `tree` from `valueOf(key, setting)`, which must return what the setting's format checked. */
export function settingValues<S extends SettingTree>(tree: S, valueOf: (key: string, setting: Setting<unknown>) => unknown, prefix = ''): SettingValues<S> {
  const values: Record<string, unknown> = {}
  for (const [name, node] of Object.entries(tree)) {
    values[name] = isSetting(node) ? valueOf(prefix + name, node) : settingValues(node, valueOf, `${prefix}${name}.`)
  }
  // The one place the type is asserted: TypeScript cannot follow a mapped type through a walk at
  // run time. Each value came from its own setting's `check`, which is what SettingValues states.
  return values as SettingValues<S>
}
