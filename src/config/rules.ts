/**
 * What no single setting can check on its own: the rules between settings. They run once every
 * setting is valid by itself: a rule about an invalid value would only add noise to the problem
 * that value already has.
 */
import { ariSettingProblems } from './ari-settings.js'
import { webhookFormatProblems } from './delivery-settings.js'
import type { Settings } from './schema.js'

export function crossSettingProblems(settings: Settings): string[] {
  const problems: string[] = []
  // No rule here says which Soniox model takes which option: models come and go faster than this
  // code, so the options go as set and Soniox's answer (a 400, logged once per cause) is the verdict.
  if (settings.audiosocket.slinEncoding !== 'slin' && settings.audiosocket.slinSampleRate !== 8000) {
    problems.push('AUDIOSOCKET_SLIN_ENCODING (audiosocket.slinEncoding): G.711 (mulaw, alaw) is 8 kHz; unset AUDIOSOCKET_SLIN_SAMPLE_RATE or set it to 8000')
  }
  if (settings.admission.requireRegistration && (settings.http.token === null || settings.http.port === 0)) {
    problems.push('REQUIRE_REGISTRATION (admission.requireRegistration): needs the HTTP endpoint (HTTP_PORT not 0) and HTTP_TOKEN, or no call could ever be registered')
  }
  problems.push(...ariSettingProblems(settings))
  problems.push(...webhookFormatProblems(settings))
  return problems
}
