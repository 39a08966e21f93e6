/**
 * Shutdown always ends (issue 18, item 5), as separate processes:
 *
 *   - `serve 2>&1 | head -2`: the reader of stdout and stderr goes away after the first lines (here
 *     the test destroys its ends of both pipes once the server has said it started). SIGTERM still
 *     drains and exits 0, within the drain's bounds, idle or with a live call. Before, a log line
 *     still queued at exit made pino's destination retry EPIPE every 100 ms forever.
 *   - A second SIGTERM or SIGINT during a long drain exits at once with 128 + the signal's number
 *     (SIGTERM 143, SIGINT 130), with the pipes broken too.
 *
 * No sleeps: each test waits for the process's exit event, raced against a deadline that fails it.
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { startFakeSoniox } from '../support/fake-soniox.js'
import { loadCapture } from '../support/frames.js'
import { replayCapture, type ReplayResult } from '../support/replay.js'
import { spawnCli, type ServerProcess } from '../support/spawn-server.js'

// 18 s of speech at real time: still live when each test signals.
const SPEECH = loadCapture('app-8k-speech')

async function startServer(t: Test, env: Record<string, string>) {
  const soniox = await startFakeSoniox()
  const p = spawnCli(['serve'], { AUDIOSOCKET_PORT: '0', SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url, ...env })
  t.teardown(async () => {
    p.child.kill('SIGKILL')
    await p.exited
    await soniox.close()
  })
  const listening = await p.waitForLog((r) => r.msg === 'AudioSocket server listening')
  await p.waitForLog((r) => r.msg === 'audiosocket-soniox started')
  return { p, port: listening.port as number }
}

/** A call that stays live (the long recording at real time); its replay ends when the server closes it. */
async function liveCall(t: Test, p: ServerProcess, port: number): Promise<{ replay: Promise<ReplayResult> }> {
  const id = randomUUID()
  const replay = replayCapture(SPEECH, { port, speed: 1, uuidBytes: uuidToBytes(id) })
  t.teardown(() => replay.then(() => undefined, () => undefined))
  await p.waitForLog((r) => r.msg === 'audio format' && r.callId === id)
  // Wrapped: an async function returning the promise itself would wait for the whole call.
  return { replay }
}

/** The reader goes away, as `head` does after its lines: the server's stdout and stderr are broken pipes. */
function closePipes(p: ServerProcess): void {
  p.child.stdout?.destroy()
  p.child.stderr?.destroy()
}

/** The exit code (or signal), or 'still running' if the process has not exited within `ms`. */
async function exitWithin(p: ServerProcess, ms: number): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`still running after ${ms} ms`), ms)
  })
  try {
    return await Promise.race([p.exited, deadline])
  } finally {
    clearTimeout(timer)
  }
}

t.test('stdout and stderr broken pipes, idle: SIGTERM drains and exits 0', async (t) => {
  // A few runs: the line queued at exit was a race the old destination lost most of the time.
  for (let run = 1; run <= 3; run++) {
    const { p } = await startServer(t, { DRAIN_TIMEOUT_MS: '2000', FLUSH_TIMEOUT_MS: '2000' })
    closePipes(p)
    p.child.kill('SIGTERM')
    t.equal(await exitWithin(p, 2000 + 2000 + 5000), 0, `run ${run}: exit 0 within the drain and flush bounds`)
  }
})

t.test('stdout and stderr broken pipes, a live call: SIGTERM ends it at DRAIN_TIMEOUT_MS and exits 0 within the bounds', async (t) => {
  const drain = 1000
  const finish = 2000
  const flush = 2000
  const { p, port } = await startServer(t, { DRAIN_TIMEOUT_MS: String(drain), SONIOX_FINISH_TIMEOUT_MS: String(finish), FLUSH_TIMEOUT_MS: String(flush) })
  const { replay } = await liveCall(t, p, port)
  closePipes(p)
  p.child.kill('SIGTERM')
  t.equal(await exitWithin(p, drain + finish + flush + 5000), 0, 'exit 0 within drain + Soniox finish + flush (and a margin)')
  const result = await replay
  t.ok(result.closedByServer, 'the live call was ended by the server (at the drain deadline), not left hanging')
})

for (const [first, second, code] of [
  ['SIGTERM', 'SIGINT', 130],
  ['SIGINT', 'SIGTERM', 143],
] as const) {
  t.test(`${first}, then ${second} during a long drain with the pipes broken: exits at once with ${code}`, async (t) => {
    const { p, port } = await startServer(t, { DRAIN_TIMEOUT_MS: '600000' })
    await liveCall(t, p, port)
    p.child.kill(first)
    const draining = await p.waitForLog((r) => r.msg === 'draining: new connections refused, live calls go on')
    t.match(draining, { signal: first, activeCalls: 1, drainTimeoutMs: 600000 })
    closePipes(p)
    p.child.kill(second)
    // "At once": long before the 10-minute drain; the deadline only keeps a failure from hanging the run.
    t.equal(await exitWithin(p, 5000), code, `128 + ${second}'s number, while the call is still live`)
  })
}

t.test('a second signal with the pipes open says why it exits, and with what', async (t) => {
  const { p, port } = await startServer(t, { DRAIN_TIMEOUT_MS: '600000' })
  await liveCall(t, p, port)
  p.child.kill('SIGTERM')
  await p.waitForLog((r) => r.msg === 'draining: new connections refused, live calls go on')
  p.child.kill('SIGTERM')
  t.equal(await exitWithin(p, 5000), 143)
  const line = await p.waitForLog((r) => r.msg === 'second signal: exiting at once, without waiting for calls or events')
  t.match(line, { level: 40, signal: 'SIGTERM', activeCalls: 1, exitCode: 143 })
})
