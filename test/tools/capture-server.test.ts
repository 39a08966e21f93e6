/**
 * src/tools/capture-server.ts: with no CallSession to name the call, the capture tool reads the
 * UUID from Asterisk's first frame with the protocol's FrameParser, however TCP splits it, and
 * hands it to the recorder; a stream that does not start with a UUID frame is named by its peer.
 */
import t, { type Test } from 'tap'
import net from 'node:net'
import { basename } from 'node:path'
import { CaptureServer, type CapturedConnection } from '../../src/tools/index.js'
import { frames } from '../support/frames.js'

const ID = '5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b'
const quiet = { info() {}, error() {}, warn() {}, debug() {} }

/** Sends `writes` one by one to a listen-mode capture tool, then FIN; resolves with its capture. */
async function captureOf(t: Test, writes: Buffer[]): Promise<CapturedConnection> {
  let captured!: (call: CapturedConnection) => void
  const done = new Promise<CapturedConnection>((resolve) => (captured = resolve))
  const server = new CaptureServer({ host: '127.0.0.1', port: 0, dir: t.testdir(), logger: quiet, tool: 'test', onCapture: (call) => captured(call) })
  const { port } = await server.listen()
  t.teardown(() => server.close({ abort: true }))
  const socket = net.connect({ host: '127.0.0.1', port })
  for (const bytes of writes) socket.write(bytes)
  socket.end()
  socket.resume()
  return done
}

t.test('the UUID frame in two writes: the capture is named by it', async (t) => {
  const uuid = frames.uuid(ID)
  const call = await captureOf(t, [uuid.subarray(0, 5), Buffer.concat([uuid.subarray(5), frames.audio(0x10, 320)])])
  t.equal(call.uuid, ID)
  t.match(basename(call.path!), new RegExp(`Z-${ID}\\.ascap$`))
  t.equal(call.bytesIn, 19 + 323)
})

t.test('a stream that does not start with a UUID frame: no UUID, named by the peer', async (t) => {
  const call = await captureOf(t, [frames.audio(0x10, 320), frames.uuid(ID)])
  t.equal(call.uuid, undefined)
  t.match(basename(call.path!), /Z-127\.0\.0\.1-\d+\.ascap$/)
})
