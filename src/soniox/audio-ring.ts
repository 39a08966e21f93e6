/**
 * The call's audio that Soniox has not yet turned into final tokens, addressed by call byte
 * position (byte 0 = the first audio byte of the call). A failed session is resumed by sending
 * a new one everything from the last finalized position, so this is what "no word lost" rests on.
 *
 * Bounded: past `capacityBytes` the OLDEST audio is evicted. Dropping the oldest (rather than the
 * newest) keeps what is retained contiguous, so a session resumed from `startPos` still maps
 * its timestamps onto call time exactly; the owner counts what eviction cost.
 *
 * Storage: frames are copied into fixed-size blocks rather than kept as one Buffer each. This is
 * on the audio hot path (every frame of every call): a per-frame allocation that lives ~0.5 s
 * until Soniox finalizes it survives young-generation GC, gets promoted, and costs old-generation
 * collections and resident memory. With blocks, an append is a memcpy; a released block is kept
 * as a spare for the next one, so a steady call allocates nothing.
 *
 * Block size: what a call holds beyond its unfinalized audio is the unused part of the newest
 * block plus the spare, about 1.5 blocks. At 4 KB that is ~6 KB per call (12 KB at 8 KB blocks,
 * bench/RESULTS.md session 4), while a 20 ms frame still crosses a block edge only every 6 to 13
 * frames (16 and 8 kHz).
 */
export const AUDIO_RING_BLOCK_BYTES = 4096

export class AudioRing {
  /** blocks[0] starts at call position `firstBlockPos`; all but the last are full. */
  private blocks: Buffer[] = []
  private firstBlockPos = 0
  private spare: Buffer | undefined
  private start = 0
  private end = 0

  constructor(private readonly capacityBytes: number) {}

  /** Call position of the oldest byte held. */
  get startPos(): number {
    return this.start
  }

  /** Call position just past the newest byte held (= every audio byte ever appended). */
  get endPos(): number {
    return this.end
  }

  get bytesHeld(): number {
    return this.end - this.start
  }

  /**
   * Appends a copy of `chunk` (the caller's buffer may be a view of a socket chunk).
   * @returns how many of the oldest bytes were evicted to stay within capacity.
   */
  append(chunk: Buffer): number {
    let copied = 0
    while (copied < chunk.length) {
      const fill = (this.end - this.firstBlockPos) % AUDIO_RING_BLOCK_BYTES
      if (fill === 0 && this.end - this.firstBlockPos === this.blocks.length * AUDIO_RING_BLOCK_BYTES) {
        this.blocks.push(this.spare ?? Buffer.allocUnsafeSlow(AUDIO_RING_BLOCK_BYTES))
        this.spare = undefined
      }
      const block = this.blocks[this.blocks.length - 1] as Buffer
      const n = Math.min(chunk.length - copied, AUDIO_RING_BLOCK_BYTES - fill)
      // TypedArray#set is V8's own memcpy; Buffer#copy adds argument checks in JS on every frame.
      // A frame usually fits whole, so the subarray (an allocation) is only made at a block edge.
      block.set(n === chunk.length ? chunk : chunk.subarray(copied, copied + n), fill)
      copied += n
      this.end += n
    }
    const excess = this.bytesHeld - this.capacityBytes
    if (excess <= 0) return 0
    this.release(this.start + excess)
    return excess
  }

  /** Forgets everything before `pos` (finalized audio, or evicted). */
  release(pos: number): void {
    const to = Math.min(pos, this.end)
    if (to <= this.start) return
    this.start = to
    // Whole blocks before the new start are done; keep one as a spare for the next append.
    while (this.blocks.length > 1 && this.firstBlockPos + AUDIO_RING_BLOCK_BYTES <= this.start) {
      this.spare = this.blocks.shift()
      this.firstBlockPos += AUDIO_RING_BLOCK_BYTES
    }
    if (this.start === this.end && this.blocks.length === 1 && this.firstBlockPos + AUDIO_RING_BLOCK_BYTES <= this.start) {
      // Everything held was released exactly at a block boundary: the last block is done too.
      this.spare = this.blocks.shift()
      this.firstBlockPos += AUDIO_RING_BLOCK_BYTES
    }
  }

  /** Views of every byte from `pos` (clamped to what is held) to the end, in order; valid until the next append or release. */
  slice(pos: number): Buffer[] {
    const out: Buffer[] = []
    let from = Math.max(pos, this.start)
    while (from < this.end) {
      const index = Math.floor((from - this.firstBlockPos) / AUDIO_RING_BLOCK_BYTES)
      const block = this.blocks[index] as Buffer
      const blockStart = this.firstBlockPos + index * AUDIO_RING_BLOCK_BYTES
      const upTo = Math.min(this.end, blockStart + AUDIO_RING_BLOCK_BYTES)
      out.push(block.subarray(from - blockStart, upTo - blockStart))
      from = upTo
    }
    return out
  }
}
