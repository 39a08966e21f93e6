/**
 * Loading: defaults, then the JSON file (CONFIG_FILE or --config), then aliases, then the
 * environment. Convict merges the sources and coerces text; each setting's own format then checks
 * its value here, so every problem is a line naming the variable the operator set (or the file
 * key) and the expected form, and all of them are reported together in one
 * AppError(ERR_CONFIG_INVALID).
 *
 * Only this module and `cli/` read `process.env` (here: the `env` they pass in).
 */
import convict from 'convict'
import { AppError } from '../shared/errors.js'
import { resolveAriConfig } from './ari-settings.js'
import { readJsonFile } from './json-file.js'
import { crossSettingProblems } from './rules.js'
import { describeSettings, schema, type Config, type Settings } from './schema.js'
import { forEachSetting, isSetting, settingValues, type Format, type Setting, type SettingTree } from './setting.js'

/**
 * Other names accepted: AVR's variable names, so an AVR user can switch by changing one dialplan
 * line, and earlier names of renamed settings.
 */
const ENV_ALIASES: Record<string, string> = {
  SONIOX_SPEECH_RECOGNITION_MODEL: 'soniox.model',
  SONIOX_SPEECH_RECOGNITION_LANGUAGE: 'soniox.languageHints',
  SHUTDOWN_TIMEOUT_MS: 'shutdown.flushTimeoutMs',
}

/**
 * Variables earlier versions read and this one does not. Nothing fails on them (convict ignores
 * unknown variables), so without a warning an operator would believe they still act.
 */
const RETIRED_ENV: Record<string, string> = {
  WEBHOOK_MAX_ATTEMPTS:
    'a failed delivery is now retried until it is WEBHOOK_MAX_AGE old (default 24h), then written to the dead-letter file; remove WEBHOOK_MAX_ATTEMPTS',
}

/** Retired variables set in `env`, each with what replaced it: for a warning at start and in `check`. */
export function retiredSettings(env: NodeJS.ProcessEnv): Array<{ env: string; advice: string }> {
  return Object.entries(RETIRED_ENV)
    .filter(([name]) => env[name] !== undefined)
    .map(([name, advice]) => ({ env: name, advice }))
}

export interface LoadOptions {
  env: NodeJS.ProcessEnv
  /** Path of a JSON config file (CONFIG_FILE or --config); its keys follow the dotted keys in the README. */
  configFile?: string | undefined
}

/**
 * Builds the configuration or throws an AppError(ERR_CONFIG_INVALID) whose message lists every
 * problem, each naming the environment variable (and file key) and the expected form.
 */
export function loadConfig(options: LoadOptions): Config {
  const settings = loadSettings(options)
  const { contextFile, ...soniox } = settings.soniox
  return deepFreeze({ ...settings, soniox: { ...soniox, context: contextFile?.context ?? null }, ari: resolveAriConfig(settings.ari, settings.audiosocket) })
}

/**
 * The settings in effect as the variables and the file give them, checked (as `loadConfig`, which
 * builds the `Config` from them): what `settings --json` shows.
 */
export function loadSettings(options: LoadOptions): Settings {
  const merged = convict(CONVICT_SCHEMA, { env: options.env, args: [] })
  const problems: string[] = []

  const configFile = options.configFile ?? options.env.CONFIG_FILE
  if (configFile) {
    const file = readJsonFile(configFile)
    if ('problem' in file) problems.push(`CONFIG_FILE (${configFile}): ${file.problem}`)
    else if (typeof file.value !== 'object' || file.value === null) problems.push(`CONFIG_FILE (${configFile}): must hold a JSON object of settings`)
    else {
      const { known, unknown } = splitFileKeys(file.value, schema)
      problems.push(...unknown)
      merged.load(known)
    }
  }
  const envNames = applyAliases(merged, options.env)

  const properties = merged.getProperties()
  const checked = new Map<string, unknown>()
  forEachSetting(schema, (key, setting) => {
    // Every key is there: the defaults give the whole shape and only declared keys were loaded.
    const value = key.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], properties)
    try {
      checked.set(key, setting.format.check(value))
    } catch (err) {
      const messages = err instanceof AggregateError ? err.errors.map((e: Error) => e.message) : [(err as Error).message]
      for (const message of messages) problems.push(problemLine(envNames.get(key) ?? setting.env, key, setting, message, value))
    }
  })
  if (problems.length > 0) throw invalid(problems)

  const settings: Settings = settingValues(schema, (key) => checked.get(key))
  problems.push(...crossSettingProblems(settings))
  if (problems.length > 0) throw invalid(problems)
  return settings
}

function invalid(problems: string[]): AppError {
  return new AppError('ERR_CONFIG_INVALID', `invalid configuration:\n  ${problems.join('\n  ')}`)
}

/** `ENV (key): what is expected: value was "..."`; a sensitive setting's value is never shown. */
function problemLine(env: string, key: string, setting: Setting<unknown>, message: string, value: unknown): string {
  const shown = setting.sensitive === true || value === undefined || value === null || value === '' ? undefined : (setting.format.show ?? JSON.stringify)(value)
  return `${env} (${key}): ${message}${shown === undefined ? '' : `: value was ${shown}`}`
}

/**
 * Loads the aliases set without their canonical variable: above the file, below the canonical
 * variable (which convict re-applies on every load). Returns, per setting key, the variable the
 * operator actually used, so a problem names what they wrote.
 */
function applyAliases(merged: convict.Config<Record<string, unknown>>, env: NodeJS.ProcessEnv): Map<string, string> {
  const envNames = new Map(describeSettings().map((s) => [s.key, s.env]))
  const aliasValues: Record<string, unknown> = {}
  for (const [alias, key] of Object.entries(ENV_ALIASES)) {
    const raw = env[alias]
    const canonical = envNames.get(key)
    if (raw !== undefined && (canonical === undefined || env[canonical] === undefined)) {
      setPath(aliasValues, key, raw)
      envNames.set(key, alias)
    }
  }
  if (Object.keys(aliasValues).length > 0) merged.load(aliasValues)
  return envNames
}

/**
 * Splits a config file into the part the schema declares, which convict loads, and a problem per
 * key it does not declare or per group the file gives a plain value. Only the declared part is
 * loaded: a group replaced by a value would break convict applying the environment onto it (and an
 * array at the top is keys "0", "1", which are no settings).
 */
function splitFileKeys(value: object, tree: SettingTree, prefix = ''): { known: Record<string, unknown>; unknown: string[] } {
  const known: Record<string, unknown> = {}
  const unknown: string[] = []
  for (const [name, item] of Object.entries(value)) {
    const key = prefix + name
    const node = Object.hasOwn(tree, name) ? tree[name] : undefined
    if (node === undefined) unknown.push(`config file key "${key}" is not a known setting (see README, "Settings")`)
    else if (isSetting(node)) known[name] = item
    else if (typeof item === 'object' && item !== null && !Array.isArray(item)) {
      const group = splitFileKeys(item, node, `${key}.`)
      known[name] = group.known
      unknown.push(...group.unknown)
    } else unknown.push(`config file key "${key}" must be an object of settings (see README, "Settings")`)
  }
  return { known, unknown }
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.')
  let node = target
  for (const part of parts.slice(0, -1)) {
    node = (node[part] ??= {}) as Record<string, unknown>
  }
  node[parts[parts.length - 1] as string] = value
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

// ---------------------------------------------------------------------------------------------
// The schema as convict reads it: the format by name, so convict finds its coercion.

function toConvictSchema(tree: SettingTree): convict.Schema<Record<string, unknown>> {
  return Object.fromEntries(
    Object.entries(tree).map(([name, node]) => [
      name,
      isSetting(node) ? { format: node.format.name, default: node.default, env: node.env, doc: node.doc, sensitive: node.sensitive === true } : toConvictSchema(node),
    ]),
  )
}

/** Convict keeps formats in one global table; each of ours is registered once, under its unique name. */
function registerFormats(tree: SettingTree): void {
  const formats = new Map<string, Format<unknown>>()
  forEachSetting(tree, (_key, setting) => formats.set(setting.format.name, setting.format))
  for (const format of formats.values()) {
    const coerce = format.coerce
    convict.addFormat({
      name: format.name,
      // Not called by loadConfig, which checks each value itself; given because convict requires one.
      validate: (value: unknown) => void format.check(value),
      ...(coerce === undefined ? {} : { coerce: (value: unknown) => (typeof value === 'string' ? coerce(value) : value) }),
    })
  }
}

registerFormats(schema)
const CONVICT_SCHEMA = toConvictSchema(schema)
