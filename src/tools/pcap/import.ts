/**
 * A packet capture taken on a PBX (tcpdump, tshark) -> one capture per AudioSocket connection.
 *
 * A connection is AudioSocket if one end uses the AudioSocket port (default 9092; the other end
 * is Asterisk), or, on any port, if one direction's stream starts with a UUID frame (`01 00 10`):
 * that direction's sender is Asterisk. A connection on the port whose stream does not start with
 * a UUID frame is reported, never silently imported: either it is not AudioSocket, or the capture
 * began after the call did.
 *
 * Record times are the packet times, relative to the connection's first packet; each record holds
 * the bytes one segment made readable (see tcp-reassembly.ts).
 */
import { basename } from 'node:path'
import { Kind, UUID_PAYLOAD_LENGTH, uuidToString } from '../../audiosocket/index.js'
import { AppError } from '../../shared/errors.js'
import type { Capture, CaptureRecord, Endpoint } from '../../capture/format.js'
import { decodePacket, isSupportedLinkType, linkTypeName } from './packet.js'
import { readPacketFile } from './pcap-file.js'
import { reassembleTcp, type Side, type TcpConnection, type TimedSegment } from './tcp-reassembly.js'

export const DEFAULT_AUDIOSOCKET_PORT = 9092

export interface ImportOptions {
  /** The AudioSocket server port. Default 9092. */
  port?: number
  /** File name, for messages and the capture header. */
  name?: string
  /** e.g. "audiosocket-soniox 0.1.0" */
  tool: string
  /** Import what precedes a cut-off file end or a gap in a stream instead of failing. */
  allowTruncated?: boolean
}

export interface ImportedCall {
  connection: number
  capture: Capture
  uuid: string | undefined
  asterisk: Endpoint
  server: Endpoint
  /** Things worth knowing that did not stop the import (retransmissions, missing SYN, ...). */
  notes: string[]
}

export interface ImportFailure {
  connection: number
  asterisk: Endpoint
  server: Endpoint
  error: AppError
}

export interface ImportResult {
  format: 'pcap' | 'pcapng'
  packets: number
  tcpPackets: number
  calls: ImportedCall[]
  failures: ImportFailure[]
  /** TCP connections that are not AudioSocket, described. */
  ignored: string[]
  /** File-level remarks: skipped packet types, a salvaged cut-off end. */
  notes: string[]
}

const UUID_HEADER = Buffer.from([Kind.Uuid, 0x00, UUID_PAYLOAD_LENGTH])

function show(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`
}

function firstBytes(bytes: Buffer): string {
  const head = bytes.subarray(0, 8)
  const hex = [...head].map((b) => b.toString(16).padStart(2, '0')).join(' ')
  const text = head.toString('latin1').replace(/[^\x20-\x7e]/g, '.')
  return `${hex} ("${text}")`
}

function streamOf(conn: TcpConnection, side: Side): Buffer {
  return Buffer.concat(conn.events.filter((e) => e.from === side && e.type === 'data').map((e) => e.data))
}

/**
 * Throws AppError for problems with the whole file (ERR_PCAP_FORMAT, ERR_PCAP_TRUNCATED,
 * ERR_PCAP_LINK_TYPE, ERR_PCAP_NO_TCP, ERR_PCAP_NO_AUDIOSOCKET); problems with one connection
 * are returned in `failures` and do not stop the others.
 */
export function importPacketCapture(bytes: Buffer, options: ImportOptions): ImportResult {
  const name = options.name ?? 'the packet capture'
  const port = options.port ?? DEFAULT_AUDIOSOCKET_PORT
  const file = readPacketFile(bytes, { allowTruncated: options.allowTruncated, name })
  const notes: string[] = []
  if (file.truncated) notes.push(`${file.truncated}; the packets before it were imported`)

  const other = new Map<string, number>()
  const count = (what: string): void => {
    other.set(what, (other.get(what) ?? 0) + 1)
  }
  const unsupported = new Set<number>()
  const segments: TimedSegment[] = []
  for (const packet of file.packets) {
    if (!isSupportedLinkType(packet.linkType)) {
      unsupported.add(packet.linkType)
      continue
    }
    const decoded = decodePacket(packet.linkType, packet.data, packet.originalLength)
    if (decoded.kind === 'tcp') segments.push({ ...decoded.segment, timeUs: packet.timeUs, packet: packet.number, truncated: decoded.truncated })
    else count(decoded.kind === 'other' ? decoded.what : `malformed (${decoded.reason})`)
  }

  if (file.packets.length > 0 && unsupported.size > 0 && segments.length === 0 && other.size === 0) {
    const types = [...unsupported].map(linkTypeName).join(', ')
    throw new AppError(
      'ERR_PCAP_LINK_TYPE',
      `${name} uses ${types}, which the importer does not decode (it reads Ethernet, Linux cooked SLL/SLL2, loopback/null and raw IP); capture on a regular interface or with "tcpdump -i any"`,
    )
  }
  for (const t of unsupported) notes.push(`packets of ${linkTypeName(t)} were skipped (not decoded)`)
  const otherText = [...other].map(([what, n]) => `${n} ${what}`).join(', ')
  if (segments.length === 0) {
    throw new AppError(
      'ERR_PCAP_NO_TCP',
      file.packets.length === 0
        ? `${name} holds no packets`
        : `${name} holds no TCP packets (${file.packets.length} packets: ${otherText}); AudioSocket runs over TCP: capture with a filter such as 'tcp port ${port}'`,
    )
  }
  if (other.size > 0) notes.push(`${otherText} packet(s) were not TCP and were skipped`)

  const calls: ImportedCall[] = []
  const failures: ImportFailure[] = []
  const ignored: string[] = []
  for (const conn of reassembleTcp(segments)) {
    const orientation = orient(conn, port)
    if (orientation === undefined) {
      ignored.push(`connection ${conn.id} ${show(conn.a)} -> ${show(conn.b)} (packets ${conn.firstPacket}-${conn.lastPacket})`)
      continue
    }
    const { client, server } = orientation
    const asterisk = conn[client]
    const serverEnd = conn[server]
    const fail = (code: 'ERR_PCAP_NOT_AUDIOSOCKET' | 'ERR_PCAP_STREAM_GAP', message: string): void => {
      failures.push({ connection: conn.id, asterisk, server: serverEnd, error: new AppError(code, `${name} connection ${conn.id} ${show(asterisk)} -> ${show(serverEnd)}: ${message}`) })
    }

    const inbound = streamOf(conn, client)
    if (orientation.byPort && inbound.length > 0 && !inbound.subarray(0, 3).equals(UUID_HEADER.subarray(0, Math.min(3, inbound.length)))) {
      fail(
        'ERR_PCAP_NOT_AUDIOSOCKET',
        `the stream to port ${serverEnd.port} does not start with a UUID frame (01 00 10) but with ${firstBytes(inbound)}: ` +
          (conn.directions[client].sawSyn
            ? `it is not AudioSocket traffic (is ${port} the AudioSocket port? give it with --port)`
            : 'the packet capture began after the connection was opened (no SYN), so the start of the call is missing: start tcpdump before the call'),
      )
      continue
    }

    const notesForCall: string[] = []
    let damaged = false
    for (const side of [client, server]) {
      const d = conn.directions[side]
      const who = side === client ? 'Asterisk' : 'the server'
      if (d.truncatedPackets.length > 0) {
        damaged = true
        fail(
          'ERR_PCAP_STREAM_GAP',
          `${d.truncatedPackets.length} packet(s) from ${who} (first: packet ${d.truncatedPackets[0]}) were cut by the capture's snap length, so their bytes are missing: capture with "-s 0"`,
        )
      } else if (d.gap !== undefined) {
        const message = `${d.gap.missing} bytes from ${who} are missing at stream offset ${d.gap.offset} (packets lost by the capture: see tcpdump's "dropped by kernel" count)`
        if (!options.allowTruncated) {
          damaged = true
          fail('ERR_PCAP_STREAM_GAP', `${message}; --allow-truncated imports the stream up to there`)
        } else {
          notesForCall.push(`${message}; imported up to there`)
        }
      }
      if (d.retransmissions > 0) notesForCall.push(`${d.retransmissions} retransmitted segment(s) from ${who} dropped`)
      if (d.outOfOrder > 0) notesForCall.push(`${d.outOfOrder} out-of-order segment(s) from ${who} reordered`)
    }
    if (damaged) continue
    if (!conn.sawSyn) notesForCall.push('no SYN in the capture: the stream starts at the first byte seen')
    if (inbound.length === 0) notesForCall.push('Asterisk sent no bytes (AudioSocket() on an unanswered channel?)')

    const records: CaptureRecord[] = []
    let lastUs = 0
    for (const e of conn.events) {
      // Packet times can step back (several interfaces, clock adjustments): a capture's may not.
      const offsetUs = Math.max(lastUs, Math.round(e.timeUs - conn.firstUs))
      lastUs = offsetUs
      records.push({ offsetUs, type: e.type, direction: e.from === client ? 'in' : 'out', data: e.data })
    }
    const hasUuid = inbound.length >= 3 + UUID_PAYLOAD_LENGTH && inbound.subarray(0, 3).equals(UUID_HEADER)
    const uuid = hasUuid ? uuidToString(inbound.subarray(3, 3 + UUID_PAYLOAD_LENGTH)) : undefined
    calls.push({
      connection: conn.id,
      uuid,
      asterisk,
      server: serverEnd,
      notes: notesForCall,
      capture: {
        header: {
          capturedAt: new Date(conn.firstUs / 1000).toISOString(),
          tool: options.tool,
          mode: 'import-pcap',
          asterisk,
          server: serverEnd,
          source: `${basename(name)} (${file.format}) connection ${conn.id}, packets ${conn.firstPacket}-${conn.lastPacket}`,
        },
        records,
        endUs: Math.max(lastUs, Math.round(conn.lastUs - conn.firstUs)),
      },
    })
  }

  if (calls.length === 0 && failures.length === 0) {
    throw new AppError(
      'ERR_PCAP_NO_AUDIOSOCKET',
      `${name} holds no AudioSocket connection: ${ignored.length} TCP connection(s), none on port ${port} and none whose stream starts with a UUID frame (01 00 10)` +
        (ignored.length > 0 ? ` [${ignored.slice(0, 5).join('; ')}${ignored.length > 5 ? '; ...' : ''}]` : '') +
        `; if the server listens on another port, give it with --port`,
    )
  }
  return { format: file.format, packets: file.packets.length, tcpPackets: segments.length, calls, failures, ignored, notes }
}

/** Which side is Asterisk (the client) and which the server, or undefined if not AudioSocket. */
function orient(conn: TcpConnection, port: number): { client: Side; server: Side; byPort: boolean } | undefined {
  if (conn.b.port === port && (conn.a.port !== port || conn.sawSyn)) return { client: 'a', server: 'b', byPort: true }
  if (conn.a.port === port) return { client: 'b', server: 'a', byPort: true }
  for (const side of ['a', 'b'] as const) {
    const stream = streamOf(conn, side)
    if (stream.length >= 3 && stream.subarray(0, 3).equals(UUID_HEADER)) return { client: side, server: side === 'a' ? 'b' : 'a', byPort: false }
  }
  return undefined
}
