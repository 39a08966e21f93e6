export { walkFrames, type FrameWalk, type WalkedFrame } from './walk-frames.js'
export { CaptureServer, type CapturedConnection, type CaptureServerLogger, type CaptureServerOptions } from './capture-server.js'
export { Scheduler } from './replay/scheduler.js'
export { planReplay, type ReplayPlan, type ReplayStep } from './replay/replay-plan.js'
export {
  replayCall,
  runReplays,
  type CallReplayOptions,
  type CallReplayResult,
  type ReplayRunOptions,
  type ReplaySummary,
  type ReplayWrite,
  type ServerEnding,
} from './replay/replayer.js'
export { inspectCapture, type CaptureReport, type DirectionReport, type Violation } from './inspect-capture.js'
export { formatReport } from './format-report.js'
export { hexKind, kindName } from './kind-names.js'
export { captureAudio, encodeWav, type CaptureAudio } from './wav.js'
export { DEFAULT_AUDIOSOCKET_PORT, importPacketCapture, type ImportedCall, type ImportFailure, type ImportResult } from './pcap/import.js'
