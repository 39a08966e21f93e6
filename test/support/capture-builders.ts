/**
 * Named builders for capture files (src/capture/format.ts), for tests and the hand-built fixtures:
 *
 *   const capture = captureOf((c) => {
 *     c.in(frames.uuid(id))                      // at 0 ms
 *     c.at(20).in(frames.audio(0x10, 320))       // at 20 ms
 *     c.at(40).in(frames.dtmf('x')).finIn()      // a bad digit, then Asterisk's FIN
 *   })
 *
 * Times are milliseconds from the connection's accept; records keep the order they are added in.
 */
import type { Capture, CaptureHeader, CaptureRecord } from '../../src/capture/index.js'
import { frames } from './frames.js'

export class CaptureBuilder {
  readonly records: CaptureRecord[] = []
  #atUs = 0
  #endUs: number | undefined

  /** Moves the clock to `ms` (it never goes back). */
  at(ms: number): this {
    this.#atUs = Math.max(this.#atUs, Math.round(ms * 1000))
    return this
  }

  /** Bytes Asterisk sent in one write. */
  in(bytes: Buffer): this {
    this.records.push({ offsetUs: this.#atUs, type: 'data', direction: 'in', data: bytes })
    return this
  }

  /** Bytes the server sent in one write. */
  out(bytes: Buffer): this {
    this.records.push({ offsetUs: this.#atUs, type: 'data', direction: 'out', data: bytes })
    return this
  }

  finIn(): this {
    this.records.push({ offsetUs: this.#atUs, type: 'fin', direction: 'in', data: Buffer.alloc(0) })
    return this
  }

  finOut(): this {
    this.records.push({ offsetUs: this.#atUs, type: 'fin', direction: 'out', data: Buffer.alloc(0) })
    return this
  }

  resetIn(): this {
    this.records.push({ offsetUs: this.#atUs, type: 'reset', direction: 'in', data: Buffer.alloc(0) })
    return this
  }

  /** `count` audio frames of `bytes` each, one every `everyMs`, from the current time. */
  audio(kind: number, count: number, options: { bytes?: number; everyMs?: number } = {}): this {
    const size = options.bytes ?? 320
    const every = options.everyMs ?? 20
    const start = this.#atUs / 1000
    for (let i = 0; i < count; i++) this.at(start + i * every).in(frames.audio(kind, size))
    return this.at(start + count * every)
  }

  /** When the connection closed (default: the last record's time). */
  end(ms: number): this {
    this.#endUs = Math.round(ms * 1000)
    return this
  }

  build(header: Partial<CaptureHeader> = {}): Capture {
    return {
      header: {
        capturedAt: null,
        tool: 'audiosocket-soniox test builder',
        mode: 'synthetic',
        asterisk: null,
        server: null,
        ...header,
      },
      records: this.records,
      endUs: this.#endUs ?? this.#atUs,
    }
  }
}

export function captureOf(build: (c: CaptureBuilder) => void, header: Partial<CaptureHeader> = {}): Capture {
  const builder = new CaptureBuilder()
  build(builder)
  return builder.build(header)
}
