/**
 * The capture-file fixtures in fixtures/captures/: how each one is made from its source, so the
 * committed files can be checked against (and regenerated from) their sources:
 *
 *   REGENERATE_FIXTURES=1 npx tap test/capture/fixture-captures.test.ts
 *
 * - `<stem>.ascap`: a real Asterisk recording (fixtures/asterisk-22.10.1/<stem>.bin + .frames.tsv +
 *   .json), one record per frame at its recorded time (Asterisk writes each frame with one write),
 *   then Asterisk's FIN and the close, at their recorded times.
 * - `<stem>.from-pcap.ascap` / `.from-pcapng.ascap`: the packet captures of two of those calls,
 *   imported by `import-pcap`, so with the real TCP segments and packet times.
 * - `violation-*.ascap`: small hand-built streams that break the protocol in one named way each.
 *
 *   const capture = loadFixtureCapture('app-8k-dtmf')
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { decodeCapture, type Capture } from '../../src/capture/index.js'
import { importPacketCapture } from '../../src/tools/index.js'
import { captureOf } from './capture-builders.js'
import { CAPTURE_DIR, frames, loadCapture, loadCaptureSummary } from './frames.js'

export const FIXTURE_CAPTURE_DIR = fileURLToPath(new URL('../../fixtures/captures/', import.meta.url))

/** Fixtures carry a fixed tool name, so a version bump does not change them. */
const FIXTURE_TOOL = 'audiosocket-soniox (fixture)'
const UUID = '7d9b1f7e-3c1a-4b8e-9f00-5e2a6c4d1b01'

/** A real recording: one record per frame at its recorded time, then FIN and close. */
function fromRecording(stem: string): Capture {
  const recording = loadCapture(stem)
  const summary = loadCaptureSummary(stem) as ReturnType<typeof loadCaptureSummary> & { end: { peerFinAtMs: number; closedAtMs: number } }
  let offset = 0
  const c = captureOf(
    (b) => {
      for (const frame of recording.frames) {
        const size = 3 + frame.length
        b.at(frame.atMs).in(recording.bytes.subarray(offset, offset + size))
        offset += size
      }
      b.at(summary.end.peerFinAtMs).finIn().end(summary.end.closedAtMs)
    },
    {
      tool: FIXTURE_TOOL,
      mode: 'converted',
      source: `fixtures/asterisk-22.10.1/${stem}.bin + .frames.tsv + .json (Asterisk 22.10.1; one record per frame as Asterisk wrote it, at its recorded time)`,
    },
  )
  if (offset !== recording.bytes.length) throw new Error(`${stem}: the frame list covers ${offset} of ${recording.bytes.length} bytes`)
  return c
}

function fromPacketCapture(file: string): Capture {
  const result = importPacketCapture(readFileSync(`${CAPTURE_DIR}${file}`), { name: file, tool: FIXTURE_TOOL })
  if (result.calls.length !== 1 || result.failures.length > 0) throw new Error(`${file}: expected exactly one AudioSocket connection`)
  return (result.calls[0] as { capture: Capture }).capture
}

export interface FixtureCapture {
  file: string
  what: string
  build(): Capture
}

export const FIXTURE_CAPTURES: FixtureCapture[] = [
  ...['app-8k-speech', 'app-8k-dtmf', 'dial-16k-speech', 'chan-16k-dtmf', 'dial-48k-speech'].map((stem) => ({
    file: `${stem}.ascap`,
    what: `the real recording ${stem}`,
    build: () => fromRecording(stem),
  })),
  { file: 'app-8k-speech.from-pcap.ascap', what: 'app-8k-speech.pcap imported', build: () => fromPacketCapture('app-8k-speech.pcap') },
  { file: 'dial-16k-speech.from-pcapng.ascap', what: 'dial-16k-speech.pcapng imported', build: () => fromPacketCapture('dial-16k-speech.pcapng') },
  {
    file: 'violation-bad-dtmf.ascap',
    what: 'a DTMF frame carrying "x" after 10 audio frames',
    build: () =>
      captureOf((c) => c.at(1).in(frames.uuid(UUID)).at(20).audio(0x10, 10).in(frames.dtmf('x')).at(240).audio(0x10, 5).finIn(), {
        tool: FIXTURE_TOOL,
        source: 'hand-built: bad DTMF digit',
      }),
  },
  {
    file: 'violation-first-frame.ascap',
    what: 'audio before the UUID frame',
    build: () =>
      captureOf((c) => c.at(1).in(frames.audio(0x10, 320)).at(21).in(frames.uuid(UUID)).at(41).audio(0x10, 3).finIn(), {
        tool: FIXTURE_TOOL,
        source: 'hand-built: first frame is not the UUID',
      }),
  },
  {
    file: 'violation-truncated-frame.ascap',
    what: 'half an audio frame, then FIN',
    build: () =>
      captureOf((c) => c.at(1).in(frames.uuid(UUID)).at(20).audio(0x10, 5).in(frames.audio(0x10, 320).subarray(0, 100)).finIn(), {
        tool: FIXTURE_TOOL,
        source: 'hand-built: stream ends inside a frame',
      }),
  },
  {
    file: 'violation-rate-change.ascap',
    what: '8 kHz audio, then 16 kHz audio',
    build: () =>
      captureOf((c) => c.at(1).in(frames.uuid(UUID)).at(20).audio(0x10, 5).audio(0x12, 5, { bytes: 640 }).finIn(), {
        tool: FIXTURE_TOOL,
        source: 'hand-built: audio kind changes mid-call',
      }),
  },
  {
    file: 'violation-server-writes.ascap',
    what: 'a server that splits a frame across writes 8 ms apart, then sends DTMF and audio after its hangup',
    build: () =>
      captureOf(
        (c) => {
          const reply = frames.audio(0x10, 320, 0)
          c.at(1).in(frames.uuid(UUID)).at(20).audio(0x10, 4) // 20 to 80 ms
          c.at(110).out(reply.subarray(0, 3)).at(118).out(reply.subarray(3))
          c.at(120).in(frames.audio(0x10, 320)).out(frames.dtmf('1'))
          c.at(140).out(frames.hangup()).at(141).out(frames.audio(0x10, 320, 0)).finOut()
          c.at(145).finIn()
        },
        { tool: FIXTURE_TOOL, source: 'hand-built: server-side violations' },
      ),
  },
]

export function loadFixtureCapture(stem: string): Capture {
  const file = stem.endsWith('.ascap') ? stem : `${stem}.ascap`
  return decodeCapture(readFileSync(`${FIXTURE_CAPTURE_DIR}${file}`), { name: file })
}

export function fixtureCapturePath(stem: string): string {
  return `${FIXTURE_CAPTURE_DIR}${stem.endsWith('.ascap') ? stem : `${stem}.ascap`}`
}
