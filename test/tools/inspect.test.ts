/**
 * src/tools/inspect-capture.ts and format-report.ts: on the real recordings the report agrees with the summaries written when
 * they were recorded (fixtures/asterisk-22.10.1/*.json); on the hand-built violations it names
 * each violation with its offset and time.
 */
import t from 'tap'
import { formatReport, inspectCapture } from '../../src/tools/index.js'
import { captureOf } from '../support/capture-builders.js'
import { loadFixtureCapture } from '../support/capture-fixtures.js'
import { frames, loadCaptureSummary } from '../support/frames.js'

interface FullSummary {
  uuid: string
  frames: number
  countsByType: Record<string, number>
  audioSizes: Record<string, number>
  firstAudioAtMs: number
  lastAudioAtMs: number
  audioMs: number
  gapsOver40ms: Array<{ atMs: number; gapMs: number }>
  dtmf: Array<{ atMs: number; digit: string }>
  end: { peerFinAtMs: number }
}

for (const stem of ['app-8k-speech', 'app-8k-dtmf', 'dial-16k-speech', 'chan-16k-dtmf', 'dial-48k-speech']) {
  t.test(`${stem}: the report matches the recording's own summary`, async (t) => {
    const summary = loadCaptureSummary(stem) as unknown as FullSummary
    const report = inspectCapture(loadFixtureCapture(stem))
    const d = report.inbound
    t.equal(report.uuid, summary.uuid)
    t.equal(d.frames, summary.frames)
    t.same(
      Object.fromEntries(d.byKind.map((k) => [k.kind, k.count])),
      Object.fromEntries(Object.entries(summary.countsByType).map(([label, n]) => [Number(label.split(' ')[0]), n])),
      'frames per kind',
    )
    t.same(Object.fromEntries(d.audio!.sizes.map((s) => [String(s.length), s.count])), summary.audioSizes, 'audio frame sizes')
    t.equal(d.audio!.firstAtMs, summary.firstAudioAtMs)
    t.equal(d.audio!.lastAtMs, summary.lastAudioAtMs)
    t.equal(Math.round(d.audio!.ms), Math.round(summary.audioMs), 'audio duration')
    t.same(d.gaps.map((g) => [Math.round(g.atMs), Math.round(g.gapMs)]), summary.gapsOver40ms.map((g) => [Math.round(g.atMs), Math.round(g.gapMs)]), 'gaps over 40 ms')
    t.same(d.dtmf.map((x) => [x.digit, x.atMs]), summary.dtmf.map((x) => [x.digit, x.atMs]), 'DTMF digits with their times')
    t.match(report.ending, { by: 'asterisk', atMs: summary.end.peerFinAtMs })
    t.same(d.violations, [], 'a real Asterisk stream has no violation')
    t.ok(d.cadence!.p50Ms > 19.5 && d.cadence!.p50Ms < 20.5, `20 ms cadence (median ${d.cadence!.p50Ms} ms)`)
    t.equal(d.chunking.maxFramesPerRead, 1, 'one frame per write, as Asterisk writes')
    t.equal(report.outbound.bytes, 0)
  })
}

t.test('the text report carries what an admin looks for', async (t) => {
  const text = formatReport(inspectCapture(loadFixtureCapture('app-8k-dtmf')), 'app-8k-dtmf.ascap')
  t.match(text, /uuid +e19e5fa9-ba02-4bac-a2bf-7aa12ec945df/)
  t.match(text, /0x01 uuid x1, 0x03 dtmf x4, 0x10 audio 8 kHz x670/)
  t.match(text, /670 frames, 214168 bytes = 13385\.5 ms at 8000 Hz/)
  t.match(text, /dtmf +2 at 4592\.3 ms, 4 at 14738\.7 ms, 7 at 15189\.6 ms, # at 15640\.6 ms/)
  t.match(text, /gaps>40ms +562\.1 ms before 4842\.9 ms/)
  t.match(text, /cadence +\d+ intervals: mean 20\.\d\d ms/)
  t.match(text, /violations +none/)
  t.match(text, /Asterisk closed first \(FIN at 15891\.4 ms\)/)
})

t.test('--frames lists every frame in time order', async (t) => {
  const report = inspectCapture(loadFixtureCapture('app-8k-dtmf'), { frames: true })
  t.equal(report.frames?.length, 675)
  t.match(report.frames?.[0], { atMs: 1.438, direction: 'in', offset: 0, kind: 0x01, length: 16, detail: 'e19e5fa9-ba02-4bac-a2bf-7aa12ec945df' })
  t.match(report.frames?.[1], { offset: 19, kind: 0x10, length: 320, detail: '20 ms at 8000 Hz' })
  const times = report.frames!.map((f) => f.atMs)
  t.same(times, [...times].sort((a, b) => a - b))
  t.match(formatReport(report, 'x'), /\n +1\.438 +in +0 +0x01 +16 +uuid: e19e5fa9/)
})

t.test('violations are named with their offsets', async (t) => {
  const cases: Array<{ stem: string; expect: Array<{ direction: 'in' | 'out'; code: string; offset: number; severity: string }> }> = [
    { stem: 'violation-bad-dtmf', expect: [{ direction: 'in', code: 'bad-dtmf', offset: 19 + 10 * 323, severity: 'error' }] },
    { stem: 'violation-first-frame', expect: [{ direction: 'in', code: 'first-frame', offset: 0, severity: 'error' }] },
    { stem: 'violation-truncated-frame', expect: [{ direction: 'in', code: 'truncated-frame', offset: 19 + 5 * 323, severity: 'error' }] },
    { stem: 'violation-rate-change', expect: [{ direction: 'in', code: 'rate-change', offset: 19 + 5 * 323, severity: 'error' }] },
    {
      stem: 'violation-server-writes',
      expect: [
        { direction: 'out', code: 'split-write', offset: 0, severity: 'error' },
        { direction: 'out', code: 'unexpected-kind', offset: 323, severity: 'error' },
        { direction: 'out', code: 'after-hangup', offset: 330, severity: 'warning' },
      ],
    },
  ]
  for (const c of cases) {
    const report = inspectCapture(loadFixtureCapture(c.stem))
    const found = [...report.inbound.violations, ...report.outbound.violations].map((v) => ({ direction: v.direction, code: v.code, offset: v.offset, severity: v.severity }))
    t.same(found, c.expect, c.stem)
  }
  const bad = inspectCapture(loadFixtureCapture('violation-bad-dtmf'))
  t.match(bad.inbound.violations[0], { atMs: 220, message: /DTMF frame carries byte 0x78/ })
  t.equal(bad.inbound.frames, 1 + 10 + 1 + 5, 'the walk goes on past a bad payload: framing is still in sync')
  const split = inspectCapture(loadFixtureCapture('violation-server-writes'))
  t.match(split.outbound.violations[0]?.message, /written in pieces 8 ms apart: Asterisk waits at most 5 ms/)
  t.equal(split.ending.serverHangupAtMs, 140)
  t.match(formatReport(split, 'x'), /error +offset 0 at 118\.0 ms +split-write/)
})

t.test('a salvaged capture says it is truncated', async (t) => {
  const capture = { ...loadFixtureCapture('violation-bad-dtmf'), truncated: { atByte: 999, reason: 'the end record is missing' } }
  t.match(formatReport(inspectCapture(capture), 'x'), /TRUNCATED cut off at byte 999: the end record is missing/)
})

t.test('each audio frame counts at its own kind\'s rate: 8 kHz silence, then a wideband call', async (t) => {
  // A 16 kHz channel-driver call whose first audio comes at 1 s: until then the server sent 0x10
  // silence (8 kHz, 320 bytes per 20 ms), then 0x12 silence (16 kHz, 640 bytes per 20 ms).
  const capture = captureOf((c) => {
    c.in(frames.uuid('7d9b1f7e-3c1a-4b8e-9f00-5e2a6c4d1b01'))
    for (let i = 0; i < 50; i++) c.at(i * 20).out(frames.audio(0x10, 320, 0))
    for (let i = 0; i < 325; i++) c.at(1000 + i * 20).in(frames.audio(0x12, 640)).out(frames.audio(0x12, 640, 0))
    c.finIn()
  })
  const report = inspectCapture(capture)
  const out = report.outbound.audio!
  t.equal(out.ms, 7500, '1 s at 8 kHz + 6.5 s at 16 kHz (one rate for all of it made 14,000 ms)')
  t.equal(out.bytes, 50 * 320 + 325 * 640)
  t.same(out.kinds, [
    { kind: 0x10, sampleRate: 8000, frames: 50, bytes: 16000, ms: 1000, firstAtMs: 0 },
    { kind: 0x12, sampleRate: 16000, frames: 325, bytes: 208000, ms: 6500, firstAtMs: 1000 },
  ], 'each kind with its own rate, frames and duration, in order of first appearance')
  t.equal(out.sampleRate, 8000, 'sampleRate stays the first frame\'s rate')
  t.same(report.outbound.violations, [], 'mixed outbound kinds are reported, not a violation: Asterisk takes each frame at its kind')
  t.equal(report.inbound.audio!.ms, 6500)
  t.same(report.inbound.audio!.kinds.map((k) => k.kind), [0x12], 'one kind inbound')

  const text = formatReport(report, 'x')
  t.match(text, /from server: [^\n]*\n[^\n]*\n +audio +375 frames, 224000 bytes = 7500\.0 ms in 2 kinds \(mixed\); first at 0\.0 ms/)
  t.match(text, /\n +kinds +0x10 at 8000 Hz: 50 frames, 16000 bytes = 1000\.0 ms from 0\.0 ms; 0x12 at 16000 Hz: 325 frames, 208000 bytes = 6500\.0 ms from 1000\.0 ms\n/)
  t.match(text, /audio +325 frames, 208000 bytes = 6500\.0 ms at 16000 Hz;/, 'a single kind reads as before')
  t.equal(text.match(/\n +kinds /g)?.length, 1, 'the kinds line only where kinds are mixed')

  const oldAsterisk = inspectCapture(capture, { slinSampleRate: 16000 }).outbound.audio!
  t.equal(oldAsterisk.ms, 7000, '--slin-rate 16000 takes the 0x10 frames at 16 kHz: 500 ms of them')
  t.equal(oldAsterisk.kinds[0]?.sampleRate, 16000)
})
