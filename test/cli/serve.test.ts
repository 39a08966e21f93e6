/**
 * The command as an admin runs it: a separate process, settings from the environment, events
 * as JSON lines on stdout when no webhook is set, logs on stderr, a clean exit on SIGTERM.
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { existsSync, readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { startFakeSoniox } from '../support/fake-soniox.js'
import { loadCapture } from '../support/frames.js'
import { replayCapture } from '../support/replay.js'
import { spawnCli } from '../support/spawn-server.js'
import { callSessions } from '../support/soniox-probes.js'
import { waitUntil } from '../support/wait.js'

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

/** `serve` as a separate process against its own Soniox stand-in; both stop when the test ends. */
async function serveAgainstStandIn(t: Test, env: Record<string, string> = {}) {
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  const p = spawnCli(['serve'], { AUDIOSOCKET_PORT: '0', SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url, ...env })
  t.teardown(() => p.child.kill('SIGKILL'))
  return { soniox, p }
}

t.test('a bad configuration stops the start with every problem named, exit 78', async (t) => {
  const p = spawnCli(['serve'], {
    AUDIOSOCKET_PORT: 'ninety',
    SONIOX_LANGUAGE_HINTS: 'en,english!',
    WEBHOOK_URL: 'ftp://example.invalid/hook',
    WEBHOOK_SECRET: 'super-secret-value',
  })
  t.equal(await p.exited, 78, 'EX_CONFIG, so systemd does not restart-loop')
  const stderr = p.stderrLines.join('\n')
  t.match(stderr, /AUDIOSOCKET_PORT \(audiosocket\.port\): must be a whole number from 0 to 65535/)
  t.match(stderr, /SONIOX_API_KEY \(soniox\.apiKey\): must be set/)
  t.match(stderr, /SONIOX_LANGUAGE_HINTS .*"english!" is not a language code/)
  t.match(stderr, /WEBHOOK_URL \(webhook\.url\): must use http: or https:/)
  t.notMatch(stderr, /super-secret-value/, 'secrets never appear in errors')
  t.equal(p.stdoutLines.length, 0)
})

t.test('a SONIOX_CONTEXT_FILE nested thousands of levels deep is a named problem, exit 78, not a stack trace', async (t) => {
  const dir = t.testdir({ 'deep.json': `{"general":${'['.repeat(4000)}${']'.repeat(4000)}}` })
  const p = spawnCli(['serve'], { AUDIOSOCKET_PORT: '0', SONIOX_API_KEY: 'test-key', SONIOX_CONTEXT_FILE: join(dir, 'deep.json') })
  t.equal(await p.exited, 78)
  const stderr = p.stderrLines.join('\n')
  t.match(stderr, /SONIOX_CONTEXT_FILE \(soniox\.contextFile\): .*deep\.json: context\.general\[0\]: context\.general must be an array/)
  t.notMatch(stderr, /RangeError|    at /, 'no stack trace')
})

t.test('serve with no webhook: events as JSON lines on stdout, logs on stderr, exit 0 on SIGTERM', async (t) => {
  const { soniox, p } = await serveAgainstStandIn(t)
  const listening = await p.waitForLog((r) => r.msg === 'AudioSocket server listening')
  t.equal(listening.host, '127.0.0.1', 'loopback by default')
  // Node's default for SIGHUP is to exit; without EVENTS_FILE the server only says it has nothing to reopen.
  p.child.kill('SIGHUP')
  await p.waitForLog((r) => r.msg === 'SIGHUP ignored: no EVENTS_FILE to reopen')

  const id = randomUUID()
  await replayCapture(loadCapture('app-8k-dtmf'), { port: listening.port as number, speed: 8, uuidBytes: uuidToBytes(id) })
  await p.waitForStdout((line) => line.includes('"call.ended"'))
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)

  const events = p.stdoutLines.map((l) => JSON.parse(l))
  t.same(events.map((e) => e.seq), events.map((_, i) => i), 'stdout holds only events, in order')
  t.equal(events[0].type, 'call.started')
  t.equal(events.at(-1).type, 'call.ended')
  t.equal(events.at(-1).call_id, id)
  t.equal(events.at(-1).data.transcript, callSessions(soniox)[0]?.transcript)
  t.same(events.filter((e) => e.type === 'call.dtmf').map((e) => e.data.digit), ['2', '4', '7', '#'])

  const logs = p.stderrLines.map((l) => JSON.parse(l))
  const ended = logs.find((r) => r.msg === 'call ended')
  t.match(ended, { level: 30, callId: id, reason: 'hangup', dtmf: 4 }, 'call end logged at info with its counts')
  t.ok(ended.words > 0)
  const transcriptWords = (callSessions(soniox)[0]?.transcript ?? '').trim().split(/\s+/)
  const infoText = logs.filter((r) => r.level >= 30).map((r) => JSON.stringify(r)).join('\n')
  t.notOk(transcriptWords.some((w) => w.length > 3 && infoText.includes(w)), 'no transcript text above debug')
})

t.test('SIGTERM during a live call with DRAIN_TIMEOUT_MS=0: the call is finished properly and Asterisk gets a hangup frame', async (t) => {
  const { soniox, p } = await serveAgainstStandIn(t, { DRAIN_TIMEOUT_MS: '0' })
  const listening = await p.waitForLog((r) => r.msg === 'AudioSocket server listening')
  const id = randomUUID()
  const replay = replayCapture(loadCapture('app-8k-speech'), { port: listening.port as number, uuidBytes: uuidToBytes(id) })
  await p.waitForLog((r) => r.msg === 'audio format')
  // Words to finish: wait until the stand-in has recognised some (an 18 s call; a fixed 3 s sleep
  // could end before the first word on a loaded machine).
  await waitUntil(() => (callSessions(soniox)[0]?.finalTokens.filter((tok) => !tok.text.startsWith('<')).length ?? 0) >= 3, 'three final words from Soniox', 15000)
  p.child.kill('SIGTERM')

  const result = await replay
  t.ok(result.closedByServer, 'the server ended the call')
  t.ok(result.received.equals(Buffer.from([0, 0, 0])), 'with exactly one hangup frame (00 00 00)')
  t.equal(await p.exited, 0)
  const events = p.stdoutLines.map((l) => JSON.parse(l))
  const ended = events.at(-1)
  t.equal(ended.type, 'call.ended')
  t.equal(ended.data.reason, 'shutdown')
  t.equal(callSessions(soniox)[0]?.endOfAudio, 'binary', 'Soniox was asked for its last words')
  t.equal(ended.data.transcript, callSessions(soniox)[0]?.transcript, 'and every word it sent was published')
  t.ok(ended.data.transcript.length > 0)
})

t.test('version, help and unknown commands', async (t) => {
  const version = spawnCli(['version'], {})
  t.equal(await version.exited, 0)
  t.same(version.stdoutLines, [pkg.version])
  const unknown = spawnCli(['frobnicate'], {})
  t.equal(await unknown.exited, 2)
  t.match(unknown.stderrLines.join('\n'), /unknown command "frobnicate"/)
  const settings = spawnCli(['settings'], {})
  t.equal(await settings.exited, 0)
  t.ok(settings.stdoutLines.some((l) => l.startsWith('SONIOX_API_KEY') && l.includes('(secret)')))
})

t.test('a retired variable is logged at warn when the server starts, and the server starts', async (t) => {
  const { p } = await serveAgainstStandIn(t, { WEBHOOK_MAX_ATTEMPTS: '3' })
  const warning = await p.waitForLog((r) => r.setting === 'WEBHOOK_MAX_ATTEMPTS')
  t.equal(warning.level, 40, 'warn')
  t.match(warning.msg, /^WEBHOOK_MAX_ATTEMPTS is no longer used: .*WEBHOOK_MAX_AGE/)
  await p.waitForLog((r) => r.msg === 'AudioSocket server listening')
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
})

t.test('SIGHUP reopens EVENTS_FILE after logrotate moved it, and the server keeps running', async (t) => {
  const eventsFile = join(t.testdir(), 'events.jsonl')
  const { p } = await serveAgainstStandIn(t, { EVENTS_FILE: eventsFile })
  const listening = await p.waitForLog((r) => r.msg === 'AudioSocket server listening')
  renameSync(eventsFile, `${eventsFile}.1`)
  p.child.kill('SIGHUP')
  await p.waitForLog((r) => r.msg === 'EVENTS_FILE reopened')
  t.ok(existsSync(eventsFile), 'a new EVENTS_FILE exists at the configured path')

  const id = randomUUID()
  await replayCapture(loadCapture('app-8k-dtmf'), { port: listening.port as number, speed: 8, uuidBytes: uuidToBytes(id) })
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0, 'still running after SIGHUP, and a clean exit on SIGTERM')
  const events = readFileSync(eventsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  t.equal(events[0]?.type, 'call.started')
  t.equal(events.at(-1)?.type, 'call.ended', 'the call after the reopen went to the new file')
  t.equal(readFileSync(`${eventsFile}.1`, 'utf8'), '', 'nothing was written to the rotated file after the reopen')
})
