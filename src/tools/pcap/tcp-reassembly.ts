/**
 * TCP segments -> per-connection byte streams, with the time each byte became readable.
 *
 * Each direction is replayed through a model of the receiving socket: in-order bytes are
 * delivered when their segment arrives; a segment beyond a hole waits until the hole is filled
 * and is then delivered, with everything it unblocks, at the time of the filling segment (which is
 * when the application could have read it); bytes already delivered (retransmissions, keepalive
 * probes, overlapping repacketisation) are dropped. The first sequence number is the SYN's + 1, or,
 * when the capture began after the SYN, the lowest sequence number the direction carries
 * (wrap-around aware). A hole never filled is reported as a gap.
 *
 * A new SYN on a 4-tuple whose connection has ended (or with a different initial sequence number)
 * starts a new connection, so port reuse within one capture yields separate streams.
 */
import { TcpFlag, type TcpSegment } from './packet.js'

export interface TimedSegment extends TcpSegment {
  timeUs: number
  /** Packet number in the file (1-based). */
  packet: number
  /** The snap length cut this packet: its payload is incomplete. */
  truncated: boolean
}

export interface Endpoint {
  address: string
  port: number
}

/** 'a' is the side that opened the connection (sent the SYN) when known, else the first sender. */
export type Side = 'a' | 'b'

export interface StreamEvent {
  timeUs: number
  packet: number
  from: Side
  type: 'data' | 'fin' | 'reset'
  /** Bytes that became readable ('data' only). */
  data: Buffer
}

export interface DirectionSummary {
  bytes: number
  /** Segments that carried only bytes already delivered. */
  retransmissions: number
  /** Segments that arrived ahead of a hole. */
  outOfOrder: number
  sawSyn: boolean
  /** A hole that was never filled: bytes from `offset` on are missing or undeliverable. */
  gap: { offset: number; missing: number } | undefined
  /** Packets whose payload the snap length cut. */
  truncatedPackets: number[]
}

export interface TcpConnection {
  /** 1-based, in order of first packet. */
  id: number
  a: Endpoint
  b: Endpoint
  /** The opening SYN was in the capture. */
  sawSyn: boolean
  firstUs: number
  lastUs: number
  firstPacket: number
  lastPacket: number
  /** Both directions, in time order. */
  events: StreamEvent[]
  directions: Record<Side, DirectionSummary>
}

interface Builder {
  conn: TcpConnection
  segments: Record<Side, TimedSegment[]>
  synSeq: Partial<Record<Side, number>>
  fin: Partial<Record<Side, boolean>>
  reset: boolean
  hasData: boolean
}

function endpointKey(address: string, port: number): string {
  return `${address}|${port}`
}

export function reassembleTcp(segments: Iterable<TimedSegment>): TcpConnection[] {
  const open = new Map<string, Builder>()
  const all: Builder[] = []

  for (const seg of segments) {
    const from = endpointKey(seg.src, seg.srcPort)
    const to = endpointKey(seg.dst, seg.dstPort)
    const key = from < to ? `${from}#${to}` : `${to}#${from}`
    const isSyn = (seg.flags & TcpFlag.Syn) !== 0
    const isOpeningSyn = isSyn && (seg.flags & TcpFlag.Ack) === 0
    let builder = open.get(key)
    if (builder !== undefined && isOpeningSyn) {
      const side: Side = endpointKey(builder.conn.a.address, builder.conn.a.port) === from ? 'a' : 'b'
      const knownSyn = builder.synSeq[side]
      const ended = builder.reset || (builder.fin.a === true && builder.fin.b === true)
      if (ended || (knownSyn !== undefined && knownSyn !== seg.seq) || (knownSyn === undefined && builder.hasData)) builder = undefined
    }
    if (builder === undefined) {
      // The SYN-ACK's sender is the passive side; anything else: the first sender opened it.
      const fromIsB = isSyn && !isOpeningSyn
      const src = { address: seg.src, port: seg.srcPort }
      const dst = { address: seg.dst, port: seg.dstPort }
      builder = {
        conn: {
          id: all.length + 1,
          a: fromIsB ? dst : src,
          b: fromIsB ? src : dst,
          sawSyn: false,
          firstUs: seg.timeUs,
          lastUs: seg.timeUs,
          firstPacket: seg.packet,
          lastPacket: seg.packet,
          events: [],
          directions: { a: emptySummary(), b: emptySummary() },
        },
        segments: { a: [], b: [] },
        synSeq: {},
        fin: {},
        reset: false,
        hasData: false,
      }
      open.set(key, builder)
      all.push(builder)
    }
    const conn = builder.conn
    const side: Side = endpointKey(conn.a.address, conn.a.port) === from ? 'a' : 'b'
    builder.segments[side].push(seg)
    conn.lastUs = Math.max(conn.lastUs, seg.timeUs)
    conn.lastPacket = seg.packet
    if (isSyn && builder.synSeq[side] === undefined) builder.synSeq[side] = seg.seq
    if (isOpeningSyn && side === 'a') conn.sawSyn = true
    if ((seg.flags & TcpFlag.Fin) !== 0) builder.fin[side] = true
    if ((seg.flags & TcpFlag.Rst) !== 0) builder.reset = true
    if (seg.payload.length > 0) builder.hasData = true
  }

  return all.map((builder) => {
    const conn = builder.conn
    const events: StreamEvent[] = []
    for (const side of ['a', 'b'] as const) {
      conn.directions[side] = reassembleDirection(side, builder.segments[side], builder.synSeq[side], events)
    }
    // Stable: events of one packet keep their order; ties between packets go by packet number.
    conn.events = events
      .map((e, i) => ({ e, i }))
      .sort((x, y) => x.e.timeUs - y.e.timeUs || x.e.packet - y.e.packet || x.i - y.i)
      .map((x) => x.e)
    return conn
  })
}

function emptySummary(): DirectionSummary {
  return { bytes: 0, retransmissions: 0, outOfOrder: 0, sawSyn: false, gap: undefined, truncatedPackets: [] }
}

/** Signed distance from `base` to `seq` in 32-bit sequence space. */
function seqDiff(seq: number, base: number): number {
  return (seq - base) | 0
}

interface Pending {
  start: number
  data: Buffer
}

function reassembleDirection(side: Side, segments: TimedSegment[], synSeq: number | undefined, events: StreamEvent[]): DirectionSummary {
  const summary = emptySummary()
  summary.sawSyn = synSeq !== undefined
  // Initial sequence number: just after the SYN, or the lowest sequence number seen.
  let isn: number | undefined = synSeq === undefined ? undefined : (synSeq + 1) >>> 0
  if (isn === undefined) {
    for (const seg of segments) {
      if (seg.payload.length === 0 && (seg.flags & TcpFlag.Fin) === 0) continue
      if (isn === undefined || seqDiff(seg.seq, isn) < 0) isn = seg.seq
    }
  }
  if (isn === undefined) {
    for (const seg of segments) {
      if ((seg.flags & TcpFlag.Rst) !== 0) {
        events.push({ timeUs: seg.timeUs, packet: seg.packet, from: side, type: 'reset', data: Buffer.alloc(0) })
        break
      }
    }
    return summary
  }

  let next = 0
  let finAt: number | undefined
  let finDelivered = false
  const pending: Pending[] = []

  for (const seg of segments) {
    if ((seg.flags & TcpFlag.Rst) !== 0) {
      events.push({ timeUs: seg.timeUs, packet: seg.packet, from: side, type: 'reset', data: Buffer.alloc(0) })
      break
    }
    if (seg.truncated) summary.truncatedPackets.push(seg.packet)
    // Data on a SYN (TCP Fast Open) starts one past the SYN's own sequence number.
    const start = seqDiff(seg.seq, isn) + ((seg.flags & TcpFlag.Syn) !== 0 ? 1 : 0)
    const payload = seg.payload
    if (payload.length > 0) {
      const end = start + payload.length
      if (end <= next) {
        summary.retransmissions++
      } else if (start <= next) {
        const parts = [payload.subarray(next - start)]
        next = end
        // Everything this segment unblocks is readable now, in the same read.
        while (pending.length > 0 && (pending[0] as Pending).start <= next) {
          const p = pending.shift() as Pending
          if (p.start + p.data.length > next) {
            parts.push(p.data.subarray(next - p.start))
            next = p.start + p.data.length
          } else {
            summary.retransmissions++
          }
        }
        const data = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts)
        summary.bytes += data.length
        events.push({ timeUs: seg.timeUs, packet: seg.packet, from: side, type: 'data', data })
      } else {
        summary.outOfOrder++
        const at = pending.findIndex((p) => p.start > start || (p.start === start && p.data.length < payload.length))
        if (at === -1) pending.push({ start, data: payload })
        else pending.splice(at, 0, { start, data: payload })
      }
    }
    if ((seg.flags & TcpFlag.Fin) !== 0) finAt ??= start + payload.length
    if (finAt !== undefined && !finDelivered && next >= finAt) {
      finDelivered = true
      events.push({ timeUs: seg.timeUs, packet: seg.packet, from: side, type: 'fin', data: Buffer.alloc(0) })
    }
  }
  if (pending.length > 0) {
    summary.gap = { offset: next, missing: (pending[0] as Pending).start - next }
  }
  return summary
}
