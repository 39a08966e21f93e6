/**
 * Named builders for packet-capture test inputs, layer by layer, so each test says what it is
 * made of instead of carrying hex: a TCP conversation -> IP packets -> link-layer frames -> a
 * pcap or pcapng file.
 *
 *   const call = new TcpConversation({ client: { address: '10.0.0.5', port: 40000 }, server: { address: '10.0.0.9', port: 9092 } })
 *   call.handshake(0).clientSends(1, frames.uuid(id)).clientSends(21, frames.audio(0x10, 320)).clientFin(40)
 *   const file = pcapFile(LinkType.Ethernet, call.packets.map((p) => ({ timeUs: p.timeUs, data: link.ethernet(p.ip) })))
 *
 * The IP and TCP checksums are left zero: the importer does not verify them (captures taken on
 * the sending host carry offloaded, wrong checksums anyway).
 */
import { isIPv6 } from 'node:net'

export const LINK = { Null: 0, Ethernet: 1, Raw: 101, Loop: 108, LinuxSll: 113, Ipv4: 228, Ipv6: 229, LinuxSll2: 276 } as const

export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const

// ---------------------------------------------------------------------------------------------
// IP and TCP

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number))
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = address.includes('::') ? (tail === '' ? [] : tail.split(':')) : []
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2))
  return out
}

export function tcpSegment(options: { srcPort: number; dstPort: number; seq: number; ack?: number; flags: number; payload?: Buffer; window?: number }): Buffer {
  const header = Buffer.alloc(20)
  header.writeUInt16BE(options.srcPort, 0)
  header.writeUInt16BE(options.dstPort, 2)
  header.writeUInt32BE(options.seq >>> 0, 4)
  header.writeUInt32BE((options.ack ?? 0) >>> 0, 8)
  header[12] = 5 << 4 // data offset: 5 words, no options
  header[13] = options.flags
  header.writeUInt16BE(options.window ?? 65535, 14)
  return Buffer.concat([header, options.payload ?? Buffer.alloc(0)])
}

export const ip = {
  /** An IPv4 packet (DF set, no options) around `payload`. */
  v4(src: string, dst: string, payload: Buffer, protocol = 6): Buffer {
    const header = Buffer.alloc(20)
    header[0] = 0x45
    header.writeUInt16BE(20 + payload.length, 2)
    header.writeUInt16BE(0x4000, 6) // don't fragment
    header[8] = 64
    header[9] = protocol
    ipv4Bytes(src).copy(header, 12)
    ipv4Bytes(dst).copy(header, 16)
    return Buffer.concat([header, payload])
  },
  /** An IPv6 packet around `payload`, optionally behind a hop-by-hop options header. */
  v6(src: string, dst: string, payload: Buffer, nextHeader = 6, options: { hopByHop?: boolean } = {}): Buffer {
    const ext = options.hopByHop ? Buffer.from([nextHeader, 0, 1, 4, 0, 0, 0, 0]) : Buffer.alloc(0)
    const header = Buffer.alloc(40)
    header[0] = 0x60
    header.writeUInt16BE(ext.length + payload.length, 4)
    header[6] = options.hopByHop ? 0 : nextHeader
    header[7] = 64
    ipv6Bytes(src).copy(header, 8)
    ipv6Bytes(dst).copy(header, 24)
    return Buffer.concat([header, ext, payload])
  },
  /** A UDP datagram inside IPv4 (RTP, SIP: the other traffic on a PBX). */
  udp4(src: string, dst: string, srcPort: number, dstPort: number, payload: Buffer): Buffer {
    const udp = Buffer.alloc(8)
    udp.writeUInt16BE(srcPort, 0)
    udp.writeUInt16BE(dstPort, 2)
    udp.writeUInt16BE(8 + payload.length, 4)
    return ip.v4(src, dst, Buffer.concat([udp, payload]), 17)
  },
}

// ---------------------------------------------------------------------------------------------
// Link layer

function etherTypeOf(ipPacket: Buffer): number {
  return (ipPacket[0] as number) >> 4 === 6 ? 0x86dd : 0x0800
}

export const link = {
  /** Ethernet II, optionally with one 802.1Q VLAN tag; padded to the 60-byte minimum like a NIC. */
  ethernet(ipPacket: Buffer, options: { vlan?: number } = {}): Buffer {
    const macs = Buffer.from([0, 0x11, 0x22, 0x33, 0x44, 0x55, 0, 0x66, 0x77, 0x88, 0x99, 0xaa])
    const tag = options.vlan === undefined ? Buffer.alloc(0) : Buffer.from([0x81, 0x00, (options.vlan >> 8) & 0x0f, options.vlan & 0xff])
    const type = Buffer.alloc(2)
    type.writeUInt16BE(etherTypeOf(ipPacket))
    const frame = Buffer.concat([macs, tag, type, ipPacket])
    return frame.length < 60 ? Buffer.concat([frame, Buffer.alloc(60 - frame.length)]) : frame
  },
  /** Linux cooked capture v1 (tcpdump -i any, libpcap before 1.10). */
  sll(ipPacket: Buffer): Buffer {
    const h = Buffer.alloc(16)
    h.writeUInt16BE(0, 0) // packet type: to us
    h.writeUInt16BE(772, 2) // ARPHRD_LOOPBACK
    h.writeUInt16BE(6, 4) // address length
    h.writeUInt16BE(etherTypeOf(ipPacket), 14)
    return Buffer.concat([h, ipPacket])
  },
  /** Linux cooked capture v2 (tcpdump -i any, libpcap 1.10+). */
  sll2(ipPacket: Buffer): Buffer {
    const h = Buffer.alloc(20)
    h.writeUInt16BE(etherTypeOf(ipPacket), 0)
    h.writeUInt32BE(1, 4) // interface index
    h.writeUInt16BE(772, 8) // ARPHRD_LOOPBACK
    h[10] = 0 // packet type
    h[11] = 6 // address length
    return Buffer.concat([h, ipPacket])
  },
  /** BSD loopback (DLT_NULL): the address family in the capturing host's byte order. */
  null(ipPacket: Buffer, options: { family?: number; bigEndian?: boolean } = {}): Buffer {
    const h = Buffer.alloc(4)
    const family = options.family ?? ((ipPacket[0] as number) >> 4 === 6 ? 30 : 2)
    if (options.bigEndian) h.writeUInt32BE(family)
    else h.writeUInt32LE(family)
    return Buffer.concat([h, ipPacket])
  },
  /** OpenBSD loopback (DLT_LOOP): the family, big-endian. */
  loop(ipPacket: Buffer): Buffer {
    const h = Buffer.alloc(4)
    h.writeUInt32BE((ipPacket[0] as number) >> 4 === 6 ? 24 : 2)
    return Buffer.concat([h, ipPacket])
  },
  raw(ipPacket: Buffer): Buffer {
    return ipPacket
  },
}

// ---------------------------------------------------------------------------------------------
// Files

export interface PacketSpec {
  /** Microseconds since the epoch. */
  timeUs: number
  data: Buffer
  /** Length on the wire; more than data.length simulates a snap-length cut. */
  originalLength?: number
  /** pcapng: interface index. */
  iface?: number
}

/** Classic pcap: microsecond (default) or nanosecond timestamps, either byte order. */
export function pcapFile(linkType: number, packets: PacketSpec[], options: { nanos?: boolean; bigEndian?: boolean; snapLength?: number } = {}): Buffer {
  const be = options.bigEndian === true
  const u32 = (b: Buffer, v: number, o: number): void => void (be ? b.writeUInt32BE(v >>> 0, o) : b.writeUInt32LE(v >>> 0, o))
  const u16 = (b: Buffer, v: number, o: number): void => void (be ? b.writeUInt16BE(v, o) : b.writeUInt16LE(v, o))
  const header = Buffer.alloc(24)
  u32(header, options.nanos ? 0xa1b23c4d : 0xa1b2c3d4, 0)
  u16(header, 2, 4)
  u16(header, 4, 6)
  u32(header, options.snapLength ?? 262144, 16)
  u32(header, linkType, 20)
  const parts: Buffer[] = [header]
  for (const p of packets) {
    const record = Buffer.alloc(16)
    const seconds = Math.floor(p.timeUs / 1e6)
    const fraction = options.nanos ? Math.round((p.timeUs - seconds * 1e6) * 1000) : Math.round(p.timeUs - seconds * 1e6)
    u32(record, seconds, 0)
    u32(record, fraction, 4)
    u32(record, p.data.length, 8)
    u32(record, p.originalLength ?? p.data.length, 12)
    parts.push(record, p.data)
  }
  return Buffer.concat(parts)
}

export interface PcapngInterface {
  linkType: number
  /** if_tsresol byte: 6 = microseconds (the default), 9 = nanoseconds. */
  tsresol?: number
}

/** pcapng: one section, the given interfaces, Enhanced Packet Blocks; either byte order. */
export function pcapngFile(interfaces: PcapngInterface[], packets: PacketSpec[], options: { bigEndian?: boolean } = {}): Buffer {
  const be = options.bigEndian === true
  const block = (type: number, body: Buffer): Buffer => {
    const padded = Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)])
    const total = 12 + padded.length
    const b = Buffer.alloc(total)
    const u32 = (v: number, o: number): void => void (be ? b.writeUInt32BE(v >>> 0, o) : b.writeUInt32LE(v >>> 0, o))
    u32(type, 0)
    u32(total, 4)
    padded.copy(b, 8)
    u32(total, total - 4)
    return b
  }
  const w32 = (v: number): Buffer => {
    const b = Buffer.alloc(4)
    if (be) b.writeUInt32BE(v >>> 0)
    else b.writeUInt32LE(v >>> 0)
    return b
  }
  const w16 = (v: number): Buffer => {
    const b = Buffer.alloc(2)
    if (be) b.writeUInt16BE(v)
    else b.writeUInt16LE(v)
    return b
  }
  const shb = block(0x0a0d0d0a, Buffer.concat([w32(0x1a2b3c4d), w16(1), w16(0), Buffer.alloc(8, 0xff)]))
  const idbs = interfaces.map((iface) => {
    const opts = iface.tsresol === undefined ? Buffer.alloc(0) : Buffer.concat([w16(9), w16(1), Buffer.from([iface.tsresol, 0, 0, 0]), w16(0), w16(0)])
    return block(1, Buffer.concat([w16(iface.linkType), w16(0), w32(262144), opts]))
  })
  const epbs = packets.map((p) => {
    const iface = interfaces[p.iface ?? 0] as PcapngInterface
    const perSecond = 10 ** (iface.tsresol ?? 6)
    const ticks = (BigInt(Math.floor(p.timeUs / 1e6)) * BigInt(perSecond)) + BigInt(Math.round(((p.timeUs % 1e6) * perSecond) / 1e6))
    return block(
      6,
      Buffer.concat([w32(p.iface ?? 0), w32(Number(ticks >> 32n)), w32(Number(ticks & 0xffffffffn)), w32(p.data.length), w32(p.originalLength ?? p.data.length), p.data]),
    )
  })
  // A name-resolution block the reader must skip by length.
  const nrb = block(4, Buffer.concat([w16(0), w16(0)]))
  return Buffer.concat([shb, ...idbs, nrb, ...epbs])
}

// ---------------------------------------------------------------------------------------------
// A TCP conversation

export interface Peer {
  address: string
  port: number
}

export interface ConversationPacket {
  timeUs: number
  /** The IP packet. */
  ip: Buffer
  from: 'client' | 'server'
  flags: number
  payload: Buffer
}

/**
 * Builds the IP packets of one TCP connection, tracking sequence numbers like a real stack, so
 * tests can then reorder, duplicate or drop packets to make the capture they need.
 */
export class TcpConversation {
  readonly packets: ConversationPacket[] = []
  readonly client: Peer
  readonly server: Peer
  #seq: { client: number; server: number }
  readonly #startUs: number

  constructor(options: { client: Peer; server: Peer; clientIsn?: number; serverIsn?: number; startUs?: number }) {
    this.client = options.client
    this.server = options.server
    this.#seq = { client: options.clientIsn ?? 1_000_000, server: options.serverIsn ?? 7_000_000 }
    this.#startUs = options.startUs ?? 1_763_676_000_000_000
  }

  #send(atMs: number, from: 'client' | 'server', flags: number, payload: Buffer = Buffer.alloc(0)): this {
    const to = from === 'client' ? 'server' : 'client'
    const src = this[from]
    const dst = this[to]
    const segment = tcpSegment({ srcPort: src.port, dstPort: dst.port, seq: this.#seq[from], ack: this.#seq[to], flags, payload })
    const packet = isIPv6(src.address) ? ip.v6(src.address, dst.address, segment) : ip.v4(src.address, dst.address, segment)
    this.packets.push({ timeUs: this.#startUs + Math.round(atMs * 1000), ip: packet, from, flags, payload })
    this.#seq[from] = (this.#seq[from] + payload.length + (flags & (TCP_FLAGS.SYN | TCP_FLAGS.FIN) ? 1 : 0)) >>> 0
    return this
  }

  /** SYN, SYN-ACK, ACK at `atMs`. */
  handshake(atMs: number): this {
    return this.#send(atMs, 'client', TCP_FLAGS.SYN).#send(atMs + 0.02, 'server', TCP_FLAGS.SYN | TCP_FLAGS.ACK).#send(atMs + 0.04, 'client', TCP_FLAGS.ACK)
  }

  clientSends(atMs: number, bytes: Buffer): this {
    return this.#send(atMs, 'client', TCP_FLAGS.PSH | TCP_FLAGS.ACK, bytes)
  }

  serverSends(atMs: number, bytes: Buffer): this {
    return this.#send(atMs, 'server', TCP_FLAGS.PSH | TCP_FLAGS.ACK, bytes)
  }

  clientFin(atMs: number): this {
    return this.#send(atMs, 'client', TCP_FLAGS.FIN | TCP_FLAGS.ACK)
  }

  serverFin(atMs: number): this {
    return this.#send(atMs, 'server', TCP_FLAGS.FIN | TCP_FLAGS.ACK)
  }

  clientReset(atMs: number): this {
    return this.#send(atMs, 'client', TCP_FLAGS.RST)
  }

  /** Packets as file entries, framed by `frame` (a `link.*` builder). */
  specs(frame: (ipPacket: Buffer) => Buffer = link.ethernet): PacketSpec[] {
    return this.packets.map((p) => ({ timeUs: p.timeUs, data: frame(p.ip) }))
  }
}

/** Index of the n-th (0-based) packet carrying data from `from`. */
export function dataPacketIndex(packets: ConversationPacket[], from: 'client' | 'server', n: number): number {
  let seen = -1
  return packets.findIndex((p) => p.from === from && p.payload.length > 0 && ++seen === n)
}
