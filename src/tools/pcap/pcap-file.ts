/**
 * Packets out of a packet-capture file, classic pcap or pcapng, whichever byte order or timestamp
 * resolution it was written with. Only what an AudioSocket import needs: each packet's link type,
 * time, captured bytes and original length. Packet bytes are views of the file buffer.
 *
 * Formats: pcap per draft-ietf-opsawg-pcap (magic a1b2c3d4 = microseconds, a1b23c4d = nanoseconds,
 * either byte order); pcapng per draft-ietf-opsawg-pcapng (Section Header, Interface Description,
 * Enhanced/Simple/obsolete Packet blocks; every other block is skipped by its length; several
 * sections and interfaces; if_tsresol and if_tsoffset honoured).
 */
import { AppError } from '../../shared/errors.js'

export interface RawPacket {
  /** 1-based position in the file, as Wireshark numbers packets. */
  number: number
  /** Capture time, microseconds since the Unix epoch (fractional for finer resolutions). */
  timeUs: number
  linkType: number
  data: Buffer
  /** Length on the wire; more than data.length when the snap length cut the packet. */
  originalLength: number
}

export interface PacketFile {
  format: 'pcap' | 'pcapng'
  packets: RawPacket[]
  /** With allowTruncated: where the file was cut off. */
  truncated?: string
}

export interface ReadPacketsOptions {
  /** Keep the packets before a cut-off point instead of failing. */
  allowTruncated?: boolean
  /** Names the file in errors. */
  name?: string
}

const PCAPNG_SHB = 0x0a0d0d0a
const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d

function hex4(bytes: Buffer): string {
  return [...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')
}

export function readPacketFile(bytes: Buffer, options: ReadPacketsOptions = {}): PacketFile {
  const name = options.name ?? 'the packet capture'
  if (bytes.length < 4) {
    throw new AppError('ERR_PCAP_FORMAT', `${name} is ${bytes.length} bytes long: too short for a pcap or pcapng file`)
  }
  const magicBE = bytes.readUInt32BE(0)
  if (magicBE === PCAPNG_SHB) return readPcapng(bytes, name, options)
  if ([0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1].includes(magicBE)) return readPcap(bytes, name, options)
  let hint = ''
  if (bytes.subarray(0, 5).toString('latin1') === 'ASCAP') hint = ' It is already an AudioSocket capture file: use it directly.'
  else if (bytes[0] === 0x1f && bytes[1] === 0x8b) hint = ' It is gzip-compressed: gunzip it first.'
  else if (magicBE === 0xa1b2cd34 || magicBE === 0x34cdb2a1) hint = ' It is a "modified" (Kuznetzov) pcap: convert it with "editcap -F pcap".'
  throw new AppError('ERR_PCAP_FORMAT', `${name} is not a pcap or pcapng file (it starts with ${hex4(bytes)}).${hint}`)
}

// ---------------------------------------------------------------------------------------------
// Classic pcap

function readPcap(bytes: Buffer, name: string, options: ReadPacketsOptions): PacketFile {
  const magic = bytes.readUInt32LE(0)
  const littleEndian = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d
  const nanos = magic === 0xa1b23c4d || magic === 0x4d3cb2a1
  const u32 = (o: number): number => (littleEndian ? bytes.readUInt32LE(o) : bytes.readUInt32BE(o))
  if (bytes.length < 24) {
    throw new AppError('ERR_PCAP_TRUNCATED', `${name} is cut off inside the 24-byte pcap file header (${bytes.length} bytes)`)
  }
  // The low 16 bits are the link type; the upper bits may carry FCS information.
  const linkType = u32(20) & 0xffff
  const packets: RawPacket[] = []
  let offset = 24
  while (offset < bytes.length) {
    const number = packets.length + 1
    const cut = (what: string): PacketFile => {
      const reason = `${name} is cut off inside packet ${number} (at byte ${offset}): ${what}`
      if (!options.allowTruncated) throw new AppError('ERR_PCAP_TRUNCATED', `${reason}. Was tcpdump stopped abruptly? --allow-truncated imports the packets before it.`)
      return { format: 'pcap', packets, truncated: reason }
    }
    if (bytes.length - offset < 16) return cut(`${bytes.length - offset} of 16 record-header bytes present`)
    const seconds = u32(offset)
    const fraction = u32(offset + 4)
    const captured = u32(offset + 8)
    const original = u32(offset + 12)
    if (captured > 0x4000000) {
      throw new AppError('ERR_PCAP_FORMAT', `${name}: packet ${number} at byte ${offset} claims ${captured} captured bytes; the file is corrupt`)
    }
    if (bytes.length - offset - 16 < captured) return cut(`${bytes.length - offset - 16} of ${captured} packet bytes present`)
    packets.push({
      number,
      timeUs: seconds * 1e6 + (nanos ? fraction / 1000 : fraction),
      linkType,
      data: bytes.subarray(offset + 16, offset + 16 + captured),
      originalLength: original,
    })
    offset += 16 + captured
  }
  return { format: 'pcap', packets }
}

// ---------------------------------------------------------------------------------------------
// pcapng

interface InterfaceInfo {
  linkType: number
  /** Timestamp units per second (if_tsresol; 10^6 by default). */
  unitsPerSecond: number
  offsetSeconds: number
}

function readPcapng(bytes: Buffer, name: string, options: ReadPacketsOptions): PacketFile {
  const packets: RawPacket[] = []
  let interfaces: InterfaceInfo[] = []
  let littleEndian = true
  let offset = 0
  let sawSection = false

  while (offset < bytes.length) {
    const cut = (what: string): PacketFile => {
      const reason = `${name} is cut off inside the block at byte ${offset}: ${what}`
      if (!options.allowTruncated) throw new AppError('ERR_PCAP_TRUNCATED', `${reason}. Was the capture stopped abruptly? --allow-truncated imports the packets before it.`)
      return { format: 'pcapng', packets, truncated: reason }
    }
    if (bytes.length - offset < 12) return cut(`${bytes.length - offset} of at least 12 block bytes present`)

    const typeBE = bytes.readUInt32BE(offset)
    if (typeBE === PCAPNG_SHB) {
      // The byte order of a section is only known from its header's byte-order magic.
      const bom = bytes.readUInt32LE(offset + 8)
      if (bom === PCAPNG_BYTE_ORDER_MAGIC) littleEndian = true
      else if (bytes.readUInt32BE(offset + 8) === PCAPNG_BYTE_ORDER_MAGIC) littleEndian = false
      else throw new AppError('ERR_PCAP_FORMAT', `${name}: the section header at byte ${offset} has no valid byte-order magic`)
      interfaces = []
      sawSection = true
    } else if (!sawSection) {
      throw new AppError('ERR_PCAP_FORMAT', `${name}: a pcapng file must start with a section header block`)
    }
    const u32 = (o: number): number => (littleEndian ? bytes.readUInt32LE(o) : bytes.readUInt32BE(o))
    const u16 = (o: number): number => (littleEndian ? bytes.readUInt16LE(o) : bytes.readUInt16BE(o))
    const type = u32(offset)
    const length = u32(offset + 4)
    if (length < 12 || length % 4 !== 0) {
      throw new AppError('ERR_PCAP_FORMAT', `${name}: the block at byte ${offset} has an invalid length ${length}`)
    }
    if (bytes.length - offset < length) return cut(`${bytes.length - offset} of ${length} block bytes present`)
    if (u32(offset + length - 4) !== length) {
      throw new AppError('ERR_PCAP_FORMAT', `${name}: the block at byte ${offset} has mismatched leading and trailing lengths`)
    }
    const body = offset + 8
    const bodyEnd = offset + length - 4

    switch (type) {
      case 1: {
        // Interface Description Block: link type, reserved, snap length, options.
        const info: InterfaceInfo = { linkType: u16(body), unitsPerSecond: 1e6, offsetSeconds: 0 }
        readOptions(bytes, body + 8, bodyEnd, u16, (code, value) => {
          if (code === 9 && value.length >= 1) {
            const v = value[0] as number
            info.unitsPerSecond = v & 0x80 ? 2 ** (v & 0x7f) : 10 ** v
          } else if (code === 14 && value.length >= 8) {
            info.offsetSeconds = Number(littleEndian ? value.readBigInt64LE(0) : value.readBigInt64BE(0))
          }
        })
        interfaces.push(info)
        break
      }
      case 6:
      case 2: {
        // Enhanced Packet Block (6): interface u32, ts high, ts low, captured, original, data.
        // Obsolete Packet Block (2): interface u16, drops u16, then the same.
        const iface = type === 6 ? u32(body) : u16(body)
        const info = interfaces[iface]
        if (info === undefined) throw new AppError('ERR_PCAP_FORMAT', `${name}: the packet block at byte ${offset} names interface ${iface}, which is not described`)
        const captured = u32(body + 12)
        if (body + 20 + captured > bodyEnd) throw new AppError('ERR_PCAP_FORMAT', `${name}: the packet block at byte ${offset} claims more data than it holds`)
        const ticks = (BigInt(u32(body + 4)) << 32n) | BigInt(u32(body + 8))
        packets.push({
          number: packets.length + 1,
          timeUs: ticksToMicros(ticks, info),
          linkType: info.linkType,
          data: bytes.subarray(body + 20, body + 20 + captured),
          originalLength: u32(body + 16),
        })
        break
      }
      case 3: {
        // Simple Packet Block: original length, data; no timestamp (interface 0).
        const info = interfaces[0]
        if (info === undefined) throw new AppError('ERR_PCAP_FORMAT', `${name}: a simple packet block at byte ${offset} precedes any interface description`)
        const original = u32(body)
        const captured = Math.min(original, bodyEnd - body - 4)
        packets.push({
          number: packets.length + 1,
          timeUs: packets.at(-1)?.timeUs ?? 0,
          linkType: info.linkType,
          data: bytes.subarray(body + 4, body + 4 + captured),
          originalLength: original,
        })
        break
      }
      default:
        // Section header, name resolution, statistics, decryption secrets, custom blocks: not needed.
        break
    }
    offset += length
  }
  if (!sawSection) throw new AppError('ERR_PCAP_FORMAT', `${name}: no section header block`)
  return { format: 'pcapng', packets }
}

function ticksToMicros(ticks: bigint, info: InterfaceInfo): number {
  // Whole seconds in BigInt (nanosecond stamps overflow a double's integers), the rest as a double.
  const units = BigInt(Math.round(info.unitsPerSecond))
  const seconds = ticks / units
  const rest = Number(ticks % units)
  return (Number(seconds) + info.offsetSeconds) * 1e6 + (rest * 1e6) / info.unitsPerSecond
}

function readOptions(bytes: Buffer, start: number, end: number, u16: (o: number) => number, each: (code: number, value: Buffer) => void): void {
  let o = start
  while (o + 4 <= end) {
    const code = u16(o)
    const len = u16(o + 2)
    if (code === 0) return // opt_endofopt
    if (o + 4 + len > end) return
    each(code, bytes.subarray(o + 4, o + 4 + len))
    o += 4 + Math.ceil(len / 4) * 4
  }
}
