/**
 * One captured packet -> a TCP segment, through the link layer and IP.
 *
 * Link types (tcpdump's LINKTYPE_ values): Ethernet (1, with 802.1Q/802.1ad VLAN tags), Linux
 * cooked SLL (113) and SLL2 (276) (what `tcpdump -i any` writes: v1 before libpcap 1.10, v2 after),
 * BSD loopback/null (0, address family in the capturing host's byte order) and OpenBSD loop (108,
 * big-endian), and raw IP (101; 228 IPv4; 229 IPv6).
 *
 * IPv4 (options skipped; padding after the total length trimmed; fragments reported, not
 * reassembled: a TCP stream on loopback or a LAN is not fragmented, its segments are) and IPv6
 * (extension headers walked). TCP checksums are not verified: on the capturing host they are
 * usually left to the NIC and appear wrong in every outgoing packet.
 */

export const LinkType = {
  Null: 0,
  Ethernet: 1,
  Raw: 101,
  Loop: 108,
  LinuxSll: 113,
  Ipv4: 228,
  Ipv6: 229,
  LinuxSll2: 276,
} as const

const LINK_TYPE_NAMES: Record<number, string> = {
  0: 'BSD loopback (NULL)',
  1: 'Ethernet',
  101: 'raw IP',
  108: 'OpenBSD loopback',
  113: 'Linux cooked (SLL)',
  228: 'raw IPv4',
  229: 'raw IPv6',
  276: 'Linux cooked v2 (SLL2)',
}

export function isSupportedLinkType(linkType: number): boolean {
  return linkType in LINK_TYPE_NAMES
}

export function linkTypeName(linkType: number): string {
  return LINK_TYPE_NAMES[linkType] ?? `link type ${linkType}`
}

export const TcpFlag = { Fin: 0x01, Syn: 0x02, Rst: 0x04, Psh: 0x08, Ack: 0x10 } as const

export interface TcpSegment {
  src: string
  dst: string
  srcPort: number
  dstPort: number
  seq: number
  ack: number
  flags: number
  payload: Buffer
}

export type DecodedPacket =
  | { kind: 'tcp'; segment: TcpSegment; truncated: boolean }
  /** Not TCP over IP: `what` says what it was (udp, icmp, arp, ipv4-fragment, ...). */
  | { kind: 'other'; what: string }
  | { kind: 'malformed'; reason: string }

const ETHERTYPE_IPV4 = 0x0800
const ETHERTYPE_IPV6 = 0x86dd
const VLAN_ETHERTYPES = new Set([0x8100, 0x88a8, 0x9100])
const IPPROTO_TCP = 6

const AF_INET = 2
/** AF_INET6 differs per OS: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, macOS 30. */
const AF_INET6 = new Set([10, 24, 28, 30])

/** `originalLength`: the packet's length on the wire, to tell a snap-length cut from a bad packet. */
export function decodePacket(linkType: number, data: Buffer, originalLength = data.length): DecodedPacket {
  const truncated = originalLength > data.length
  const ip = ipPayloadOffset(linkType, data)
  if (typeof ip === 'string') return ip.startsWith('malformed:') ? { kind: 'malformed', reason: ip.slice(10) } : { kind: 'other', what: ip }
  const { offset, version } = ip
  const decoded = version === 4 ? decodeIpv4(data, offset) : decodeIpv6(data, offset)
  if (decoded.kind !== 'tcp') return decoded
  return { ...decoded, truncated: truncated || decoded.truncated }
}

/** Where the IP header starts and which version, or a string naming what the packet is instead. */
function ipPayloadOffset(linkType: number, data: Buffer): { offset: number; version: 4 | 6 } | string {
  const byEthertype = (type: number, offset: number): { offset: number; version: 4 | 6 } | string => {
    if (type === ETHERTYPE_IPV4) return { offset, version: 4 }
    if (type === ETHERTYPE_IPV6) return { offset, version: 6 }
    if (type === 0x0806) return 'arp'
    return `ethertype 0x${type.toString(16).padStart(4, '0')}`
  }
  switch (linkType) {
    case LinkType.Ethernet: {
      if (data.length < 14) return 'malformed:shorter than an Ethernet header'
      let offset = 12
      let type = data.readUInt16BE(offset)
      while (VLAN_ETHERTYPES.has(type)) {
        offset += 4
        if (data.length < offset + 2) return 'malformed:cut inside a VLAN tag'
        type = data.readUInt16BE(offset)
      }
      if (type < 0x0600) return 'non-IP (802.3 frame)'
      return byEthertype(type, offset + 2)
    }
    case LinkType.LinuxSll:
      if (data.length < 16) return 'malformed:shorter than a Linux cooked (SLL) header'
      return byEthertype(data.readUInt16BE(14), 16)
    case LinkType.LinuxSll2:
      if (data.length < 20) return 'malformed:shorter than a Linux cooked v2 (SLL2) header'
      return byEthertype(data.readUInt16BE(0), 20)
    case LinkType.Null:
    case LinkType.Loop: {
      if (data.length < 4) return 'malformed:shorter than a loopback header'
      // NULL: the capturing host's byte order; a family is small, so a big value means the other order.
      let family = linkType === LinkType.Loop ? data.readUInt32BE(0) : data.readUInt32LE(0)
      if (family > 0xffff) family = data.readUInt32BE(0)
      if (family === AF_INET) return { offset: 4, version: 4 }
      if (AF_INET6.has(family)) return { offset: 4, version: 6 }
      return `address family ${family}`
    }
    case LinkType.Raw:
    case LinkType.Ipv4:
    case LinkType.Ipv6: {
      if (data.length < 1) return 'malformed:empty packet'
      const version = (data[0] as number) >> 4
      if (version === 4 || version === 6) return { offset: 0, version }
      return `malformed:raw IP packet with version ${version}`
    }
    default:
      return `malformed:unsupported ${linkTypeName(linkType)}`
  }
}

function ipv4Address(data: Buffer, offset: number): string {
  return `${data[offset]}.${data[offset + 1]}.${data[offset + 2]}.${data[offset + 3]}`
}

/** RFC 5952 text form: lowercase, no leading zeros, the longest run of zero groups as "::". */
export function ipv6Address(data: Buffer, offset: number): string {
  const groups: number[] = []
  for (let i = 0; i < 8; i++) groups.push(data.readUInt16BE(offset + i * 2))
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const text = groups.map((g) => g.toString(16))
  if (bestStart === -1) return text.join(':')
  return `${text.slice(0, bestStart).join(':')}::${text.slice(bestStart + bestLength).join(':')}`
}

function decodeIpv4(data: Buffer, offset: number): DecodedPacket | { kind: 'tcp'; segment: TcpSegment; truncated: boolean } {
  if (data.length < offset + 20) return { kind: 'malformed', reason: 'shorter than an IPv4 header' }
  const headerLength = ((data[offset] as number) & 0x0f) * 4
  if (headerLength < 20) return { kind: 'malformed', reason: `IPv4 header length ${headerLength}` }
  const totalLength = data.readUInt16BE(offset + 2)
  const flagsFragment = data.readUInt16BE(offset + 6)
  const protocol = data[offset + 9] as number
  if ((flagsFragment & 0x2000) !== 0 || (flagsFragment & 0x1fff) !== 0) return { kind: 'other', what: 'ipv4-fragment' }
  if (protocol !== IPPROTO_TCP) return { kind: 'other', what: protocolName(protocol) }
  // Total length 0 appears in captures of TSO super-packets: take what was captured.
  const end = totalLength === 0 ? data.length : Math.min(offset + totalLength, data.length)
  const truncated = totalLength !== 0 && offset + totalLength > data.length
  return decodeTcp(data, offset + headerLength, end, ipv4Address(data, offset + 12), ipv4Address(data, offset + 16), truncated)
}

function decodeIpv6(data: Buffer, offset: number): DecodedPacket | { kind: 'tcp'; segment: TcpSegment; truncated: boolean } {
  if (data.length < offset + 40) return { kind: 'malformed', reason: 'shorter than an IPv6 header' }
  const payloadLength = data.readUInt16BE(offset + 4)
  let next = data[offset + 6] as number
  const src = ipv6Address(data, offset + 8)
  const dst = ipv6Address(data, offset + 24)
  const end = payloadLength === 0 ? data.length : Math.min(offset + 40 + payloadLength, data.length)
  const truncated = payloadLength !== 0 && offset + 40 + payloadLength > data.length
  let o = offset + 40
  // Hop-by-hop, routing, destination options, AH: skip; a fragment header means a fragment.
  for (;;) {
    if (next === IPPROTO_TCP) return decodeTcp(data, o, end, src, dst, truncated)
    if (next === 0 || next === 43 || next === 60) {
      if (o + 2 > end) return { kind: 'malformed', reason: 'cut inside an IPv6 extension header' }
      next = data[o] as number
      o += ((data[o + 1] as number) + 1) * 8
    } else if (next === 51) {
      if (o + 2 > end) return { kind: 'malformed', reason: 'cut inside an IPv6 AH header' }
      next = data[o] as number
      o += ((data[o + 1] as number) + 2) * 4
    } else if (next === 44) {
      if (o + 8 > end) return { kind: 'malformed', reason: 'cut inside an IPv6 fragment header' }
      const fragment = data.readUInt16BE(o + 2)
      if ((fragment & 0xfff9) !== 0) return { kind: 'other', what: 'ipv6-fragment' }
      next = data[o] as number
      o += 8
    } else {
      return { kind: 'other', what: protocolName(next) }
    }
  }
}

function protocolName(protocol: number): string {
  return protocol === 17 ? 'udp' : protocol === 1 ? 'icmp' : protocol === 58 ? 'icmpv6' : protocol === 132 ? 'sctp' : `ip protocol ${protocol}`
}

function decodeTcp(data: Buffer, offset: number, end: number, src: string, dst: string, truncated: boolean): DecodedPacket {
  if (end - offset < 20) {
    return truncated ? { kind: 'malformed', reason: 'TCP header cut off by the snap length' } : { kind: 'malformed', reason: 'shorter than a TCP header' }
  }
  const dataOffset = ((data[offset + 12] as number) >> 4) * 4
  if (dataOffset < 20 || offset + dataOffset > end) return { kind: 'malformed', reason: `TCP data offset ${dataOffset}` }
  return {
    kind: 'tcp',
    truncated,
    segment: {
      src,
      dst,
      srcPort: data.readUInt16BE(offset),
      dstPort: data.readUInt16BE(offset + 2),
      seq: data.readUInt32BE(offset + 4),
      ack: data.readUInt32BE(offset + 8),
      flags: data[offset + 13] as number,
      payload: data.subarray(offset + dataOffset, end),
    },
  }
}
