/**
 * The settings in effect, as `audiosocket-soniox settings --json` prints them for automation: every
 * setting under its environment variable, in schema order, with the value the service would run
 * with (default, file, alias or variable), as the operator writes it (SONIOX_CONTEXT_FILE is its
 * path; ARI_EXTERNAL_HOST null means "the AudioSocket listener's"). Never shown: a sensitive
 * setting's value ("(secret)" when set, null when not) and the credentials in a URL (masked as
 * in the logs).
 */
import { loadSettings, type LoadOptions } from './load.js'
import { schema } from './schema.js'
import { forEachSetting, type Setting } from './setting.js'

/** What a set secret shows as. */
export const SECRET_SHOWN = '(secret)'

/** Every setting's value in effect, by environment variable; throws as loadConfig on invalid settings. */
export function settingsInEffect(options: LoadOptions): Record<string, unknown> {
  const settings = loadSettings(options)
  const out: Record<string, unknown> = {}
  forEachSetting(schema, (key, setting) => {
    const value = key.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], settings)
    out[setting.env] = shown(setting, value)
  })
  return out
}

function shown(setting: Setting<unknown>, value: unknown): unknown {
  if (setting.sensitive === true) {
    if (value === null || value === '') return null
    if (typeof value === 'object' && Object.keys(value as object).length === 0) return value
    return SECRET_SHOWN
  }
  // A file setting holds what it read besides its path: the path is what was set.
  if (typeof value === 'object' && value !== null && typeof (value as { path?: unknown }).path === 'string') return (value as { path: string }).path
  // URL formats show their value with the credentials masked.
  const text = value === null ? undefined : setting.format.show?.(value)
  if (text === undefined) return value
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
