export {
  BYTES_PER_SAMPLE,
  DTMF_DIGITS,
  DTMF_PAYLOAD_LENGTH,
  HEADER_LENGTH,
  Kind,
  MAX_PAYLOAD_LENGTH,
  UUID_PAYLOAD_LENGTH,
  audioKindForSampleRate,
  bytesPerMs,
  isAudioKind,
  sampleRateOfKind,
  type KnownKind,
} from './constants.js'
export {
  decodeFrame,
  uuidToBytes,
  uuidToString,
  type AudioFrame,
  type DtmfFrame,
  type ErrorFrame,
  type Frame,
  type HangupFrame,
  type UnknownFrame,
  type UuidFrame,
} from './frame.js'
export { FrameParser, type FrameHandler, type FrameParserOptions } from './frame-parser.js'
export { encodeAudio, encodeDtmf, encodeFrame, encodeHangup, encodeUuid } from './frame-encoder.js'
