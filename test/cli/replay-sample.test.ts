/**
 * `audiosocket-soniox replay --sample`: a first transcript without Asterisk. The recorded call that
 * ships in the npm package, played into the server (in process, through the command table, and
 * from the built binary), gives exactly the transcript the Soniox stand-in makes of its audio, with
 * its DTMF; progress on stderr while it plays; a clear line when no server listens; and the file
 * is in what `npm pack` ships.
 */
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { CliIo } from '../../src/cli/cli-support.js'
import { SAMPLE_CAPTURE } from '../../src/cli/replay.js'
import { main } from '../../src/cli/run.js'
import { decodeCapture } from '../../src/capture/index.js'
import { captureAudio } from '../../src/tools/index.js'
import { expectedTranscript } from '../support/fake-soniox.js'
import { startHarness, type Harness } from '../support/harness.js'
import { spawnCli } from '../support/spawn-server.js'
import { startTcpSink } from '../support/tcp-sink.js'

function io(): CliIo & { out(): string; err(): string } {
  let out = ''
  let err = ''
  return { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env: {}, out: () => out, err: () => err }
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const SAMPLE_PATH_IN_PACKAGE = 'fixtures/captures/app-8k-dtmf.ascap'

/** What the stand-in makes of the sample's audio: the transcript every replay of it must produce. */
const audio = captureAudio(decodeCapture(readFileSync(SAMPLE_CAPTURE)), { direction: 'in' })
const expected = expectedTranscript(audio.pcm, audio.sampleRate)

/** The call's events at the receiver, once call.ended has arrived. */
async function callEvents(h: Harness, uuid: string): Promise<any[]> {
  await h.receiver.waitFor(() => h.receiver.eventsFor(uuid).some((e) => e.type === 'call.ended'), 30000)
  return h.receiver.eventsFor(uuid)
}

function checkTranscript(t: Test, events: any[]): void {
  const ended = events.at(-1)
  t.equal(ended?.type, 'call.ended')
  t.equal(ended?.data.reason, 'hangup')
  t.equal(ended?.data.sample_rate, 8000)
  t.equal(ended?.data.transcript, expected.transcript, "the call's transcript is exactly the stand-in's for the sample's audio")
  t.equal(events.filter((e) => e.type === 'transcript.final').map((e) => e.data.text).join(''), expected.transcript, 'delivered as its utterances')
  t.same(events.filter((e) => e.type === 'call.dtmf').map((e) => e.data.digit), ['2', '4', '7', '#'], 'and its DTMF digits')
}

t.test('the sample is a real call with speech: 8 kHz, about 16 s, a transcript of several utterances', async (t) => {
  t.equal(audio.sampleRate, 8000)
  t.ok(audio.pcm.length / 2 / 8000 > 10, 'over 10 s of audio')
  t.ok(expected.transcript.trim().split(/\s+/).length >= 10, 'it transcribes to words')
  t.ok(expected.utterances.length >= 2)
})

t.test('replay --sample through the command table: progress on stderr, the exact transcript at the receiver', async (t) => {
  const h = await startHarness()
  t.teardown(() => h.stop())
  const run = io()
  t.equal(await main(['replay', '--sample', '--to', `127.0.0.1:${h.port}`, '--speed', '4'], run), 0, run.err())
  t.match(run.err(), /^playing the sample call \(15\.9 s recorded from Asterisk: speech, then DTMF\) to 127\.0\.0\.1:\d+; its transcript is in the server's events/)
  const progress = run.err().split('\n').filter((l) => l.startsWith('call 1/1 '))
  t.ok(progress.length >= 2, `a progress line per second at speed 4 (${progress.length})`)
  for (const line of progress) t.match(line, /^call 1\/1 app-8k-dtmf\.ascap: \d+\.\d\/15\.9 s sent, \d+\/675 frames$/)
  const uuid = /^call 1\/1 app-8k-dtmf\.ascap uuid ([0-9a-f-]{36}): ok$/m.exec(run.out())?.[1]
  if (uuid === undefined) return t.fail(`no call line on stdout: ${run.out()}`)
  t.not(uuid, 'e19e5fa9-ba02-4bac-a2bf-7aa12ec945df', 'a fresh UUID, so the sample can be played again at once')
  t.match(run.out(), /sent 675\/675 frames/)
  checkTranscript(t, await callEvents(h, uuid))
})

t.test('the built binary finds the sample from dist/ and plays it', async (t) => {
  const h = await startHarness()
  t.teardown(() => h.stop())
  const cli = spawnCli(['replay', '--sample', '--to', `127.0.0.1:${h.port}`, '--speed', 'max'], {})
  t.equal(await cli.exited, 0, cli.stderrLines.join('\n'))
  const uuid = cli.stdoutLines.map((l) => /^call 1\/1 app-8k-dtmf\.ascap uuid ([0-9a-f-]{36}): ok$/.exec(l)?.[1]).find((u) => u !== undefined)
  if (uuid === undefined) return t.fail(`no call line on stdout: ${cli.stdoutLines.join('\n')}`)
  checkTranscript(t, await callEvents(h, uuid))
})

t.test('replay --sample with no server there: exit 1 and what to do', async (t) => {
  const sink = await startTcpSink()
  const port = sink.port
  await sink.close()
  const run = io()
  t.equal(await main(['replay', '--sample', '--to', `127.0.0.1:${port}`], run), 1)
  t.match(run.out(), /FAILED: cannot connect to 127\.0\.0\.1:\d+/)
  t.match(run.err(), /no server at 127\.0\.0\.1:\d+: start one first \(audiosocket-soniox serve\), or name it with --to HOST:PORT/)
})

t.test('--sample takes no file', async (t) => {
  const run = io()
  t.equal(await main(['replay', '--sample', SAMPLE_CAPTURE], run), 2)
  t.equal(run.err(), 'audiosocket-soniox replay: --sample plays the shipped call: give it no FILE (see audiosocket-soniox replay --help)\n')
})

t.test('npm pack ships the sample where the built replay looks for it', async (t) => {
  const pack = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' })
  t.equal(pack.status, 0, pack.stderr)
  const files = (JSON.parse(pack.stdout) as Array<{ files: Array<{ path: string; size: number }> }>)[0]?.files ?? []
  const sample = files.find((f) => f.path === SAMPLE_PATH_IN_PACKAGE)
  t.ok(sample, `${SAMPLE_PATH_IN_PACKAGE} is packed`)
  t.equal(sample?.size, readFileSync(SAMPLE_CAPTURE).length)
  t.ok(files.some((f) => f.path === 'dist/cli/replay.js'), 'beside dist/cli/replay.js, two directories below the package root as in the repository')
  t.equal(SAMPLE_CAPTURE, `${ROOT}${SAMPLE_PATH_IN_PACKAGE}`)
  t.equal(files.filter((f) => f.path.endsWith('.ascap')).length, 1, 'only the one sample; the other captures stay in the repository')
})
