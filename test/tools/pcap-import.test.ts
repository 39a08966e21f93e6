/**
 * src/tools/pcap/: packet captures -> AudioSocket captures. The real captures taken on the
 * Asterisk host give exactly the recorded byte streams; built captures cover every link type,
 * both file formats and byte orders, and what TCP and capturing do to a stream (reordering,
 * retransmission, a missing SYN, lost packets, a cut-off file), and each corrupt input gets a
 * named error.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { directionStream } from '../../src/capture/index.js'
import { importPacketCapture, inspectCapture, type ImportResult } from '../../src/tools/index.js'
import { AppError } from '../../src/shared/errors.js'
import { CAPTURE_DIR, frames, loadCapture, loadCaptureSummary } from '../support/frames.js'
import { LINK, TcpConversation, dataPacketIndex, ip, link, pcapFile, pcapngFile, type PacketSpec } from '../support/pcap-builders.js'

const TOOL = 'audiosocket-soniox test'
const ID = '4bfe9f6e-55c5-4a39-8e0b-0b6c4d7b9e21'
const ASTERISK = { address: '10.20.0.5', port: 41234 }
const SERVER = { address: '10.20.0.9', port: 9092 }

/** The byte stream of a short call: UUID, `n` 20 ms frames, a DTMF digit. */
function callFrames(n = 6): Buffer[] {
  return [frames.uuid(ID), ...Array.from({ length: n }, () => frames.audio(0x10, 320)), frames.dtmf('7')]
}

/** A whole call as TCP: handshake, one segment per frame every 20 ms, FIN from Asterisk, then the server. */
function callConversation(options: { client?: typeof ASTERISK; server?: typeof SERVER; clientIsn?: number } = {}): { conv: TcpConversation; stream: Buffer } {
  const conv = new TcpConversation({ client: options.client ?? ASTERISK, server: options.server ?? SERVER, clientIsn: options.clientIsn })
  conv.handshake(0)
  const parts = callFrames()
  parts.forEach((bytes, i) => conv.clientSends(1 + i * 20, bytes))
  conv.clientFin(200).serverFin(200.5)
  return { conv, stream: Buffer.concat(parts) }
}

function importOf(file: Buffer, options: { port?: number; allowTruncated?: boolean } = {}): ImportResult {
  return importPacketCapture(file, { name: 'test.pcap', tool: TOOL, ...options })
}

function inboundOf(result: ImportResult, index = 0): Buffer {
  const call = result.calls[index]
  if (!call) throw new Error(`no call ${index}`)
  return directionStream(call.capture, 'in').bytes
}

t.test('the real Asterisk captures: the stream inside each equals its recording byte for byte', async (t) => {
  for (const [file, stem] of [
    ['app-8k-speech.pcap', 'app-8k-speech'],
    ['dial-16k-speech.pcapng', 'dial-16k-speech'],
  ] as const) {
    t.test(file, async (t) => {
      const result = importPacketCapture(readFileSync(`${CAPTURE_DIR}${file}`), { name: file, tool: TOOL })
      t.equal(result.format, file.endsWith('ng') ? 'pcapng' : 'pcap')
      t.equal(result.calls.length, 1, 'one AudioSocket connection')
      t.same(result.failures, [])
      const call = result.calls[0]!
      const recording = loadCapture(stem)
      const inbound = directionStream(call.capture, 'in')
      t.equal(inbound.bytes.length, recording.bytes.length, `${recording.bytes.length} bytes`)
      t.ok(inbound.bytes.equals(recording.bytes), 'byte for byte the stream Asterisk sent')
      t.equal(call.uuid, loadCaptureSummary(stem).uuid)
      t.equal(call.server.port, 9301, 'found by its UUID frame although the port is not 9092')
      t.equal(call.capture.records.filter((r) => r.type === 'fin' && r.direction === 'in').length, 1, "Asterisk's FIN is recorded")
      t.equal(directionStream(call.capture, 'out').bytes.length, 0, 'the recording server sent nothing')

      // Frame times come from the packet times: they match the recording's own times.
      const report = inspectCapture(call.capture, { frames: true })
      const times = report.frames!.filter((f) => f.direction === 'in').map((f) => f.atMs)
      t.equal(times.length, recording.frames.length)
      const shift = times[0]! - recording.frames[0]!.atMs
      const worst = Math.max(...recording.frames.map((f, i) => Math.abs(times[i]! - shift - f.atMs)))
      t.ok(worst < 5, `every frame within 5 ms of its recorded time (worst ${worst.toFixed(2)} ms)`)
      t.same(report.inbound.gaps.map((g) => Math.round(g.gapMs / 10)), [102], 'the 1 s pause is there')

      const byPort = importPacketCapture(readFileSync(`${CAPTURE_DIR}${file}`), { name: file, tool: TOOL, port: 9301 })
      t.ok(inboundOf(byPort).equals(recording.bytes), 'and the same when the port is given')
    })
  }
})

t.test('every link type and IP version gives the same stream', async (t) => {
  const v6 = { client: { address: 'fd00::5', port: 41234 }, server: { address: 'fd00::9', port: 9092 } }
  const cases: Array<{ name: string; linkType: number; frame: (p: Buffer) => Buffer; peers?: typeof v6 }> = [
    { name: 'Ethernet', linkType: LINK.Ethernet, frame: (p) => link.ethernet(p) },
    { name: 'Ethernet with a VLAN tag', linkType: LINK.Ethernet, frame: (p) => link.ethernet(p, { vlan: 42 }) },
    { name: 'Linux cooked SLL', linkType: LINK.LinuxSll, frame: link.sll },
    { name: 'Linux cooked SLL2 (tcpdump -i any)', linkType: LINK.LinuxSll2, frame: link.sll2 },
    { name: 'BSD loopback, little-endian family', linkType: LINK.Null, frame: (p) => link.null(p) },
    { name: 'BSD loopback, big-endian family', linkType: LINK.Null, frame: (p) => link.null(p, { bigEndian: true }) },
    { name: 'OpenBSD loop', linkType: LINK.Loop, frame: link.loop },
    { name: 'raw IPv4', linkType: LINK.Raw, frame: link.raw },
    { name: 'raw IPv6', linkType: LINK.Raw, frame: link.raw, peers: v6 },
    { name: 'LINKTYPE_IPV6', linkType: LINK.Ipv6, frame: link.raw, peers: v6 },
    { name: 'IPv6 over SLL2', linkType: LINK.LinuxSll2, frame: link.sll2, peers: v6 },
    { name: 'IPv6 over BSD loopback (macOS family 30)', linkType: LINK.Null, frame: (p) => link.null(p), peers: v6 },
  ]
  for (const c of cases) {
    const { conv, stream } = callConversation(c.peers)
    const result = importOf(pcapFile(c.linkType, conv.specs(c.frame)))
    t.ok(inboundOf(result).equals(stream), `${c.name}: exact stream`)
    if (c.peers) t.same(result.calls[0]?.asterisk, c.peers.client, `${c.name}: IPv6 addresses in RFC 5952 form`)
  }
  // The same segments behind an IPv6 hop-by-hop options header.
  const plain = callConversation(v6)
  const withExt = plain.conv.packets.map((p) => {
    const [src, dst] = p.from === 'client' ? [v6.client, v6.server] : [v6.server, v6.client]
    return { timeUs: p.timeUs, data: ip.v6(src.address, dst.address, p.ip.subarray(40), 6, { hopByHop: true }) }
  })
  t.ok(inboundOf(importOf(pcapFile(LINK.Raw, withExt))).equals(plain.stream), 'IPv6 extension headers are walked')
})

t.test('file formats: pcap in both byte orders and resolutions, pcapng in both byte orders with several interfaces', async (t) => {
  const { conv, stream } = callConversation()
  const specs = conv.specs()
  const firstData = conv.packets[dataPacketIndex(conv.packets, 'client', 1)]!.timeUs - conv.packets[0]!.timeUs
  for (const [name, file] of [
    ['pcap, microseconds, little-endian', pcapFile(LINK.Ethernet, specs)],
    ['pcap, microseconds, big-endian', pcapFile(LINK.Ethernet, specs, { bigEndian: true })],
    ['pcap, nanoseconds', pcapFile(LINK.Ethernet, specs, { nanos: true })],
    ['pcapng, default microseconds', pcapngFile([{ linkType: LINK.Ethernet }], specs)],
    ['pcapng, nanoseconds (tshark)', pcapngFile([{ linkType: LINK.Ethernet, tsresol: 9 }], specs)],
    ['pcapng, big-endian', pcapngFile([{ linkType: LINK.Ethernet, tsresol: 9 }], specs, { bigEndian: true })],
  ] as const) {
    const result = importOf(file)
    t.ok(inboundOf(result).equals(stream), `${name}: exact stream`)
    const audio = result.calls[0]!.capture.records.filter((r) => r.direction === 'in' && r.type === 'data')[1]!
    t.equal(audio.offsetUs, firstData, `${name}: times to the microsecond`)
  }

  // Two interfaces with different link types (tshark -i lo -i eth0): each packet decoded by its own.
  const other = new TcpConversation({ client: { address: '10.0.0.7', port: 50000 }, server: { address: '10.0.0.9', port: 9092 } })
  other.handshake(5).clientSends(6, frames.uuid('11111111-2222-3333-4444-555555555555')).clientSends(26, frames.audio(0x12, 640)).clientFin(40)
  const mixed: PacketSpec[] = [...conv.specs(link.sll2).map((p) => ({ ...p, iface: 0 })), ...other.specs(link.ethernet).map((p) => ({ ...p, iface: 1 }))].sort((a, b) => a.timeUs - b.timeUs)
  const result = importOf(pcapngFile([{ linkType: LINK.LinuxSll2, tsresol: 9 }, { linkType: LINK.Ethernet }], mixed))
  t.equal(result.calls.length, 2, 'both calls found')
  t.same(result.calls.map((c) => c.uuid).sort(), [ID, '11111111-2222-3333-4444-555555555555'].sort())
})

t.test('TCP reassembly: out-of-order segments are put back in order, at the time they became readable', async (t) => {
  const { conv, stream } = callConversation()
  const a = dataPacketIndex(conv.packets, 'client', 2)
  const b = dataPacketIndex(conv.packets, 'client', 3)
  const packets = [...conv.packets]
  ;[packets[a], packets[b]] = [packets[b]!, packets[a]!]
  const specs = packets.map((p) => ({ timeUs: p.timeUs, data: link.ethernet(p.ip) }))
  const result = importOf(pcapFile(LINK.Ethernet, specs))
  t.ok(inboundOf(result).equals(stream), 'exact stream')
  const call = result.calls[0]!
  t.match(call.notes.join('\n'), /1 out-of-order segment\(s\) from Asterisk reordered/)
  // The later segment arrived first; it waited for the hole to fill and came out with it, in one read.
  const reads = call.capture.records.filter((r) => r.direction === 'in' && r.type === 'data')
  t.equal(reads.length, 7, 'the two segments became one read')
  t.equal(reads[2]!.data.length, 2 * 323, 'holding both frames')
  t.equal(reads[2]!.offsetUs, packets[b]!.timeUs - conv.packets[0]!.timeUs, 'at the time of the segment that filled the hole')
})

t.test('TCP reassembly: retransmissions and overlapping repacketisation are dropped', async (t) => {
  const { conv, stream } = callConversation()
  const packets = [...conv.packets]
  const third = dataPacketIndex(packets, 'client', 3)
  // The same segment again 200 ms later (a retransmission after a lost ACK)...
  packets.splice(third + 2, 0, { ...packets[third]!, timeUs: packets[third]!.timeUs + 200 })
  const result = importOf(pcapFile(LINK.Ethernet, packets.map((p) => ({ timeUs: p.timeUs, data: link.ethernet(p.ip) }))))
  t.ok(inboundOf(result).equals(stream), 'exact stream')
  t.match(result.calls[0]!.notes.join('\n'), /1 retransmitted segment\(s\) from Asterisk dropped/)

  // ...and a retransmission that repacketises: one segment covering two already-sent frames plus new bytes.
  const conv2 = new TcpConversation({ client: ASTERISK, server: SERVER, clientIsn: 500 })
  conv2.handshake(0).clientSends(1, frames.uuid(ID)).clientSends(21, frames.audio(0x10, 320))
  const overlap = new TcpConversation({ client: ASTERISK, server: SERVER, clientIsn: 500 })
  overlap.handshake(0).clientSends(60, Buffer.concat([frames.uuid(ID), frames.audio(0x10, 320), frames.audio(0x10, 320)]))
  const merged = [...conv2.packets, overlap.packets.at(-1)!]
  const repack = importOf(pcapFile(LINK.Ethernet, merged.map((p) => ({ timeUs: p.timeUs, data: link.ethernet(p.ip) }))))
  t.ok(inboundOf(repack).equals(Buffer.concat([frames.uuid(ID), frames.audio(0x10, 320), frames.audio(0x10, 320)])), 'only the new bytes of the overlapping segment are kept')
})

t.test('TCP reassembly: a capture without the SYN still yields the stream when its first bytes are there', async (t) => {
  const { conv, stream } = callConversation()
  const noHandshake = conv.packets.filter((p) => !(p.flags & 0x02) && !(p.payload.length === 0 && p.flags === 0x10))
  const result = importOf(pcapFile(LINK.Ethernet, noHandshake.map((p) => ({ timeUs: p.timeUs, data: link.ethernet(p.ip) }))))
  t.ok(inboundOf(result).equals(stream), 'exact stream')
  t.match(result.calls[0]!.notes.join('\n'), /no SYN/)

  // No SYN and the first data segment arrives after the second: the lowest sequence number is the start.
  const swapped = [...noHandshake]
  ;[swapped[0], swapped[1]] = [swapped[1]!, swapped[0]!]
  t.ok(inboundOf(importOf(pcapFile(LINK.Ethernet, swapped.map((p) => ({ timeUs: p.timeUs, data: link.ethernet(p.ip) }))))).equals(stream), 'even out of order')

  // Sequence numbers that wrap around 2^32 mid-call.
  const wrapping = callConversation({ clientIsn: 0xffffffff - 400 })
  t.ok(inboundOf(importOf(pcapFile(LINK.Ethernet, wrapping.conv.specs()))).equals(wrapping.stream), 'across a sequence-number wrap')
})

t.test('a capture that began mid-call is reported, not imported as garbage', async (t) => {
  const { conv } = callConversation()
  const late = conv.packets.filter((_, i) => i >= dataPacketIndex(conv.packets, 'client', 2))
  const result = importOf(pcapFile(LINK.Ethernet, late.map((p) => ({ timeUs: p.timeUs, data: link.ethernet(p.ip) }))))
  t.equal(result.calls.length, 0)
  t.equal(result.failures.length, 1)
  t.equal(result.failures[0]?.error.code, 'ERR_PCAP_NOT_AUDIOSOCKET')
  t.match(result.failures[0]?.error.message, /began after the connection was opened \(no SYN\).*start tcpdump before the call/)
})

t.test('lost packets: a hole in the stream fails that call, or is imported up to the hole on request', async (t) => {
  const { conv, stream } = callConversation()
  const lost = dataPacketIndex(conv.packets, 'client', 3)
  const holed = conv.packets.filter((_, i) => i !== lost)
  const file = pcapFile(LINK.Ethernet, holed.map((p) => ({ timeUs: p.timeUs, data: link.ethernet(p.ip) })))
  const strict = importOf(file)
  t.equal(strict.failures[0]?.error.code, 'ERR_PCAP_STREAM_GAP')
  t.match(strict.failures[0]?.error.message, /323 bytes from Asterisk are missing at stream offset 665/)
  const salvaged = importOf(file, { allowTruncated: true })
  t.ok(inboundOf(salvaged).equals(stream.subarray(0, 665)), 'with allowTruncated: the stream up to the hole')
  t.match(salvaged.calls[0]!.notes.join('\n'), /imported up to there/)
})

t.test('a snap length that cut packets is named, with the fix', async (t) => {
  const { conv } = callConversation()
  const cutAt = dataPacketIndex(conv.packets, 'client', 2)
  const specs = conv.specs().map((p, i) => (i === cutAt ? { timeUs: p.timeUs, data: p.data.subarray(0, 100), originalLength: p.data.length } : p))
  const result = importOf(pcapFile(LINK.Ethernet, specs, { snapLength: 100 }))
  t.equal(result.failures[0]?.error.code, 'ERR_PCAP_STREAM_GAP')
  t.match(result.failures[0]?.error.message, /cut by the capture's snap length.*-s 0/)
})

t.test('several calls, port reuse and other traffic in one capture', async (t) => {
  const first = callConversation()
  // The same 4-tuple again after the first call closed (the kernel reused the port).
  const again = new TcpConversation({ client: ASTERISK, server: SERVER, clientIsn: 99, startUs: first.conv.packets.at(-1)!.timeUs + 5_000_000 })
  again.handshake(0).clientSends(1, frames.uuid('99999999-8888-4777-8666-555555555555')).clientSends(21, frames.audio(0x10, 320)).clientFin(40)
  const sip = { timeUs: first.conv.packets[0]!.timeUs + 10, data: link.ethernet(ip.udp4('10.20.0.5', '10.20.0.1', 5060, 5060, Buffer.from('INVITE sip:100@pbx SIP/2.0\r\n'))) }
  const http = new TcpConversation({ client: { address: '10.20.0.5', port: 50001 }, server: { address: '10.20.0.1', port: 80 }, startUs: first.conv.packets[0]!.timeUs + 20 })
  http.handshake(0).clientSends(1, Buffer.from('GET / HTTP/1.1\r\n\r\n'))
  const specs = [...first.conv.specs(), sip, ...http.specs(), ...again.specs()].sort((a, b) => a.timeUs - b.timeUs)
  const result = importOf(pcapFile(LINK.Ethernet, specs))
  t.equal(result.calls.length, 2, 'two AudioSocket calls')
  t.same(result.calls.map((c) => c.uuid), [ID, '99999999-8888-4777-8666-555555555555'], 'in order, each with its own stream')
  t.equal(result.ignored.length, 1, 'the HTTP connection is ignored')
  t.match(result.notes.join('\n'), /1 udp packet\(s\) were not TCP/)
})

t.test('a reset by Asterisk is recorded as a reset', async (t) => {
  const conv = new TcpConversation({ client: ASTERISK, server: SERVER })
  conv.handshake(0).clientSends(1, frames.uuid(ID)).clientSends(21, frames.audio(0x10, 320)).clientReset(30)
  const capture = importOf(pcapFile(LINK.Ethernet, conv.specs())).calls[0]!.capture
  t.same(capture.records.map((r) => `${r.type}:${r.direction}`), ['data:in', 'data:in', 'reset:in'])
})

t.test('corrupt and foreign inputs get clear errors', async (t) => {
  const { conv } = callConversation()
  const whole = pcapFile(LINK.Ethernet, conv.specs())

  const cut = whole.subarray(0, whole.length - 50)
  t.throws(() => importOf(cut), { code: 'ERR_PCAP_TRUNCATED', message: /test\.pcap is cut off inside packet 13 .*--allow-truncated/ }, 'a truncated pcap names the packet')
  const salvaged = importOf(cut, { allowTruncated: true })
  t.match(salvaged.notes.join('\n'), /cut off inside packet 13/, 'allowTruncated imports the packets before it')
  t.equal(salvaged.calls.length, 1)

  const ng = pcapngFile([{ linkType: LINK.Ethernet }], conv.specs())
  t.throws(() => importOf(ng.subarray(0, ng.length - 7)), { code: 'ERR_PCAP_TRUNCATED', message: /cut off inside the block at byte \d+/ }, 'a truncated pcapng names the block')
  t.throws(() => importOf(pcapFile(LINK.Ethernet, []).subarray(0, 20)), { code: 'ERR_PCAP_TRUNCATED', message: /24-byte pcap file header/ })

  const rtp = Array.from({ length: 5 }, (_, i) => ({ timeUs: 1e15 + i * 20000, data: link.ethernet(ip.udp4('10.0.0.1', '10.0.0.2', 10000, 20000, Buffer.alloc(172))) }))
  t.throws(() => importOf(pcapFile(LINK.Ethernet, rtp)), { code: 'ERR_PCAP_NO_TCP', message: /no TCP packets \(5 packets: 5 udp\).*tcp port 9092/ }, 'non-TCP traffic only')

  const web = new TcpConversation({ client: { address: '10.0.0.1', port: 50000 }, server: { address: '10.0.0.2', port: 9092 } })
  web.handshake(0).clientSends(1, Buffer.from('GET / HTTP/1.1\r\nHost: pbx\r\n\r\n')).clientFin(2)
  const notAudioSocket = importOf(pcapFile(LINK.Ethernet, web.specs()))
  t.equal(notAudioSocket.failures[0]?.error.code, 'ERR_PCAP_NOT_AUDIOSOCKET', 'a non-AudioSocket stream on the AudioSocket port')
  t.match(notAudioSocket.failures[0]?.error.message, /does not start with a UUID frame \(01 00 10\) but with 47 45 54 20 .*"GET \/ HT".*not AudioSocket traffic/)

  const elsewhere = new TcpConversation({ client: { address: '10.0.0.1', port: 50000 }, server: { address: '10.0.0.2', port: 8080 } })
  elsewhere.handshake(0).clientSends(1, Buffer.from('GET / HTTP/1.1\r\n\r\n'))
  t.throws(() => importOf(pcapFile(LINK.Ethernet, elsewhere.specs())), { code: 'ERR_PCAP_NO_AUDIOSOCKET', message: /1 TCP connection\(s\), none on port 9092 .*--port/ })

  t.throws(() => importOf(pcapFile(147, conv.specs())), { code: 'ERR_PCAP_LINK_TYPE', message: /link type 147/ }, 'an unknown link type')
  t.throws(() => importOf(Buffer.from('this is a text file, not a capture')), { code: 'ERR_PCAP_FORMAT', message: /not a pcap or pcapng file \(it starts with 74 68 69 73\)/ })
  t.throws(() => importOf(Buffer.from('ASCAP\r\n\x1a\x00\x01')), { code: 'ERR_PCAP_FORMAT', message: /already an AudioSocket capture/ })
  const empty = pcapFile(LINK.Ethernet, [])
  t.throws(() => importOf(empty), { code: 'ERR_PCAP_NO_TCP', message: /holds no packets/ })
  t.ok(new AppError('ERR_PCAP_FORMAT').message.length > 0, 'every code has a catalogue message')
})
