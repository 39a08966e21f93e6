/** Checks on what the server sent back to an AudioSocket peer. */
import { FrameParser, type Frame } from '../../src/audiosocket/index.js'

/** Parses bytes the server sent; throws if they are not whole, valid frames. */
export function framesSentBack(bytes: Buffer): Frame[] {
  const parser = new FrameParser()
  const frames = parser.push(bytes)
  if (parser.error) throw parser.error
  parser.end()
  return frames
}

/** True when every frame is audio of `kind`, `size` bytes of zeros: a silence frame. */
export function allSilence(frames: Frame[], kind: number, size: number): boolean {
  return frames.every((f) => f.type === 'audio' && f.kind === kind && f.payload.length === size && f.payload.every((b) => b === 0))
}
