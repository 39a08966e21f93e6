/**
 * The whole schema, one area per file, and the types derived from it: `Settings` (what the
 * variables and the file hold) and `Config` (what the service gets: the same, with the Soniox
 * context file's path replaced by the context it holds, and ARI_EXTERNAL_HOST resolved).
 */
import type { SonioxContext } from '../shared/soniox-context.js'
import { ariSettings, type AriConfig } from './ari-settings.js'
import { audiosocketSettings } from './audiosocket-settings.js'
import { eventsSettings, spoolSettings, transcriptSettings, webhookSettings } from './delivery-settings.js'
import { admissionSettings, captureSettings, httpSettings, logLevelSetting, shutdownSettings } from './operations-settings.js'
import { forEachSetting, type SettingValues } from './setting.js'
import { sonioxSettings } from './soniox-settings.js'

/** In the order `settings` lists them and the README documents them. */
export const schema = {
  audiosocket: audiosocketSettings,
  soniox: sonioxSettings,
  webhook: webhookSettings,
  spool: spoolSettings,
  events: eventsSettings,
  transcript: transcriptSettings,
  capture: captureSettings,
  logLevel: logLevelSetting,
  http: httpSettings,
  admission: admissionSettings,
  shutdown: shutdownSettings,
  ari: ariSettings,
}

export type Settings = SettingValues<typeof schema>

type SonioxConfig = Omit<Settings['soniox'], 'contextFile'> & {
  /** The content of SONIOX_CONTEXT_FILE, validated; goes into each start message as it is. */
  context: SonioxContext | null
}

/** The loaded, frozen configuration every part of the service is given (or a slice of). */
export type Config = Omit<Settings, 'soniox' | 'ari'> & { soniox: SonioxConfig; ari: AriConfig }

export interface SettingDescription {
  key: string
  env: string
  default: unknown
  doc: string
  sensitive: boolean
}

/** Every setting: its dotted key, environment variable, default and doc (for the README, `settings` and `--help`). */
export function describeSettings(): SettingDescription[] {
  const out: SettingDescription[] = []
  forEachSetting(schema, (key, s) => out.push({ key, env: s.env, default: s.default, doc: s.doc, sensitive: s.sensitive === true }))
  return out
}
