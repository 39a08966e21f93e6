/**
 * Configuration: one convict schema by area, read from environment variables and an optional JSON
 * file, checked once at start with every problem reported together, then frozen into a `Config`
 * whose type is derived from the schema.
 *
 *   setting.ts   the typed schema helper (a setting's type comes from its format)
 *   formats.ts   every format: coercion from text, check, how a bad value may be shown
 *   *-settings.ts, schema.ts   the settings by area; the derived Settings and Config types
 *   load.ts      sources, aliases, retired names, the problems; rules.ts what spans settings
 */
export { loadConfig, retiredSettings, type LoadOptions } from './load.js'
export { settingsInEffect, SECRET_SHOWN } from './in-effect.js'
export { describeSettings, type Config, type SettingDescription } from './schema.js'
export type { AriConfig } from './ari-settings.js'
