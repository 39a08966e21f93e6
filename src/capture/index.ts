export {
  CAPTURE_EXTENSION,
  CAPTURE_FORMAT_VERSION,
  CAPTURE_MAGIC,
  decodeCapture,
  directionStream,
  encodeCapture,
  encodeCapturePreamble,
  encodeRecord,
  readCaptureFile,
  writeCaptureFile,
  type Capture,
  type CaptureHeader,
  type CaptureMode,
  type CaptureRecord,
  type Direction,
  type DirectionStream,
  type Endpoint,
  type RecordType,
} from './format.js'
export { offsetTimeIndex, walkFrames, type FrameWalk, type WalkedFrame } from './frame-walk.js'
export { CaptureRecorder, createCaptureTaps, type CaptureFileOps, type CaptureTap, type CaptureTapFactory, type RecorderLogger } from './recorder.js'
export { CaptureServer, type CapturedConnection, type CaptureServerOptions } from './capture-server.js'
export {
  Scheduler,
  planReplay,
  replayCall,
  runReplays,
  systemClock,
  type CallReplayOptions,
  type CallReplayResult,
  type ReplayClock,
  type ReplayPlan,
  type ReplayRunOptions,
  type ReplaySummary,
} from './replayer.js'
export { formatReport, inspectCapture, kindName, type CaptureReport, type DirectionReport, type Violation } from './inspect.js'
export { captureAudio, encodeWav, type CaptureAudio } from './wav.js'
export { DEFAULT_AUDIOSOCKET_PORT, importPacketCapture, type ImportedCall, type ImportFailure, type ImportResult } from './pcap/import.js'
