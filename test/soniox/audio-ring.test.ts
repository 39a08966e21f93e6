/**
 * src/soniox/audio-ring.ts: the bounded, position-addressed store of call audio that a failed
 * Soniox session is resumed from.
 */
import t from 'tap'
import { AUDIO_RING_BLOCK_BYTES, AudioBlockPool, AudioRing } from '../../src/soniox/audio-ring.js'

/** Bytes whose value is their call position (mod 251), so any slice can be checked against the position. */
function bytesAt(pos: number, length: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) b[i] = (pos + i) % 251
  return b
}

/** A ring filled with `sizes` chunks, appended back to back from position 0. */
function filled(capacity: number, sizes: number[]): AudioRing {
  const ring = new AudioRing(capacity)
  let pos = 0
  for (const size of sizes) {
    ring.append(bytesAt(pos, size))
    pos += size
  }
  return ring
}

function joined(ring: AudioRing, pos: number): Buffer {
  return Buffer.concat(ring.slice(pos))
}

t.test('append keeps a copy: scribbling on the source afterwards changes nothing', async (t) => {
  const ring = new AudioRing(1000)
  const source = bytesAt(0, 100)
  const socketChunk = Buffer.concat([Buffer.from('header'), source]) // a view into a bigger buffer
  ring.append(socketChunk.subarray(6))
  source.fill(0xee)
  socketChunk.fill(0xff)
  t.ok(joined(ring, 0).equals(bytesAt(0, 100)), 'slice returns the bytes as they were at append time')
})

t.test('positions: startPos, endPos, bytesHeld', async (t) => {
  const ring = new AudioRing(1000)
  t.equal(ring.startPos, 0)
  t.equal(ring.endPos, 0)
  t.equal(ring.bytesHeld, 0)
  t.strictSame(ring.slice(0), [], 'empty ring slices to nothing')
  t.equal(ring.append(Buffer.alloc(0)), 0, 'an empty chunk evicts nothing')
  t.equal(ring.endPos, 0, 'and adds nothing')

  ring.append(bytesAt(0, 320))
  ring.append(bytesAt(320, 160))
  t.equal(ring.startPos, 0)
  t.equal(ring.endPos, 480)
  t.equal(ring.bytesHeld, 480)
  ring.release(100)
  t.equal(ring.startPos, 100)
  t.equal(ring.endPos, 480, 'release never moves the end')
  t.equal(ring.bytesHeld, 380)
})

t.test('release', async (t) => {
  t.test('inside a chunk', async (t) => {
    const ring = filled(1000, [100, 100, 100])
    ring.release(30)
    t.equal(ring.startPos, 30)
    t.equal(ring.bytesHeld, 270)
    t.ok(joined(ring, 0).equals(bytesAt(30, 270)), 'holds exactly 30..300')
    ring.release(60)
    t.equal(ring.startPos, 60, 'a second release inside the same chunk')
    t.ok(joined(ring, 0).equals(bytesAt(60, 240)))
  })
  t.test('across chunks', async (t) => {
    const ring = filled(1000, [100, 100, 100])
    ring.release(250)
    t.equal(ring.startPos, 250)
    t.equal(ring.bytesHeld, 50)
    t.ok(joined(ring, 0).equals(bytesAt(250, 50)))
    t.equal(ring.slice(0).length, 1, 'one view, of the last chunk')
  })
  t.test('exactly at a chunk boundary', async (t) => {
    const ring = filled(1000, [100, 100, 100])
    ring.release(200)
    t.equal(ring.startPos, 200)
    t.ok(joined(ring, 0).equals(bytesAt(200, 100)))
    t.equal(ring.slice(0).length, 1)
  })
  t.test('beyond the end: clamped to endPos, and appends continue from there', async (t) => {
    const ring = filled(1000, [100, 100])
    ring.release(10_000)
    t.equal(ring.startPos, 200)
    t.equal(ring.endPos, 200)
    t.equal(ring.bytesHeld, 0)
    t.strictSame(ring.slice(0), [])
    ring.append(bytesAt(200, 50))
    t.equal(ring.startPos, 200)
    t.equal(ring.endPos, 250)
    t.ok(joined(ring, 0).equals(bytesAt(200, 50)))
  })
  t.test('behind startPos: no effect', async (t) => {
    const ring = filled(1000, [100, 100])
    ring.release(150)
    ring.release(20)
    t.equal(ring.startPos, 150, 'a release cannot bring audio back')
    t.ok(joined(ring, 0).equals(bytesAt(150, 50)))
  })
})

t.test('slice', async (t) => {
  t.test('from inside a chunk', async (t) => {
    const ring = filled(1000, [100, 100, 100])
    const views = ring.slice(130)
    t.ok(views.every((v) => v.length > 0), 'no empty views')
    t.ok(Buffer.concat(views).equals(bytesAt(130, 170)))
  })
  t.test('from inside a partly released first chunk', async (t) => {
    const ring = filled(1000, [100, 100])
    ring.release(40)
    t.ok(joined(ring, 70).equals(bytesAt(70, 130)), 'release skip and slice skip add up')
  })
  t.test('before startPos: clamped to startPos', async (t) => {
    const ring = filled(1000, [100, 100, 100])
    ring.release(120)
    t.ok(joined(ring, 0).equals(bytesAt(120, 180)))
    t.ok(joined(ring, 119).equals(bytesAt(120, 180)))
  })
  t.test('at the end: empty', async (t) => {
    const ring = filled(1000, [100, 100])
    t.strictSame(ring.slice(200), [])
    t.strictSame(ring.slice(500), [], 'past the end too')
  })
  t.test('does not consume: slicing twice gives the same bytes', async (t) => {
    const ring = filled(1000, [64, 64, 64])
    t.ok(joined(ring, 10).equals(joined(ring, 10)))
    t.equal(ring.startPos, 0)
  })
})

t.test('eviction', async (t) => {
  t.test('returns the evicted count and drops the oldest, keeping what is left contiguous', async (t) => {
    const ring = new AudioRing(250)
    t.equal(ring.append(bytesAt(0, 100)), 0)
    t.equal(ring.append(bytesAt(100, 100)), 0)
    t.equal(ring.append(bytesAt(200, 100)), 50, 'over by 50 -> 50 evicted')
    t.equal(ring.startPos, 50)
    t.equal(ring.endPos, 300)
    t.equal(ring.bytesHeld, 250)
    t.ok(joined(ring, 0).equals(bytesAt(50, 250)), 'the newest 250 bytes, in order, without a hole')
    t.equal(ring.append(bytesAt(300, 120)), 120)
    t.equal(ring.startPos, 170)
    t.ok(joined(ring, 0).equals(bytesAt(170, 250)))
  })
  t.test('nothing is evicted while released audio made room', async (t) => {
    const ring = new AudioRing(250)
    ring.append(bytesAt(0, 200))
    ring.release(150)
    t.equal(ring.append(bytesAt(200, 150)), 0, '50 held + 150 new fits')
    t.equal(ring.startPos, 150)
  })
  t.test('a single chunk larger than the capacity keeps its newest bytes', async (t) => {
    const ring = new AudioRing(100)
    ring.append(bytesAt(0, 30))
    t.equal(ring.append(bytesAt(30, 300)), 230)
    t.equal(ring.startPos, 230)
    t.equal(ring.bytesHeld, 100)
    t.ok(joined(ring, 0).equals(bytesAt(230, 100)))
  })
  t.test('capacity 0 holds nothing but still counts positions', async (t) => {
    const ring = new AudioRing(0)
    t.equal(ring.append(bytesAt(0, 40)), 40)
    t.equal(ring.startPos, 40)
    t.equal(ring.endPos, 40)
    t.strictSame(ring.slice(0), [])
  })
})

t.test('100k appends and releases: memory stays bounded and slices stay correct', async (t) => {
  const capacity = 16_000 // 1 s of 8 kHz s16le
  const ring = new AudioRing(capacity)
  const internals = ring as unknown as { blocks: Buffer[] }
  let pos = 0
  let evicted = 0
  let maxArray = 0
  let bad = 0
  for (let i = 0; i < 100_000; i++) {
    const size = 160 + (i % 7) * 32 // 20..48 ms, uneven on purpose
    evicted += ring.append(bytesAt(pos, size))
    pos += size
    // Finalization lags by a varying amount; in every other stretch of 500 appends it stalls
    // altogether (a session down), so eviction does the work.
    if (Math.floor(i / 500) % 2 === 0 && i % 3 !== 0) ring.release(pos - ((i * 37) % 12_000))
    if (ring.bytesHeld > capacity) bad++
    maxArray = Math.max(maxArray, internals.blocks.length)
    if (i % 9973 === 0) {
      const from = ring.startPos + ((i * 13) % Math.max(1, ring.bytesHeld))
      if (!joined(ring, from).equals(bytesAt(from, ring.endPos - from))) bad++
    }
  }
  t.equal(bad, 0, 'bytesHeld never exceeded the capacity and every sampled slice matched its positions')
  t.equal(ring.endPos, pos, 'endPos counts every byte ever appended')
  t.ok(evicted > 0, `eviction happened (${evicted} bytes)`)
  t.ok(joined(ring, 0).equals(bytesAt(ring.startPos, ring.bytesHeld)), 'the final content is exactly startPos..endPos')
  // Released chunks are compacted away: the chunk array never grows with the number of appends.
  // Storage is fixed-size blocks: never more than the capacity needs, plus the partly used ends.
  t.ok(maxArray <= Math.ceil(capacity / AUDIO_RING_BLOCK_BYTES) + 2, `the block list stayed within the capacity (max ${maxArray} blocks for 100k appends)`)
})

/**
 * Plays 5000 frames of 20 ms at 8 kHz (320 bytes) into a ring with its own pool, releasing what
 * `finalizedPos` says after each frame, and counts the distinct blocks the ring ever held.
 */
function distinctBlocksOver5000Frames(capacity: number, finalizedPos: (frame: number, pos: number) => number | undefined): { ring: AudioRing; distinct: number } {
  const ring = new AudioRing(capacity, new AudioBlockPool())
  const internals = ring as unknown as { blocks: Buffer[] }
  const seen = new Set<Buffer>()
  let pos = 0
  for (let i = 0; i < 5000; i++) {
    ring.append(bytesAt(pos, 320))
    pos += 320
    const finalized = finalizedPos(i, pos)
    if (finalized !== undefined) ring.release(finalized)
    for (const b of internals.blocks) seen.add(b)
  }
  return { ring, distinct: seen.size }
}

t.test('a steady call allocates no new blocks: released blocks are reused', async (t) => {
  // Soniox finalizes about 0.4 s behind the live audio.
  const { ring, distinct } = distinctBlocksOver5000Frames(16_000, (_frame, pos) => pos - 6400)
  t.ok(distinct <= 4, `5000 frames went through ${distinct} distinct blocks`)
  t.ok(joined(ring, ring.startPos).equals(bytesAt(ring.startPos, ring.bytesHeld)), 'and the content is still exact')
})

t.test('finalization in bursts: the blocks a burst frees are reused, not allocated again', async (t) => {
  // Soniox often finalizes a second or more at once: every 2 s, everything but the last 0.2 s.
  // (With one spare per ring, each burst's other blocks were garbage and were allocated again.)
  const { ring, distinct } = distinctBlocksOver5000Frames(64_000, (frame, pos) => (frame % 100 === 99 ? pos - 3200 : undefined))
  // 2 s of 8 kHz audio is 32,000 bytes: at most 9 blocks held at once, and no more ever made.
  t.ok(distinct <= 10, `5000 frames in bursts went through ${distinct} distinct blocks`)
  t.ok(joined(ring, ring.startPos).equals(bytesAt(ring.startPos, ring.bytesHeld)), 'and the content is still exact')
})

t.test('rings share a pool: what one call releases, the next append of another call uses', async (t) => {
  const pool = new AudioBlockPool()
  const first = new AudioRing(64_000, pool)
  first.append(bytesAt(0, 3 * AUDIO_RING_BLOCK_BYTES))
  const firstBlocks = [...(first as unknown as { blocks: Buffer[] }).blocks]
  first.releaseAll()
  t.equal(pool.size, 3, 'releaseAll gave all three blocks back')
  t.equal(first.bytesHeld, 0, 'the ring holds nothing')
  t.equal(first.endPos, 3 * AUDIO_RING_BLOCK_BYTES, 'and positions stay')

  const second = new AudioRing(64_000, pool)
  second.append(bytesAt(0, 100))
  const secondBlocks = (second as unknown as { blocks: Buffer[] }).blocks
  t.ok(secondBlocks[0] !== undefined && firstBlocks.includes(secondBlocks[0]), 'the other ring took a block from the pool')
  t.equal(pool.size, 2)
  t.ok(joined(second, 0).equals(bytesAt(0, 100)), 'and reads only what it wrote, not the old bytes')

  // A ring appended to after releaseAll starts a fresh block at its own position.
  first.append(bytesAt(first.endPos, 500))
  t.ok(joined(first, 0).equals(bytesAt(3 * AUDIO_RING_BLOCK_BYTES, 500)), 'the first ring continues from its end position')
})

t.test('the pool keeps at most its bound; beyond it released blocks are left to the GC', async (t) => {
  const pool = new AudioBlockPool(2)
  const ring = new AudioRing(64_000, pool)
  ring.append(bytesAt(0, 5 * AUDIO_RING_BLOCK_BYTES))
  ring.release(5 * AUDIO_RING_BLOCK_BYTES)
  t.equal(pool.size, 2, 'five blocks released, two kept')
  const a = pool.take()
  const b = pool.take()
  const c = pool.take()
  t.equal(pool.size, 0)
  t.equal(new Set([a, b, c]).size, 3, 'an empty pool allocates a new block')
  t.equal(c.length, AUDIO_RING_BLOCK_BYTES)
})

t.test('a chunk that spans several blocks, starting mid-block, is stored whole and in order', async (t) => {
  // 100 + 20,000 bytes: the second chunk fills the rest of block 1, all of block 2 and part of block 3.
  const ring = filled(64_000, [100, 20_000, 320])
  t.equal(ring.endPos, 20_420)
  t.ok(joined(ring, 0).equals(bytesAt(0, 20_420)), 'every byte is where its position says')
  t.ok(joined(ring, 8_191).equals(bytesAt(8_191, 20_420 - 8_191)), 'a slice from the last byte of the first block')
})
