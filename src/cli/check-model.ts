/**
 * The `model` item of `audiosocket-soniox check`: asks Soniox's models API (src/soniox/models-api.ts)
 * on the API host of SONIOX_WEBSOCKET_URL's region whether SONIOX_MODEL exists, is an alias (of
 * which model), or is deprecated (with the replacement). Only a model Soniox does not list, or an
 * async one, fails the check: that is a model every session would be refused. When the API cannot
 * be asked (unreachable, an error, a proxy without it) the item is a warning: the `soniox` item's
 * real session proves the model either way.
 */
import { assessModel, fetchSonioxModels, type SonioxModelInfo } from '../soniox/models-api.js'

export interface ModelCheck {
  verdict: 'ok' | 'warn' | 'FAIL'
  text: string
}

export interface ModelCheckSettings {
  websocketUrl: string
  apiKey: string
  model: string
  connectTimeoutMs: number
}

export async function checkSonioxModel(s: ModelCheckSettings, fetchImpl?: typeof fetch): Promise<ModelCheck> {
  const answer = await fetchSonioxModels({ websocketUrl: s.websocketUrl, apiKey: s.apiKey, timeoutMs: s.connectTimeoutMs, ...(fetchImpl ? { fetch: fetchImpl } : {}) })
  if (!answer.ok) {
    return { verdict: 'warn', text: `could not ask Soniox's models API about ${s.model} (GET ${answer.url}): ${answer.message}${apiHint(answer.status)}` }
  }
  const assessment = assessModel(answer.models, s.model)
  const host = new URL(answer.url).host
  switch (assessment.kind) {
    case 'unknown':
      return {
        verdict: 'FAIL',
        text:
          `SONIOX_MODEL ${s.model} is not a Soniox model: Soniox refuses every session with it (400 "Invalid model specified."). ` +
          `${host} lists ${assessment.realTimeIds.length > 0 ? `these real-time models: ${assessment.realTimeIds.join(', ')}` : 'no real-time model'}`,
      }
    case 'async':
      return {
        verdict: 'FAIL',
        text: `SONIOX_MODEL ${s.model} is ${assessment.model.id === s.model ? 'an async model' : `an alias of the async model ${assessment.model.id}`}: the real-time WebSocket refuses it; use a real-time (stt-rt-*) model`,
      }
    case 'model': {
      const { model, aliasChain, danglingAlias, deprecated } = assessment
      const target = aliasChain.at(-1)
      const what = target === undefined ? `${s.model} exists${model.name ? ` (${model.name})` : ''}` : `${s.model} is an alias of ${aliasChain.join(', itself an alias of ')}`
      if (deprecated !== undefined) {
        const text = deprecated.id === s.model ? `${s.model}${deprecationText(deprecated)}` : `${what}; ${deprecated.id}${deprecationText(deprecated)}`
        return { verdict: 'warn', text }
      }
      if (danglingAlias) return { verdict: 'warn', text: `${what}, which ${host} does not list (a session shows whether Soniox still takes it)` }
      if (target !== undefined) return { verdict: 'ok', text: `${what}: calls are transcribed by ${target} (Soniox may move the alias to a newer model; SONIOX_MODEL=${target} pins it)` }
      return { verdict: 'ok', text: what }
    }
  }
}

/** " is deprecated (retires ...): set SONIOX_MODEL=... before it retires" */
function deprecationText(deprecated: SonioxModelInfo): string {
  const when = deprecated.retirementDate === undefined ? '' : ` (retires ${deprecated.retirementDate})`
  const instead =
    deprecated.replacement === undefined
      ? '; Soniox names no replacement: pick a current model before it retires'
      : `: set SONIOX_MODEL=${deprecated.replacement} before it retires`
  return ` is deprecated${when}${instead}`
}

function apiHint(status: number | undefined): string {
  if (status === 401) return ' (the key is refused here too: a wrong key, or a key of another region than SONIOX_WEBSOCKET_URL)'
  if (status === 404) return ' (no models API on that host: is SONIOX_WEBSOCKET_URL a Soniox host? The soniox item proves the model by a session)'
  return ' (the soniox item proves the model by a session)'
}
