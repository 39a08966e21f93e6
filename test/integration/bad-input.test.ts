/**
 * Bad input ends that call only, with one log line naming the violation, and loses nothing
 * else: a good call running alongside every bad one is transcribed completely.
 */
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { frames } from '../support/frames.js'
import { loadCapture } from '../support/frames.js'
import { startHarness, type Harness } from '../support/harness.js'
import { callSessions } from '../support/soniox-probes.js'
import { parseExposition } from '../support/prometheus.js'
import { connectRawPeer } from '../support/raw-peer.js'
import { replayCapture } from '../support/replay.js'
import { uuidToBytes } from '../../src/audiosocket/index.js'

const HANGUP = Buffer.from([0x00, 0x00, 0x00])

/** Log records naming this error code (the call's closing summary, 'call ended', aside). */
function logsWithCode(h: Harness, code: string): Array<Record<string, unknown>> {
  return h.logs.filter((r) => r.msg !== 'call ended' && (r.errorCode === code || (r.err as { code?: string } | undefined)?.code === code))
}

interface BadCase {
  name: string
  code: string
  /** Bytes the peer sends; the call id if a UUID frame is among them. */
  send: () => { bytes: Buffer[]; callId?: string }
  /** Whether the server answers with a hangup frame before closing. */
  hangup: boolean
}

const cases: BadCase[] = [
  {
    name: 'garbage (an HTTP request)',
    code: 'ERR_AUDIOSOCKET_FIRST_FRAME',
    send: () => ({ bytes: [Buffer.from('GET / HTTP/1.1\r\nHost: pbx\r\n\r\n')] }),
    hangup: true,
  },
  {
    name: 'audio before the UUID',
    code: 'ERR_AUDIOSOCKET_FIRST_FRAME',
    send: () => ({ bytes: [frames.audio(0x10, 320)] }),
    hangup: true,
  },
  {
    name: 'a UUID frame of the wrong length',
    code: 'ERR_AUDIOSOCKET_BAD_UUID',
    send: () => ({ bytes: [frames.raw(0x01, Buffer.alloc(15, 0xab))] }),
    hangup: true,
  },
  (() => {
    const id = randomUUID()
    return {
      name: 'a frame larger than the connection allows',
      code: 'ERR_AUDIOSOCKET_FRAME_TOO_LARGE',
      send: () => ({ bytes: [frames.uuid(id), frames.audio(0x10, 320), Buffer.from([0x10, 0x08, 0x00])], callId: id }),
      hangup: true,
    }
  })(),
  (() => {
    const id = randomUUID()
    return {
      name: 'a DTMF frame with a bad digit',
      code: 'ERR_AUDIOSOCKET_BAD_DTMF',
      send: () => ({ bytes: [frames.uuid(id), frames.raw(0x03, Buffer.from('x'))], callId: id }),
      hangup: true,
    }
  })(),
  (() => {
    const id = randomUUID()
    return {
      name: 'a second UUID frame',
      code: 'ERR_AUDIOSOCKET_DUPLICATE_UUID',
      send: () => ({ bytes: [frames.uuid(id), frames.audio(0x10, 320), frames.uuid(randomUUID())], callId: id }),
      hangup: true,
    }
  })(),
  (() => {
    const id = randomUUID()
    return {
      name: 'half a frame, then a stall',
      code: 'ERR_AUDIOSOCKET_STALLED',
      send: () => ({ bytes: [frames.uuid(id), frames.audio(0x10, 320), frames.audio(0x10, 320).subarray(0, 100)], callId: id }),
      hangup: true,
    }
  })(),
  {
    name: 'a connection that sends nothing',
    code: 'ERR_AUDIOSOCKET_FIRST_FRAME_TIMEOUT',
    send: () => ({ bytes: [] }),
    hangup: true,
  },
]

t.test('each kind of bad input ends only its own call, with one log line naming it', async (t) => {
  // Silence off: the stalled peer would otherwise be sent silence after 1 s, and this test
  // checks that the only thing a bad peer gets is one hangup frame.
  const h = await startHarness({ env: { AUDIOSOCKET_MAX_PAYLOAD_BYTES: '1024', AUDIOSOCKET_FIRST_FRAME_TIMEOUT_MS: '500', AUDIOSOCKET_SILENCE_MODE: 'off' } })
  t.teardown(() => h.stop())

  const goodId = randomUUID()
  const good = replayCapture(loadCapture('app-8k-dtmf'), { port: h.port, speed: 4, uuidBytes: uuidToBytes(goodId) })

  const outcomes = await Promise.all(
    cases.map(async (c) => {
      const peer = await connectRawPeer(h.port)
      const { bytes, callId } = c.send()
      for (const b of bytes) peer.write(b)
      const remote = `127.0.0.1:${peer.socket.localPort}`
      await peer.closed
      return { c, callId, remote, received: peer.received() }
    }),
  )

  for (const { c, callId, remote, received } of outcomes) {
    t.test(c.name, async (t) => {
      t.ok(received.equals(c.hangup ? HANGUP : Buffer.alloc(0)), 'the server sent exactly one hangup frame, then closed')
      // After the UUID a call is known by its id: one line for it. Before, anyone can cause it at
      // will, so the line is throttled per code: one, however many connections had that code.
      const lines = logsWithCode(h, c.code).filter((r) => (callId ? r.callId === callId : true))
      t.equal(lines.length, 1, `exactly one log line names ${c.code}`)
      t.notOk(lines[0]?.err, 'a code and a message, no stack: the cause is the peer')
      t.equal(lines[0]?.level, 40, 'at warn level: a peer problem, not a server fault')
      if (callId) {
        const events = await h.receiver.waitFor((all) => all.some((e) => e.call_id === callId && e.type === 'call.ended'), 5000)
        const ended = events.find((e) => e.call_id === callId && e.type === 'call.ended')
        t.equal(ended?.data.reason, 'error')
        t.equal(ended?.data.error?.code, c.code, 'call.ended carries the violation')
      } else {
        t.notOk(h.logs.some((r) => r.remote === remote && r.msg === 'call started'), 'no call was started for it')
      }
    })
  }

  const goodResult = await good
  t.equal(goodResult.closedByServer, false, 'the good call ran to its end')
  const events = await h.receiver.waitFor((all) => all.some((e) => e.call_id === goodId && e.type === 'call.ended'), 20000)
  const ended = events.find((e) => e.call_id === goodId && e.type === 'call.ended')
  const session = h.soniox.sessions.find((s) => s.startMessage?.client_reference_id === goodId)
  t.equal(ended?.data.reason, 'hangup')
  t.equal(ended?.data.transcript, session?.transcript, 'the good call got its whole transcript')
  t.ok((session?.transcript.length ?? 0) > 0)

  const started = h.receiver.events.filter((e) => e.type === 'call.started').map((e) => e.call_id)
  const expected = [goodId, ...outcomes.flatMap((o) => (o.callId ? [o.callId] : []))]
  t.same(new Set(started), new Set(expected), 'only connections that sent a UUID became calls')
  t.equal(h.receiver.events.filter((e) => e.type === 'call.ended').length, expected.length, 'every call that started also ended')
})

t.test('a connection that closes without a byte (channel not answered) is logged and nothing is published', async (t) => {
  const h = await startHarness()
  t.teardown(() => h.stop())
  const peer = await connectRawPeer(h.port)
  peer.socket.end()
  await peer.closed
  t.equal(peer.received().length, 0, 'nothing is sent to a peer that closed first')
  t.ok(h.logs.some((r) => r.msg === 'connection closed before sending a UUID frame'), 'the log says what happened')
  t.equal(h.receiver.requests.length, 0, 'no events without a call')
  t.equal(callSessions(h.soniox).length, 0, 'no Soniox session without a call (the start probe aside)')
})

t.test('a flood of connections that are not AudioSocket: one log line per cause, every one counted', async (t) => {
  const h = await startHarness({ env: { AUDIOSOCKET_SILENCE_MODE: 'off' } })
  t.teardown(() => h.stop())
  const flood = 200
  await Promise.all(
    Array.from({ length: flood }, async () => {
      const peer = await connectRawPeer(h.port)
      peer.write(Buffer.from('GET / HTTP/1.1\r\nHost: pbx\r\n\r\n'))
      await peer.closed
    }),
  )
  const lines = logsWithCode(h, 'ERR_AUDIOSOCKET_FIRST_FRAME')
  t.equal(lines.length, 1, `one line for ${flood} bad streams`)
  t.ok(JSON.stringify(lines[0]).length < 400, 'and a short one')
  const metrics = parseExposition(h.app.metrics.registry.render())
  t.equal(metrics.value('audiosocket_connections_failed_total'), flood, 'the metric counts every one')
})

t.test('one UUID on two live connections: the second is refused with a hangup frame, the first goes on', async (t) => {
  const h = await startHarness({ env: { AUDIOSOCKET_SILENCE_MODE: 'off' } })
  t.teardown(() => h.stop())
  const id = randomUUID()
  const first = await connectRawPeer(h.port)
  first.write(Buffer.concat([frames.uuid(id), frames.audio(0x10, 320)]))
  await h.receiver.waitFor((all) => all.some((e) => e.call_id === id && e.type === 'call.started'), 5000)

  const second = await connectRawPeer(h.port)
  second.write(Buffer.concat([frames.uuid(id), frames.audio(0x10, 320), frames.dtmf('9')]))
  await second.closed
  t.ok(second.received().equals(HANGUP), 'the duplicate gets exactly one hangup frame')
  t.match(
    h.logs.filter((r) => r.callId === id && r.level === 40),
    [{ msg: /^call refused: a live call already has this UUID/ }],
    'one warn line naming why',
  )
  const metrics = parseExposition(h.app.metrics.registry.render())
  t.equal(metrics.value('audiosocket_connections_refused_total', { reason: 'duplicate_uuid' }), 1)

  first.write(frames.dtmf('1'))
  first.socket.end()
  const events = await h.receiver.waitFor((all) => all.some((e) => e.call_id === id && e.type === 'call.ended'), 10000)
  const ofCall = events.filter((e) => e.call_id === id)
  t.same(ofCall.map((e) => e.seq), ofCall.map((_e, i) => i), 'one gapless seq: no events of the refused connection under this call_id')
  t.same(ofCall.filter((e) => e.type === 'call.dtmf').map((e) => e.data.digit), ['1'], "the refused connection's DTMF never reached the call")
  t.equal(callSessions(h.soniox).length, 1, 'one Soniox session')

  // Once the first call has ended, the UUID may be used again (Asterisk reuses nothing, but a retry might).
  const again = await connectRawPeer(h.port)
  again.write(frames.uuid(id))
  await h.receiver.waitFor((all) => all.filter((e) => e.call_id === id && e.type === 'call.started').length === 2, 5000)
  again.socket.end()
  await again.closed
})
