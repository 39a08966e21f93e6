import type { RecognitionOptions } from '../../src/soniox/start-message.js'

/** Recognition options with every optional feature off: Soniox's defaults, as configured by default. */
export const MINIMAL_RECOGNITION: RecognitionOptions = Object.freeze({
  model: 'stt-rt-v6',
  languageHints: [],
  languageHintsStrict: false,
  context: null,
  endpointDetection: true,
  maxEndpointDelayMs: null,
  endpointSensitivity: null,
  endpointLatencyAdjustmentLevel: null,
  speakerDiarization: false,
  languageIdentification: false,
  translation: null,
})
