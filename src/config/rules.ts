/**
 * What no single setting can check on its own: rules between settings, and the files settings name
 * (read now, so a wrong file is reported at start rather than at the first call or request). They
 * run once every setting is valid by itself: a rule about an invalid value would only add noise
 * to the problem that value already has.
 */
import { readFileSync } from 'node:fs'
import { parseSonioxContext, type SonioxContext } from '../shared/soniox-context.js'
import { pemCertificates } from '../shared/validate.js'
import { readJsonFile } from './json-file.js'
import type { Settings } from './schema.js'

export function crossSettingProblems(settings: Settings): string[] {
  const problems: string[] = []
  const s = settings.soniox
  if ((s.endpointSensitivity !== null || s.endpointLatencyAdjustmentLevel !== null) && s.model !== 'stt-rt-v5') {
    problems.push(
      `SONIOX_ENDPOINT_SENSITIVITY / SONIOX_ENDPOINT_LATENCY_ADJUSTMENT_LEVEL: only stt-rt-v5 accepts them (SONIOX_MODEL is ${s.model}); unset them or use stt-rt-v5`,
    )
  }
  if (settings.audiosocket.slinEncoding !== 'slin' && settings.audiosocket.slinSampleRate !== 8000) {
    problems.push('AUDIOSOCKET_SLIN_ENCODING (audiosocket.slinEncoding): G.711 (mulaw, alaw) is 8 kHz; unset AUDIOSOCKET_SLIN_SAMPLE_RATE or set it to 8000')
  }
  if (settings.admission.requireRegistration && (settings.http.token === null || settings.http.port === 0)) {
    problems.push('REQUIRE_REGISTRATION (admission.requireRegistration): needs the HTTP endpoint (HTTP_PORT not 0) and HTTP_TOKEN, or no call could ever be registered')
  }
  return problems
}

/** WEBHOOK_CA_FILE must be readable PEM now, not at the first https request. */
export function caFileProblems(path: string | null): string[] {
  if (path === null) return []
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    return [`WEBHOOK_CA_FILE (webhook.caFile): ${path} cannot be read: ${(err as Error).message}`]
  }
  if (pemCertificates(text).length === 0) return [`WEBHOOK_CA_FILE (webhook.caFile): ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`]
  return []
}

/** The content of SONIOX_CONTEXT_FILE, checked here rather than refused by Soniox on every call. */
export function readSonioxContext(path: string | null): { context: SonioxContext | null; problems: string[] } {
  if (path === null) return { context: null, problems: [] }
  const setting = `SONIOX_CONTEXT_FILE (soniox.contextFile): ${path}`
  const file = readJsonFile(path)
  if ('problem' in file) return { context: null, problems: [`${setting} ${file.problem}`] }
  const parsed = parseSonioxContext(file.value, 'context')
  if ('problems' in parsed) return { context: null, problems: parsed.problems.map((problem) => `${setting}: ${problem}`) }
  return { context: parsed.context, problems: [] }
}
