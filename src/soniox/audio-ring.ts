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
 * collections and resident memory. With blocks, an append is a memcpy.
 *
 * Released blocks go to a pool shared by every call (AudioBlockPool) and the next append of any
 * call takes from it, so steady calls allocate no blocks. A call releases in bursts (one final
 * result frees a second or more of audio), so a per-call spare was not enough: blocks allocated
 * afresh, each its own ArrayBuffer living long enough to be promoted, made V8 run full
 * mark-compacts far more often than a relay does (the figures are in bench/RESULTS.md).
 *
 * Block size: what a call holds beyond its unfinalized audio is the unused part of its newest
 * block, half a block on average: ~2 KB per call at 4 KB, while a 20 ms frame still crosses a
 * block edge only every 6 to 13 frames (16 and 8 kHz).
 */
export const AUDIO_RING_BLOCK_BYTES = 4096

/**
 * Blocks kept for reuse. The bound caps what the pool can hold when many calls release at once
 * and few append (calls ending): 256 blocks is 1 MB, about as much as the per-call spares it
 * replaced held at 250 calls.
 */
export const AUDIO_POOL_MAX_BLOCKS = 256

/** Free AUDIO_RING_BLOCK_BYTES blocks, shared by rings. A block's old bytes are never read: rings read only what they wrote. */
export class AudioBlockPool {
  private readonly free: Buffer[] = []

  constructor(private readonly maxBlocks = AUDIO_POOL_MAX_BLOCKS) {}

  get size(): number {
    return this.free.length
  }

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(AUDIO_RING_BLOCK_BYTES)
  }

  give(block: Buffer): void {
    if (this.free.length < this.maxBlocks) this.free.push(block)
  }
}

/** The pool every ring uses unless given its own (tests). */
export const sharedAudioBlockPool = new AudioBlockPool()

export class AudioRing {
  /** blocks[0] starts at call position `firstBlockPos`; all but the last are full. */
  private blocks: Buffer[] = []
  private firstBlockPos = 0
  private start = 0
  private end = 0

  constructor(
    private readonly capacityBytes: number,
    private readonly pool: AudioBlockPool = sharedAudioBlockPool,
  ) {}

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
        this.blocks.push(this.pool.take())
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
    // Whole blocks before the new start are done: back to the pool for the next append (any call's).
    while (this.blocks.length > 0 && this.firstBlockPos + AUDIO_RING_BLOCK_BYTES <= this.start) {
      this.pool.give(this.blocks.shift() as Buffer)
      this.firstBlockPos += AUDIO_RING_BLOCK_BYTES
    }
  }

  /** Forgets everything held and gives every block back (the call's transcription is over). Positions stay. */
  releaseAll(): void {
    this.start = this.end
    for (const block of this.blocks) this.pool.give(block)
    this.blocks = []
    this.firstBlockPos = this.end
  }

  /**
   * Views of every byte from `pos` (clamped to what is held) to the end, in order. Use them at
   * once: a released block is reused by the next append of any ring sharing the pool.
   */
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
