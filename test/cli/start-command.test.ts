/**
 * The README's start command gives a stdout of events only (issue 18, item 6): `npm start` prints
 * npm's own lines (`> audiosocket-soniox@0.1.0 start`, the prestart build's) on stdout before the
 * server's first event, so `npm start | jq` fails. The quick start runs the bin itself; this test
 * takes that command from the README, runs it as written (through sh, from the checkout), plays a
 * recorded call into it, and parses every stdout line as an event envelope.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { startFakeSoniox } from '../support/fake-soniox.js'
import { loadCapture } from '../support/frames.js'
import { replayCapture } from '../support/replay.js'
import { BIN } from '../support/spawn-server.js'
import { waitUntil } from '../support/wait.js'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
const PKG = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { bin: Record<string, string> }

/** The quick start's "Start the server" step: the one command in its code block. */
function quickStartCommand(): string {
  const quickStart = README.slice(README.indexOf('## Quick start'), README.indexOf('\n## ', README.indexOf('## Quick start') + 1))
  const step = quickStart.slice(quickStart.indexOf('**Start the server.**'))
  const block = /```sh\n([\s\S]*?)```/.exec(step)?.[1] ?? ''
  const lines = block.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  if (lines.length !== 1) throw new Error(`the quick start's start step should hold one command, found: ${JSON.stringify(lines)}`)
  return lines[0] as string
}

t.test("the README starts the server with the package's bin, and pipes nothing from npm start", async (t) => {
  const command = quickStartCommand()
  t.equal(command, `node ${PKG.bin['audiosocket-soniox']} serve`, 'the bin itself: no npm banner on stdout')
  t.notMatch(README, /npm (start|run)[^\n`]*\|/, 'no npm start piped into another program')
  t.match(README, new RegExp(`${command.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\| jq `), 'the jq line pipes that same command')
})

t.test('that command, run as written: stdout is only event envelopes, one JSON object per line', async (t) => {
  const command = quickStartCommand()
  t.equal(`${REPO}${command.split(' ')[1]}`, BIN, 'the file the other CLI tests run')
  const soniox = await startFakeSoniox()
  t.teardown(() => soniox.close())
  // exec: the shell becomes the server, so the signal reaches it as it would from a terminal.
  const child = spawn('sh', ['-c', `exec ${command}`], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? '', SONIOX_API_KEY: 'test-key', SONIOX_WEBSOCKET_URL: soniox.url, AUDIOSOCKET_PORT: '0', HTTP_PORT: '0', SPOOL_DIR: t.testdir() },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => child.kill('SIGKILL'))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))

  await waitUntil(() => /"msg":"AudioSocket server listening"/.test(stderr), 'the server to listen')
  const port = Number(/"port":(\d+),[^\n]*"msg":"AudioSocket server listening"/.exec(stderr)?.[1])
  await replayCapture(loadCapture('app-8k-dtmf'), { port, speed: 8 })
  await waitUntil(() => stdout.includes('"type":"call.ended"'), 'call.ended on stdout')
  child.kill('SIGTERM')
  t.equal(await exited, 0)

  const lines = stdout.split('\n').filter((l) => l !== '')
  t.ok(lines.length >= 3, `${lines.length} lines`)
  for (const line of lines) {
    const event = JSON.parse(line) as Record<string, unknown>
    t.match(event, { id: String, type: String, call_id: String, seq: Number, time: String, data: Object }, `an event: ${line.slice(0, 60)}`)
  }
  t.equal(JSON.parse(lines[0] as string).type, 'call.started')
  t.equal(JSON.parse(lines.at(-1) as string).type, 'call.ended')
})
