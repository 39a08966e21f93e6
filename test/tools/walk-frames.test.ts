/**
 * src/tools/walk-frames.ts: a recorded stream read by the protocol's FrameParser, with each frame's
 * offset; a bad payload is noted and the walk goes on; an unfinished last frame is described.
 */
import t from 'tap'
import { walkFrames } from '../../src/tools/index.js'
import { frames } from '../support/frames.js'

const ID = '0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6'

t.test('offsets, kinds, lengths and decoded frames; a bad DTMF does not stop the walk', async (t) => {
  // A view into a larger buffer: offsets count from the stream, not from the memory behind it.
  const bytes = Buffer.concat([Buffer.from('xx'), frames.uuid(ID), frames.audio(0x10, 320), frames.dtmf('x'), frames.hangup(), frames.raw(0x20, [1, 2])])
  const walk = walkFrames(bytes.subarray(2))
  t.same(
    walk.frames.map((f) => [f.offset, f.kind, f.length, f.frame?.type, f.error?.code]),
    [
      [0, 0x01, 16, 'uuid', undefined],
      [19, 0x10, 320, 'audio', undefined],
      [342, 0x03, 1, undefined, 'ERR_AUDIOSOCKET_BAD_DTMF'],
      [346, 0x00, 0, 'hangup', undefined],
      [349, 0x20, 2, 'unknown', undefined],
    ],
  )
  t.match(walk.frames[0]?.frame, { type: 'uuid', uuid: ID })
  t.equal(walk.trailing, undefined)
})

t.test('an unfinished last frame: where it starts and what it lacks', async (t) => {
  const whole = Buffer.concat([frames.uuid(ID), frames.audio(0x10, 320)])
  t.same(walkFrames(whole.subarray(0, 19 + 1)).trailing, { offset: 19, present: 1, missing: 2 }, 'inside the header')
  t.same(walkFrames(whole.subarray(0, 19 + 3 + 100)).trailing, { offset: 19, present: 103, missing: 220 }, 'inside the payload')
  t.equal(walkFrames(whole.subarray(0, 19 + 3 + 100)).frames.length, 1)
  t.same(walkFrames(Buffer.alloc(0)), { frames: [], trailing: undefined })
})
