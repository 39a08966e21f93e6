/**
 * Spots G.711 labelled as slin. `Dial(AudioSocket/...)` without `c(slin)` from a mu-law or A-law
 * caller sends the G.711 bytes as kind 0x10 in 160-byte frames every 20 ms (verified on Asterisk
 * 22.10.1). Read as 8 kHz slin, 160 bytes are 10 ms, so the audio's own time runs at half the wall
 * clock and Soniox is sent noise. Real 8 kHz slin in 160-byte frames (ptime 10) comes every 10 ms,
 * and any other slin frame size is not 160, so the two never look alike for a whole second.
 */

/** 160 bytes: 20 ms of G.711 (8,000 one-byte samples a second), or 10 ms of 8 kHz slin. */
export const G711_FRAME_BYTES = 160

/** Wall time watched from the first frame before deciding. */
const WINDOW_MS = 1000
/** Fewer frames than this in the window decide nothing (a caller on hold, DTX). */
const MIN_FRAMES = 25
/** Mislabelled G.711 gives 2.0 (wall time per slin audio time); real slin 1.0, or less after a burst. */
const SUSPECT_RATIO = 1.6

export type G711Verdict = 'suspect' | 'clear'

export class MislabelledG711Detector {
  private firstAt: number | undefined
  private frames = 0
  private bytes = 0
  private allG711Sized = true

  /**
   * Takes one 0x10 frame's size and arrival time; returns the verdict once, when one second of wall
   * time has passed since the first frame, and undefined before.
   */
  push(payloadBytes: number, nowMs: number): G711Verdict | undefined {
    this.firstAt ??= nowMs
    this.frames++
    this.bytes += payloadBytes
    if (payloadBytes !== G711_FRAME_BYTES) this.allG711Sized = false
    const wallMs = nowMs - this.firstAt
    if (wallMs < WINDOW_MS) return undefined
    // The window closes at this frame: the frames before it span wallMs; this one starts the next.
    const slinMs = (this.bytes - payloadBytes) / 16
    const suspect = this.allG711Sized && this.frames > MIN_FRAMES && wallMs >= SUSPECT_RATIO * slinMs
    return suspect ? 'suspect' : 'clear'
  }
}
