/**
 * What a capture replays as: Asterisk's side of it, step by step, with what the replay needs to
 * report (frame boundaries, the capture's UUID, whether the recorded server ended the call).
 * Built once per capture and shared by every call replaying it.
 */
import { HEADER_LENGTH, Kind, UUID_PAYLOAD_LENGTH } from '../../audiosocket/index.js'
import { directionStream, type Capture } from '../../capture/format.js'
import { walkFrames } from '../walk-frames.js'

export type ReplayStep =
  | { type: 'data'; atUs: number; bytes: Buffer; streamOffset: number }
  | { type: 'fin'; atUs: number }
  | { type: 'reset'; atUs: number }

export interface ReplayPlan {
  name: string
  /** Asterisk's side of the capture, in time order, ending with its FIN or reset if recorded. */
  steps: ReplayStep[]
  inboundBytes: number
  /** Stream end offset of every complete frame Asterisk sent, ascending (to count frames sent). */
  frameEnds: number[]
  /** The capture's own UUID, when the stream starts with a well-formed UUID frame. */
  uuid: string | undefined
  /** The recorded server ended the call (hangup frame, FIN or reset from its side). */
  serverEndedInCapture: boolean
}

/** Where the call's UUID sits in Asterisk's stream: the payload of the first frame. */
const UUID_START = HEADER_LENGTH
const UUID_END = UUID_START + UUID_PAYLOAD_LENGTH

export function planReplay(capture: Capture, name: string): ReplayPlan {
  const steps: ReplayStep[] = []
  let streamOffset = 0
  let serverEndedInCapture = false
  for (const r of capture.records) {
    if (r.direction === 'out') {
      if (r.type !== 'data') serverEndedInCapture = true
      continue
    }
    if (r.type === 'data') {
      if (r.data.length === 0) continue
      steps.push({ type: 'data', atUs: r.offsetUs, bytes: r.data, streamOffset })
      streamOffset += r.data.length
    } else {
      // Asterisk's side ends here; anything it "sent" after that cannot be replayed.
      steps.push({ type: r.type, atUs: r.offsetUs })
      break
    }
  }
  const inbound = directionStream(capture, 'in')
  const walk = walkFrames(inbound.bytes.subarray(0, streamOffset))
  const frameEnds = walk.frames.map((f) => f.offset + HEADER_LENGTH + f.length)
  const outbound = directionStream(capture, 'out')
  if (walkFrames(outbound.bytes).frames.some((f) => f.kind === Kind.Hangup)) serverEndedInCapture = true
  const first = walk.frames[0]
  return {
    name,
    steps,
    inboundBytes: streamOffset,
    frameEnds,
    uuid: first?.frame?.type === 'uuid' ? first.frame.uuid : undefined,
    serverEndedInCapture,
  }
}

/** Stream bytes of step `bytes` with the UUID (stream offsets 3..19) replaced by `uuid`. */
export function withUuid(bytes: Buffer, streamOffset: number, uuid: Buffer): Buffer {
  const end = streamOffset + bytes.length
  if (end <= UUID_START || streamOffset >= UUID_END) return bytes
  const copy = Buffer.from(bytes)
  for (let i = Math.max(streamOffset, UUID_START); i < Math.min(end, UUID_END); i++) {
    copy[i - streamOffset] = uuid[i - UUID_START] as number
  }
  return copy
}
