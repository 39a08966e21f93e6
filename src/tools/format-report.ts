/** The text `audiosocket-soniox inspect` prints for a CaptureReport. */
import { CAPTURE_FORMAT_VERSION } from '../capture/format.js'
import { GAP_THRESHOLD_MS, type CaptureReport, type DirectionReport } from './inspect-capture.js'
import { hexKind, kindName } from './kind-names.js'

function endpointText(e: { address: string; port: number } | null): string {
  if (e === null) return 'unknown'
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`
}

function fixed(v: number, digits = 1): string {
  return v.toFixed(digits)
}

function directionText(title: string, d: DirectionReport, lines: string[]): void {
  if (d.bytes === 0) {
    lines.push(`${title}: no bytes${d.finAtMs !== undefined ? `, FIN at ${fixed(d.finAtMs)} ms` : ''}`)
    return
  }
  lines.push(`${title}: ${d.bytes} bytes in ${d.reads} reads, ${d.frames} frames${d.finAtMs !== undefined ? `, FIN at ${fixed(d.finAtMs)} ms` : ''}`)
  lines.push(`  frames      ${d.byKind.map((k) => `${hexKind(k.kind)} ${k.name} x${k.count}`).join(', ')}`)
  if (d.audio) {
    const a = d.audio
    const rate = a.kinds.length === 1 ? `at ${a.sampleRate} Hz` : `in ${a.kinds.length} kinds (mixed)`
    lines.push(`  audio       ${a.frames} frames, ${a.bytes} bytes = ${fixed(a.ms)} ms ${rate}; first at ${fixed(a.firstAtMs)} ms, last at ${fixed(a.lastAtMs)} ms`)
    if (a.kinds.length > 1) {
      const each = a.kinds.map((k) => `${hexKind(k.kind)} at ${k.sampleRate} Hz: ${k.frames} frames, ${k.bytes} bytes = ${fixed(k.ms)} ms from ${fixed(k.firstAtMs)} ms`)
      lines.push(`  kinds       ${each.join('; ')}`)
    }
    lines.push(`  sizes       ${a.sizes.map((s) => `${s.length} B x${s.count}`).join(', ')}`)
  }
  if (d.dtmf.length > 0) lines.push(`  dtmf        ${d.dtmf.map((x) => `${x.digit} at ${fixed(x.atMs)} ms`).join(', ')}`)
  if (d.audio) {
    lines.push(`  gaps>${GAP_THRESHOLD_MS}ms   ${d.gaps.length === 0 ? 'none' : d.gaps.map((g) => `${fixed(g.gapMs)} ms before ${fixed(g.atMs)} ms`).join(', ')}`)
  }
  if (d.cadence) {
    const c = d.cadence
    lines.push(
      `  cadence     ${c.intervals} intervals: mean ${fixed(c.meanMs, 2)} ms, p50 ${fixed(c.p50Ms, 2)}, p95 ${fixed(c.p95Ms, 2)}, p99 ${fixed(c.p99Ms, 2)}, ` +
        `min ${fixed(c.minMs, 2)}, max ${fixed(c.maxMs, 2)}, stddev ${fixed(c.stddevMs, 2)} (gaps excluded)`,
    )
  }
  lines.push(`  chunking    up to ${d.chunking.maxFramesPerRead} frame(s) per read, ${d.chunking.splitFrames} frame(s) split across reads`)
  if (d.violations.length === 0) {
    lines.push('  violations  none')
  } else {
    lines.push(`  violations  ${d.violations.length}`)
    for (const v of d.violations) lines.push(`    ${v.severity.padEnd(7)} offset ${v.offset} at ${fixed(v.atMs)} ms  ${v.code}: ${v.message}`)
  }
}

export function formatReport(report: CaptureReport, name: string): string {
  const h = report.header
  const lines: string[] = []
  lines.push(`capture   ${name} (format ${CAPTURE_FORMAT_VERSION}, ${h.mode}, written by ${h.tool})`)
  if (h.source) lines.push(`source    ${h.source}`)
  lines.push(`captured  ${h.capturedAt ?? 'time unknown'}, asterisk ${endpointText(h.asterisk)} -> server ${endpointText(h.server)}`)
  if (report.truncated) lines.push(`TRUNCATED ${report.truncated}`)
  lines.push(`uuid      ${report.uuid ?? 'none (the stream does not start with a UUID frame)'}`)
  const e = report.ending
  const ended =
    e.by === 'unknown'
      ? 'no FIN or reset recorded'
      : e.by === 'reset'
        ? `connection reset at ${fixed(e.atMs ?? 0)} ms`
        : `${e.by === 'asterisk' ? 'Asterisk' : 'the server'} closed first (FIN at ${fixed(e.atMs ?? 0)} ms)`
  lines.push(`duration  ${fixed(report.durationMs)} ms; ${ended}${e.serverHangupAtMs !== undefined ? `; server sent hangup at ${fixed(e.serverHangupAtMs)} ms` : ''}`)
  directionText('from asterisk', report.inbound, lines)
  directionText('from server', report.outbound, lines)
  if (report.frames) {
    lines.push('frames:')
    lines.push('  time_ms      dir  offset    kind  length  detail')
    for (const f of report.frames) {
      lines.push(
        `  ${fixed(f.atMs, 3).padStart(11)}  ${f.direction.padEnd(3)}  ${String(f.offset).padStart(8)}  ${hexKind(f.kind)}  ${String(f.length).padStart(6)}  ${kindName(f.kind)}${f.detail ? `: ${f.detail}` : ''}`,
      )
    }
  }
  return `${lines.join('\n')}\n`
}
