/**
 * The call's audio that Soniox has not yet turned into final tokens, addressed by call byte
 * position (byte 0 = the first audio byte of the call). A failed session is resumed by sending
 * a new one everything from the last finalized position, so this is what "no word lost" rests on.
 *
 * Bounded: past `capacityBytes` the OLDEST audio is evicted. Dropping the oldest (rather than the
 * newest) keeps what is retained contiguous, so a session resumed from `startPos` still maps
 * its timestamps onto call time exactly; the owner counts what eviction cost.
 */
export class AudioRing {
  private chunks: Buffer[] = []
  /** Index of the first live chunk; the array is compacted now and then instead of shifted. */
  private head = 0
  /** Bytes of chunks[head] already released or evicted. */
  private headSkip = 0
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
    if (chunk.length === 0) return 0
    this.chunks.push(Buffer.from(chunk))
    this.end += chunk.length
    const excess = this.bytesHeld - this.capacityBytes
    if (excess <= 0) return 0
    this.release(this.start + excess)
    return excess
  }

  /** Forgets everything before `pos` (finalized audio, or evicted). */
  release(pos: number): void {
    let drop = Math.min(pos, this.end) - this.start
    while (drop > 0 && this.head < this.chunks.length) {
      const first = this.chunks[this.head] as Buffer
      const left = first.length - this.headSkip
      if (drop < left) {
        this.headSkip += drop
        this.start += drop
        break
      }
      drop -= left
      this.start += left
      this.headSkip = 0
      this.head++
    }
    if (this.head > 512 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head)
      this.head = 0
    }
  }

  /** Views of every byte from `pos` (clamped to what is held) to the end, in order. */
  slice(pos: number): Buffer[] {
    const out: Buffer[] = []
    let skip = Math.max(pos, this.start) - this.start + this.headSkip
    for (let i = this.head; i < this.chunks.length; i++) {
      const chunk = this.chunks[i] as Buffer
      if (skip >= chunk.length) {
        skip -= chunk.length
        continue
      }
      out.push(skip === 0 ? chunk : chunk.subarray(skip))
      skip = 0
    }
    return out
  }
}
