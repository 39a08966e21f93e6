/**
 * Plays a recorded Asterisk capture into a server over a real TCP connection, the way Asterisk
 * sent it: one write per frame at the recorded time (divided by `speed`), then a FIN.
 */
import net from 'node:net'
import type { Capture } from './frames.js'

export interface ReplayResult {
  /** Every byte the server sent back (hangup frames, audio). */
  received: Buffer
  /** The same bytes as they arrived: ms since the connection opened, and the chunk. */
  receivedChunks: Array<{ atMs: number; bytes: Buffer }>
  /** True when the server closed the connection before the capture was fully sent. */
  closedByServer: boolean
  framesSent: number
}

export interface ReplayOptions {
  host?: string
  port: number
  /** 1 = recorded cadence; 10 = ten times faster; Infinity = as fast as possible. */
  speed?: number
  /** Replace the capture's UUID (its first frame) with this one, so several replays do not collide. */
  uuidBytes?: Buffer
  /** Connect from this local address (e.g. 127.0.0.2, to test a source allowlist on loopback). */
  localAddress?: string
}

/** Byte ranges of each frame in the capture, from its frame list. */
export function frameSlices(capture: Capture): Buffer[] {
  const out: Buffer[] = []
  let offset = 0
  for (const frame of capture.frames) {
    const size = 3 + frame.length
    out.push(capture.bytes.subarray(offset, offset + size))
    offset += size
  }
  if (offset !== capture.bytes.length) throw new Error(`frame list covers ${offset} of ${capture.bytes.length} bytes`)
  return out
}

/** The audio payloads of a capture concatenated: exactly what should reach Soniox. */
export function captureAudio(capture: Capture): Buffer {
  const slices = frameSlices(capture)
  return Buffer.concat(slices.filter((_, i) => (capture.frames[i]?.kind ?? 0) >= 0x10 && (capture.frames[i]?.kind ?? 0) <= 0x18).map((s) => s.subarray(3)))
}

/** The capture with every frame from index `fromFrame` on delayed by `pauseMs`: a caller on hold. */
export function withPause(capture: Capture, fromFrame: number, pauseMs: number): Capture {
  return { bytes: capture.bytes, frames: capture.frames.map((f, i) => (i < fromFrame ? f : { ...f, atMs: f.atMs + pauseMs })) }
}

export function replayCapture(capture: Capture, options: ReplayOptions): Promise<ReplayResult> {
  const speed = options.speed ?? 1
  const slices = frameSlices(capture)
  if (options.uuidBytes) {
    slices[0] = Buffer.concat([Buffer.from([0x01, 0x00, 0x10]), options.uuidBytes])
  }
  return new Promise((resolve, reject) => {
    const received: Buffer[] = []
    const receivedChunks: Array<{ atMs: number; bytes: Buffer }> = []
    let connectedAt = performance.now()
    let closedByServer = false
    let sent = 0
    let finished = false
    const socket = net.connect({ host: options.host ?? '127.0.0.1', port: options.port, ...(options.localAddress ? { localAddress: options.localAddress } : {}) }, () => {
      socket.setNoDelay(true)
      const start = performance.now()
      connectedAt = start
      const sendNext = (): void => {
        if (finished) return
        // Drift-corrected: each frame is due at its recorded time, whatever the timers did.
        while (sent < slices.length) {
          const dueAt = (capture.frames[sent]?.atMs ?? 0) / speed
          const wait = dueAt - (performance.now() - start)
          if (wait > 1 && Number.isFinite(speed)) {
            setTimeout(sendNext, wait)
            return
          }
          socket.write(slices[sent] as Buffer)
          sent++
        }
        socket.end()
      }
      sendNext()
    })
    socket.on('data', (chunk) => {
      received.push(chunk)
      receivedChunks.push({ atMs: performance.now() - connectedAt, bytes: chunk })
    })
    socket.on('end', () => {
      if (sent < slices.length) closedByServer = true
    })
    socket.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET' || (err as NodeJS.ErrnoException).code === 'EPIPE') {
        closedByServer = true
        return
      }
      finished = true
      reject(err)
    })
    socket.on('close', () => {
      finished = true
      resolve({ received: Buffer.concat(received), receivedChunks, closedByServer, framesSent: sent })
    })
  })
}
