/** How the tools name AudioSocket kinds in reports: "0x10" and "audio 8 kHz". */
import { Kind, sampleRateOfKind } from '../audiosocket/index.js'

export function kindName(kind: number): string {
  const rate = sampleRateOfKind(kind)
  if (rate !== undefined) return `audio ${rate / 1000} kHz`
  switch (kind) {
    case Kind.Hangup:
      return 'hangup'
    case Kind.Uuid:
      return 'uuid'
    case Kind.Dtmf:
      return 'dtmf'
    case Kind.Error:
      return 'error'
    default:
      return 'unknown'
  }
}

export function hexKind(kind: number): string {
  return `0x${kind.toString(16).padStart(2, '0')}`
}
