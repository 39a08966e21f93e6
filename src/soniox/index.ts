/** What the rest of the server sees of the Soniox layer: the shapes a call's transcript comes in. */
export type { AudioEncoding, AudioFormat, RecognitionOptions } from './start-message.js'
export type { Utterance, UtteranceReason, UtteranceToken } from './transcript-assembler.js'
export type { TranscriberStats } from './resilient-transcriber.js'
export type { TranscriptListener, TranscriptPartial, TranscriptionFailure } from './soniox-transcriber.js'
export { bytesPerSample } from './start-message.js'
