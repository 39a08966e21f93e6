/**
 * `audiosocket-soniox to-wav`: the audio of one direction of a capture as a WAV file, so a person
 * can listen to exactly what Asterisk sent (or, with direction 'out', what the server sent back).
 *
 * By default the payloads are concatenated as they are: the WAV's time axis is then call audio
 * time, the clock of every `*_ms` field in the events, so `start_ms` of an utterance is where to
 * seek. `fillGaps` instead inserts silence where no audio flowed for more than 40 ms (hold, the
 * pause while DTMF plays), which gives the call's wall-clock timeline.
 */
import { BYTES_PER_SAMPLE, Kind, sampleRateOfKind } from '../audiosocket/index.js'
import { AppError } from '../shared/errors.js'
import { directionStream, offsetTimeIndex, type Capture, type Direction } from '../capture/format.js'
import { GAP_THRESHOLD_MS } from './inspect-capture.js'
import { walkFrames } from './walk-frames.js'

const WAV_HEADER_LENGTH = 44

/** A canonical 44-byte-header RIFF/WAVE file of 16-bit little-endian mono PCM. */
export function encodeWav(pcm: Buffer, sampleRate: number): Buffer {
  const dataLength = pcm.length - (pcm.length % BYTES_PER_SAMPLE)
  const out = Buffer.alloc(WAV_HEADER_LENGTH + dataLength)
  out.write('RIFF', 0, 'latin1')
  out.writeUInt32LE(36 + dataLength, 4)
  out.write('WAVE', 8, 'latin1')
  out.write('fmt ', 12, 'latin1')
  out.writeUInt32LE(16, 16) // fmt chunk size
  out.writeUInt16LE(1, 20) // PCM
  out.writeUInt16LE(1, 22) // mono
  out.writeUInt32LE(sampleRate, 24)
  out.writeUInt32LE(sampleRate * BYTES_PER_SAMPLE, 28) // byte rate
  out.writeUInt16LE(BYTES_PER_SAMPLE, 32) // block align
  out.writeUInt16LE(16, 34) // bits per sample
  out.write('data', 36, 'latin1')
  out.writeUInt32LE(dataLength, 40)
  pcm.copy(out, WAV_HEADER_LENGTH, 0, dataLength)
  return out
}

export interface CaptureAudio {
  pcm: Buffer
  sampleRate: number
  kind: number
  frames: number
  /** Silence inserted for gaps (fillGaps), in ms. */
  filledMs: number
}

export interface AudioOptions {
  direction?: Direction
  /** Rate of 0x10 audio (16000 for Asterisk before 20.17 dialled with c(slin16)). Default 8000. */
  slinSampleRate?: number
  fillGaps?: boolean
}

/**
 * The audio payloads of one direction, in order. Throws ERR_CAPTURE_NO_AUDIO when there are
 * none, and ERR_CAPTURE_CORRUPT when the audio changes rate mid-call (a WAV has one rate).
 */
export function captureAudio(capture: Capture, options: AudioOptions = {}): CaptureAudio {
  const direction = options.direction ?? 'in'
  const stream = directionStream(capture, direction)
  const timeAt = offsetTimeIndex(stream.reads)
  const parts: Buffer[] = []
  let sampleRate: number | undefined
  let kind: number | undefined
  let frames = 0
  let filledMs = 0
  /** Arrival time of the previous audio frame (us). */
  let previous: number | undefined
  for (const f of walkFrames(stream.bytes).frames) {
    const rate = f.kind === Kind.Slin8 ? (options.slinSampleRate ?? 8000) : sampleRateOfKind(f.kind)
    if (rate === undefined || f.length === 0) continue
    if (sampleRate === undefined) {
      sampleRate = rate
      kind = f.kind
    } else if (rate !== sampleRate) {
      throw new AppError('ERR_CAPTURE_CORRUPT', `the audio changes from ${sampleRate} Hz to ${rate} Hz at stream offset ${f.offset}; a WAV file has one rate`)
    }
    const atUs = timeAt(f.offset + 2 + f.length)
    const frameMs = (f.length / BYTES_PER_SAMPLE / rate) * 1000
    if (options.fillGaps && previous !== undefined && (atUs - previous) / 1000 > GAP_THRESHOLD_MS) {
      // A frame is sent when its audio is complete: the silence ends where this frame's audio starts.
      const silenceMs = (atUs - previous) / 1000 - frameMs
      if (silenceMs > 0) {
        const samples = Math.round((silenceMs * rate) / 1000)
        parts.push(Buffer.alloc(samples * BYTES_PER_SAMPLE))
        filledMs += (samples / rate) * 1000
      }
    }
    parts.push(f.payload)
    frames++
    previous = atUs
  }
  if (sampleRate === undefined || kind === undefined) {
    throw new AppError('ERR_CAPTURE_NO_AUDIO', `the capture holds no audio from ${direction === 'in' ? 'Asterisk' : 'the server'}`)
  }
  return { pcm: Buffer.concat(parts), sampleRate, kind, frames, filledMs: Math.round(filledMs) }
}
