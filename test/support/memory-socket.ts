/**
 * An in-memory connection for CallSession unit tests: no port, no kernel, no waiting. The test
 * plays Asterisk: `send` delivers bytes to the call at once (as one 'data' chunk), `hangUp` is
 * Asterisk's FIN, `reset` an ECONNRESET; what the call wrote is in `received`.
 *
 * As net.Socket: 'close' follows destroy() on the next tick, once; end(bytes) writes, then
 * half-closes (a FIN to the peer; Asterisk answers by closing, which the test does with `close`
 * or leaves to the call's hangup grace timer).
 */
import { EventEmitter } from 'node:events'
import type { CallSocket } from '../../src/call/call-session.js'

export class MemorySocket extends EventEmitter implements CallSocket {
  readonly remoteAddress = '127.0.0.1'
  readonly remotePort = 40_000
  readonly localPort = 9092
  writable = true
  destroyed = false
  /** Bytes written and not yet taken by the peer: set by a test to play a peer that stopped reading. */
  writableLength = 0
  noDelay = false
  /** The call half-closed its side (its FIN). */
  finSent = false
  readonly #written: Buffer[] = []

  setNoDelay(noDelay = true): this {
    this.noDelay = noDelay
    return this
  }

  write(bytes: Buffer): boolean {
    if (!this.writable) return false
    this.#written.push(Buffer.from(bytes))
    return true
  }

  end(bytes: Buffer): this {
    this.write(bytes)
    this.writable = false
    this.finSent = true
    return this
  }

  destroy(): this {
    if (this.destroyed) return this
    this.destroyed = true
    this.writable = false
    process.nextTick(() => this.emit('close', false))
    return this
  }

  // ---- Asterisk's side ------------------------------------------------------------------------

  /** Every byte the call wrote, in order. */
  get received(): Buffer {
    return Buffer.concat(this.#written)
  }

  /** Bytes from Asterisk, delivered to the call now, as one chunk. */
  send(bytes: Buffer | string): void {
    this.emit('data', Buffer.from(bytes))
  }

  /** Asterisk's FIN (the normal end of a call). */
  hangUp(): void {
    this.emit('end')
  }

  /** A reset or another socket error. */
  fail(err: Error): void {
    this.emit('error', err)
    this.destroy()
  }
}
