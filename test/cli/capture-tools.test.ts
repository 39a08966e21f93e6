/**
 * The capture subcommands as an admin runs them: inspect, to-wav, import-pcap, replay and capture,
 * in process with their output captured (exit 0 ok, 1 runtime failure, 2 usage), plus the built
 * binary once, end to end.
 */
import t from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { captureCommand } from '../../src/cli/capture.js'
import type { CliIo } from '../../src/cli/cli-support.js'
import { importPcapCommand } from '../../src/cli/import-pcap.js'
import { inspectCommand } from '../../src/cli/inspect.js'
import { replayCommand } from '../../src/cli/replay.js'
import { toWavCommand } from '../../src/cli/to-wav.js'
import { decodeCapture, directionStream, readCaptureFile } from '../../src/capture/index.js'
import { planReplay, replayCall } from '../../src/tools/index.js'
import { fixtureCapturePath, loadFixtureCapture } from '../support/capture-fixtures.js'
import { CAPTURE_DIR, loadCapture } from '../support/frames.js'
import { startHarness } from '../support/harness.js'
import { LINK, TcpConversation, ip, link, pcapFile } from '../support/pcap-builders.js'
import { spawnCli } from '../support/spawn-server.js'
import { startTcpSink } from '../support/tcp-sink.js'

function io(signal?: AbortSignal): CliIo & { out(): string; err(): string } {
  let out = ''
  let err = ''
  return { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env: {}, signal, out: () => out, err: () => err }
}

const DTMF = fixtureCapturePath('app-8k-dtmf')

t.test('inspect: text, JSON, frames; bad files and bad usage', async (t) => {
  const text = io()
  t.equal(await inspectCommand([DTMF], text), 0)
  t.match(text.out(), /uuid +e19e5fa9-ba02-4bac-a2bf-7aa12ec945df/)
  t.match(text.out(), /dtmf +2 at 4592\.3 ms/)

  const json = io()
  t.equal(await inspectCommand([DTMF, '--json', '--frames'], json), 0)
  const report = JSON.parse(json.out())
  t.equal(report.inbound.frames, 675)
  t.equal(report.frames.length, 675)

  const dir = t.testdir()
  const bytes = readFileSync(DTMF)
  writeFileSync(join(dir, 'cut.ascap'), bytes.subarray(0, bytes.length - 100))
  const cut = io()
  t.equal(await inspectCommand([join(dir, 'cut.ascap')], cut), 1, 'a truncated capture: exit 1')
  t.match(cut.err(), /cut\.ascap is cut off at byte \d+: record \d+ announces \d+ bytes but only \d+ remain .*--allow-truncated.*\[ERR_CAPTURE_TRUNCATED\]/)
  const salvage = io()
  t.equal(await inspectCommand([join(dir, 'cut.ascap'), '--allow-truncated'], salvage), 0)
  t.match(salvage.out(), /TRUNCATED cut off at byte/)

  const v2 = Buffer.from(bytes)
  v2.writeUInt16BE(7, 8)
  writeFileSync(join(dir, 'v7.ascap'), v2)
  const version = io()
  t.equal(await inspectCommand([join(dir, 'v7.ascap')], version), 1)
  t.match(version.err(), /uses capture format version 7; this tool reads version 1/)

  const missing = io()
  t.equal(await inspectCommand([join(dir, 'nope.ascap')], missing), 1)
  t.match(missing.err(), /ENOENT/)

  for (const args of [[], [DTMF, DTMF], [DTMF, '--bogus'], [DTMF, '--slin-rate', '11025']]) {
    const usage = io()
    t.equal(await inspectCommand(args, usage), 2, `usage error: ${JSON.stringify(args)}`)
    t.match(usage.err(), /^audiosocket-soniox inspect: .* \(see audiosocket-soniox inspect --help\)\n$/)
  }
})

t.test('to-wav: writes the audio at its rate; --direction out; nothing there is exit 1', async (t) => {
  const dir = t.testdir()
  const out = join(dir, 'call.wav')
  const run = io()
  t.equal(await toWavCommand([fixtureCapturePath('dial-16k-speech'), '-o', out], run), 0)
  t.match(run.out(), /wrote .*call\.wav: 16\.75 s of 16000 Hz audio from 838 frames/)
  const wav = readFileSync(out)
  t.equal(wav.readUInt32LE(24), 16000)
  t.equal(wav.readUInt32LE(40), 535884)

  const none = io()
  t.equal(await toWavCommand([fixtureCapturePath('dial-16k-speech'), '-o', join(dir, 'x.wav'), '--direction', 'out'], none), 1)
  t.match(none.err(), /no audio from the server \[ERR_CAPTURE_NO_AUDIO\]/)
  t.notOk(existsSync(join(dir, 'x.wav')))
  const usage = io()
  t.equal(await toWavCommand([DTMF, '--direction', 'sideways'], usage), 2)
})

t.test('import-pcap: the shared pcap and pcapng become captures identical to the fixtures', async (t) => {
  const dir = t.testdir()
  for (const [file, fixture] of [
    ['app-8k-speech.pcap', 'app-8k-speech.from-pcap'],
    ['dial-16k-speech.pcapng', 'dial-16k-speech.from-pcapng'],
  ] as const) {
    const run = io()
    t.equal(await importPcapCommand([`${CAPTURE_DIR}${file}`, '--out', dir], run), 0, file)
    const uuid = /uuid ([0-9a-f-]{36})/.exec(run.out())?.[1]
    t.match(run.out(), new RegExp(`wrote .*${uuid}\\.ascap: connection 1, 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:9301`))
    const imported = await readCaptureFile(join(dir, `${uuid}.ascap`))
    const stem = file.replace(/\.pcap(ng)?$/, '')
    t.ok(directionStream(imported, 'in').bytes.equals(loadCapture(stem).bytes), `${file}: byte for byte ${stem}.bin`)
    const expected = loadFixtureCapture(fixture)
    t.same(imported.records.map((r) => [r.offsetUs, r.type, r.direction, r.data.length]), expected.records.map((r) => [r.offsetUs, r.type, r.direction, r.data.length]), 'the same records as the fixture')
    const again = io()
    t.equal(await importPcapCommand([`${CAPTURE_DIR}${file}`, '--out', dir], again), 1, 'an existing file is not overwritten')
    t.match(again.err(), /exists: remove it, choose another --out, or give --force/)
    t.equal(await importPcapCommand([`${CAPTURE_DIR}${file}`, '--out', dir, '--force'], io()), 0)
  }

  const single = join(dir, 'one.ascap')
  t.equal(await importPcapCommand([`${CAPTURE_DIR}app-8k-speech.pcap`, '-o', single], io()), 0, '--out FILE.ascap for a one-call capture')
  t.doesNotThrow(() => decodeCapture(readFileSync(single)))
})

t.test('import-pcap: corrupt and foreign inputs exit 1 with the reason; usage errors exit 2', async (t) => {
  const dir = t.testdir()
  const pcap = readFileSync(`${CAPTURE_DIR}app-8k-speech.pcap`)
  writeFileSync(join(dir, 'cut.pcap'), pcap.subarray(0, pcap.length - 1000))
  const cut = io()
  t.equal(await importPcapCommand([join(dir, 'cut.pcap'), '--out', dir], cut), 1)
  t.match(cut.err(), /cut\.pcap is cut off inside packet \d+ .*\[ERR_PCAP_TRUNCATED\]/)
  const salvaged = io()
  t.equal(await importPcapCommand([join(dir, 'cut.pcap'), '--out', join(dir, 'salvaged'), '--allow-truncated'], salvaged), 0)
  t.match(salvaged.err(), /note: .*cut off inside packet/)

  const rtp = Array.from({ length: 3 }, (_, i) => ({ timeUs: 1e15 + i * 20000, data: link.ethernet(ip.udp4('10.0.0.1', '10.0.0.2', 10000, 20000, Buffer.alloc(172))) }))
  writeFileSync(join(dir, 'rtp.pcap'), pcapFile(LINK.Ethernet, rtp))
  const udp = io()
  t.equal(await importPcapCommand([join(dir, 'rtp.pcap'), '--out', dir], udp), 1)
  t.match(udp.err(), /no TCP packets \(3 packets: 3 udp\)/)

  const web = new TcpConversation({ client: { address: '10.0.0.1', port: 50000 }, server: { address: '10.0.0.2', port: 9092 } })
  web.handshake(0).clientSends(1, Buffer.from('GET / HTTP/1.1\r\n\r\n')).clientFin(2)
  writeFileSync(join(dir, 'web.pcap'), pcapFile(LINK.Ethernet, web.specs()))
  const notAs = io()
  t.equal(await importPcapCommand([join(dir, 'web.pcap'), '--out', dir], notAs), 1)
  t.match(notAs.err(), /does not start with a UUID frame .*\[ERR_PCAP_NOT_AUDIOSOCKET\]/)

  t.equal(await importPcapCommand([], io()), 2)
  t.equal(await importPcapCommand([join(dir, 'web.pcap'), '--port', 'http'], io()), 2)
})

t.test('replay: a summary per call and in total; exit 1 when a call fails or is cut short', async (t) => {
  const h = await startHarness()
  t.teardown(() => h.stop())
  const ok = io()
  t.equal(await replayCommand([DTMF, fixtureCapturePath('dial-48k-speech'), '--to', `127.0.0.1:${h.port}`, '--speed', 'max', '--concurrency', '2'], ok), 0)
  t.match(ok.out(), /call 1\/2 app-8k-dtmf\.ascap uuid [0-9a-f-]{36}: ok\n  sent 675\/675 frames, 216213\/216213 bytes in 675 writes over [\d.]+ s, ended with FIN/)
  t.match(ok.out(), /call 2\/2 dial-48k-speech\.ascap .*: ok/)
  t.match(ok.out(), /server closed \(FIN\) after us/)
  t.match(ok.out(), /total: 2 call\(s\), 2 ok, 0 failed; \d+ frames, \d+ bytes sent/)

  const bad = io()
  t.equal(await replayCommand([fixtureCapturePath('violation-bad-dtmf'), '--to', `127.0.0.1:${h.port}`], bad), 1, 'cut short by the server: exit 1')
  t.match(bad.out(), /FAILED: cut short: the server ended the call \(hangup-frame\)/)
  t.match(bad.out(), /server sent hangup \(00 00 00\) first at [\d.]+ s; sent back 3 bytes \(0x00 x1\)/)

  // --keep-uuid into a stand-in that closes after each FIN, not into the server: the server refuses
  // a UUID while a call with it is still live (finishing included), and the replay cannot know when
  // the first call has ended there.
  const echoFin = await startTcpSink((c) => void c.ended.then(() => c.socket.end()))
  t.teardown(() => echoFin.close())
  const json = io()
  t.equal(await replayCommand([DTMF, '--to', `127.0.0.1:${echoFin.port}`, '--speed', 'max', '--repeat', '2', '--json', '--keep-uuid'], json), 0)
  const lines = json.out().trim().split('\n').map((l) => JSON.parse(l))
  t.equal(lines.length, 3)
  t.same(lines.slice(0, 2).map((l) => l.uuid), ['e19e5fa9-ba02-4bac-a2bf-7aa12ec945df', 'e19e5fa9-ba02-4bac-a2bf-7aa12ec945df'], '--keep-uuid')
  t.match(lines[2], { total: { calls: 2, ok: 2, failed: 0 } })

  const sink = await startTcpSink()
  const port = sink.port
  await sink.close()
  const refused = io()
  t.equal(await replayCommand([DTMF, '--to', `127.0.0.1:${port}`], refused), 1, 'no server: exit 1')
  t.match(refused.out(), /FAILED: cannot connect to 127\.0\.0\.1:\d+/)

  for (const args of [['--to', '127.0.0.1:1'], [DTMF, '--to', 'nowhere'], [DTMF, '--to', 'h:1', '--speed', '0'], [DTMF, '--to', 'h:1', '--concurrency', '0']]) {
    const usage = io()
    t.equal(await replayCommand(args, usage), 2, `usage: ${JSON.stringify(args)}`)
    t.match(usage.err(), /^audiosocket-soniox replay: .* \(see audiosocket-soniox replay --help\)\n$/)
  }
  const garbage = io()
  t.equal(await replayCommand([`${CAPTURE_DIR}app-8k-speech.pcap`, '--to', `127.0.0.1:${h.port}`], garbage), 1, 'a pcap is not replayed directly')
  t.match(garbage.err(), /import-pcap/)
})

t.test('capture: listens, writes one capture per connection, stops after --count', async (t) => {
  const dir = join(t.testdir(), 'out')
  const run = io()
  const done = captureCommand(['--listen', '127.0.0.1:0', '--out', dir, '--count', '1'], run)
  // The command reports where it listens on stderr.
  const port = await new Promise<number>((resolve) => {
    const poll = (): void => {
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(run.err())
      if (m) resolve(Number(m[1]))
      else setImmediate(poll)
    }
    poll()
  })
  const result = await replayCall(planReplay(loadFixtureCapture('violation-rate-change'), 'x'), { host: '127.0.0.1', port, speed: Infinity, keepUuid: true })
  t.equal(result.ok, true)
  t.equal(await done, 0)
  t.match(run.out(), /captured .*7d9b1f7e-3c1a-4b8e-9f00-5e2a6c4d1b01\.ascap: uuid 7d9b1f7e-3c1a-4b8e-9f00-5e2a6c4d1b01, from 127\.0\.0\.1:\d+, 4849 bytes in, 0 bytes out/)
  t.match(run.err(), /\(recording only\), writing captures to .* \(they hold call audio\)/)

  const usage = io()
  t.equal(await captureCommand(['--listen', '127.0.0.1:9092', '--upstream', '127.0.0.1:9092'], usage), 2, 'a proxy to itself')
  t.match(usage.err(), /--upstream must differ from --listen/)

  const stopper = new AbortController()
  const aborted = io(stopper.signal)
  const running = captureCommand(['--listen', '127.0.0.1:0', '--out', dir], aborted)
  while (!aborted.err().includes('listening')) await new Promise((resolve) => setImmediate(resolve))
  stopper.abort()
  t.equal(await running, 0, 'stops cleanly on a signal')
})

t.test('the built binary: help lists the capture commands; inspect runs', async (t) => {
  const cli = spawnCli(['inspect', DTMF], {})
  t.equal(await cli.exited, 0)
  t.ok(cli.stdoutLines.some((l) => /^uuid +e19e5fa9/.test(l)), 'the report on stdout')
  const usage = spawnCli(['--help'], {})
  t.equal(await usage.exited, 0)
  const text = usage.stdoutLines.join('\n')
  for (const command of ['capture', 'replay', 'import-pcap', 'inspect', 'to-wav']) t.match(text, new RegExp(`^  ${command} +\\S`, 'm'))
  const usageError = spawnCli(['replay', DTMF, '--bogus'], {})
  t.equal(await usageError.exited, 2, 'a usage error exits 2 from the binary too')
  t.same(usageError.stderrLines, ['audiosocket-soniox replay: unknown option --bogus (see audiosocket-soniox replay --help)'], 'one line, no stack')
})
