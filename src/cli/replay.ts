/**
 * `audiosocket-soniox replay FILE...`: plays captures into a server as Asterisk would, one call per
 * capture (times --repeat, --concurrency at once), and reports each call and the total. Exit 1 if
 * any call could not connect or was cut short by the server.
 *
 * `replay --sample` plays the recorded call shipped with the package (a first transcript without
 * Asterisk: start the server, play the sample, read the transcript in the server's events), with a
 * progress line per second on stderr.
 */
import { basename } from 'node:path'
import { fileURLToPath } from 'node:url'
import { readCaptureFile } from '../capture/index.js'
import { planReplay, runReplays, type CallReplayResult, type ReplayPlan } from '../tools/index.js'
import { parseCommandLine, type CommandSpec } from './args.js'
import { EXIT_FAILURE, EXIT_OK, UsageError, parseCount, parseHostPort, processIo, runtimeError, usageError, type CliIo } from './cli-support.js'

/**
 * The call shipped in the npm package (package.json "files"): Asterisk 22's AudioSocket() at 8 kHz,
 * "Press one for sales. Press two for billing.", DTMF 2, then a sentence with an account number,
 * then DTMF 4 7 # (synthesized speech; fixtures/README.md). Two directories up from src/cli and
 * from dist/cli alike.
 */
export const SAMPLE_CAPTURE = fileURLToPath(new URL('../../fixtures/captures/app-8k-dtmf.ascap', import.meta.url))

/** Where `serve` listens by default (AUDIOSOCKET_HOST:AUDIOSOCKET_PORT). */
const DEFAULT_TARGET = '127.0.0.1:9092'

export const REPLAY_SPEC = {
  name: 'replay',
  synopsis: ['FILE.ascap... [--to HOST:PORT] [options]', '--sample [--to HOST:PORT] [options]'],
  about: `Plays captures into an AudioSocket server as Asterisk would: the recorded writes at their recorded
times, a fresh UUID per call, then a report per call and the total on stdout. The transcripts are
the server's: its events (stdout of serve, EVENTS_FILE or the webhook). Exit 1 if a call failed.
--sample plays a 16 s call recorded from Asterisk that ships with the package (speech, DTMF).`,
  flags: {
    to: { type: 'string', value: 'HOST:PORT', help: `the AudioSocket server to call (default ${DEFAULT_TARGET}, where serve listens)` },
    sample: { type: 'boolean', help: 'play the recorded call shipped with the package (16 s, 8 kHz, speech and DTMF); implies --progress' },
    progress: { type: 'boolean', help: 'a line per second on stderr for each call playing: recorded time and frames sent' },
    speed: { type: 'string', value: 'N|max', help: '1 = the recorded cadence (default), 10 = ten times faster, max = as fast as possible' },
    concurrency: { type: 'string', value: 'N', help: 'calls in flight at once (default 1)' },
    repeat: { type: 'string', value: 'N', help: 'play the list N times (default 1)' },
    interval: { type: 'string', value: 'MS', help: 'at least MS between two call starts (default 0)' },
    'keep-uuid': { type: 'boolean', help: "send each capture's own UUID (default: a fresh UUID per call)" },
    'connect-timeout': { type: 'string', value: 'MS', help: 'give up connecting after MS (default 2000, as Asterisk)' },
    'allow-truncated': { type: 'boolean', help: 'replay what a cut-off capture holds' },
    json: { type: 'boolean', help: 'one JSON object per call, then the total, instead of text' },
  },
  positionals: true,
} as const satisfies CommandSpec

function parseSpeed(text: string | undefined): number {
  if (text === undefined) return 1
  if (text === 'max') return Infinity
  const speed = Number(text)
  if (!/^\d+(\.\d+)?$/.test(text) || !(speed > 0)) throw new UsageError(`--speed must be a number above 0 or "max", got "${text}"`)
  return speed
}

function serverText(r: CallReplayResult): string {
  const s = r.server
  const ending =
    s.ending === 'none'
      ? 'did not close'
      : `${s.ending === 'hangup-frame' ? 'sent hangup (00 00 00)' : s.ending === 'fin' ? 'closed (FIN)' : 'reset the connection'}` +
        `${s.endedFirst ? ' first' : ' after us'}${s.endedAtMs !== undefined ? ` at ${(s.endedAtMs / 1000).toFixed(2)} s` : ''}`
  const frames = Object.entries(s.frames).map(([kind, n]) => `${kind} x${n}`).join(', ')
  return `server ${ending}; sent back ${s.bytes} bytes${frames ? ` (${frames})` : ''}${s.protocolError ? `, not valid AudioSocket: ${s.protocolError}` : ''}`
}

function callText(r: CallReplayResult, index: number, total: number): string {
  const head = `call ${index + 1}/${total} ${r.name} uuid ${r.uuid ?? 'none'}`
  if (!r.connected) return `${head}: FAILED: ${r.failure}\n`
  const lines = [
    `${head}: ${r.ok ? 'ok' : `FAILED: ${r.failure}`}`,
    `  sent ${r.framesSent}/${r.framesTotal} frames, ${r.bytesSent}/${r.bytesTotal} bytes in ${r.writes} writes over ${(r.durationMs / 1000).toFixed(2)} s, ended with ${r.ending.toUpperCase()}; ` +
      `lateness max ${r.lateness.maxMs.toFixed(1)} ms, mean ${r.lateness.meanMs.toFixed(2)} ms`,
    `  ${serverText(r)}`,
  ]
  if (r.writeStalls > 0) lines.push(`  warning: ${r.writeStalls} write(s) found the socket buffer full: Asterisk's non-blocking write would have failed this call`)
  for (const note of r.notes) lines.push(`  note: ${note}`)
  return `${lines.join('\n')}\n`
}

export async function replayCommand(args: string[], io: CliIo = processIo): Promise<number> {
  const parsed = parseCommandLine(REPLAY_SPEC, args, io)
  if (parsed.exit !== undefined) return parsed.exit
  const { values, positionals } = parsed
  let files: string[]
  let to: { host: string; port: number }
  let options: { speed: number; concurrency: number; repeat: number; interval: number; keepUuid: boolean; connectTimeoutMs: number; json: boolean; allowTruncated: boolean; progress: boolean }
  try {
    if (values.sample && positionals.length > 0) throw new UsageError('--sample plays the shipped call: give it no FILE')
    if (!values.sample && positionals.length === 0) throw new UsageError('name at least one capture file, or give --sample')
    files = values.sample ? [SAMPLE_CAPTURE] : positionals
    to = parseHostPort(values.to ?? DEFAULT_TARGET, '--to')
    options = {
      speed: parseSpeed(values.speed),
      concurrency: parseCount(values.concurrency, '--concurrency', 1),
      repeat: parseCount(values.repeat, '--repeat', 1),
      interval: parseCount(values.interval, '--interval', 0, 0),
      keepUuid: values['keep-uuid'] === true,
      connectTimeoutMs: parseCount(values['connect-timeout'], '--connect-timeout', 2000),
      json: values.json === true,
      allowTruncated: values['allow-truncated'] === true,
      progress: values.progress === true || values.sample === true,
    }
  } catch (err) {
    return usageError(io, 'replay', (err as Error).message)
  }

  let plans: ReplayPlan[]
  try {
    plans = await Promise.all(files.map(async (f) => planReplay(await readCaptureFile(f, { allowTruncated: options.allowTruncated }), basename(f))))
  } catch (err) {
    return runtimeError(io, 'replay', err)
  }
  const total = plans.length * options.repeat
  if (values.sample) {
    io.stderr.write(
      `playing the sample call (${recordedSeconds(plans[0] as ReplayPlan)} s recorded from Asterisk: speech, then DTMF) to ${to.host}:${to.port}; ` +
        "its transcript is in the server's events (serve's stdout, EVENTS_FILE or the webhook)\n",
    )
  }
  const progress = options.progress ? new Progress(plans, total, io) : undefined
  let summary
  try {
    summary = await runReplays(plans, {
      host: to.host,
      port: to.port,
      speed: options.speed,
      keepUuid: options.keepUuid,
      concurrency: options.concurrency,
      repeat: options.repeat,
      startIntervalMs: options.interval,
      connectTimeoutMs: options.connectTimeoutMs,
      ...(progress ? { onSend: (write, call) => progress.sent(call, write.atUs, write.framesSent) } : {}),
      onResult: (r, index) => {
        progress?.ended(index)
        io.stdout.write(options.json ? `${JSON.stringify({ call: index + 1, ...r })}\n` : callText(r, index, total))
      },
    })
  } finally {
    progress?.stop()
  }
  if (values.sample && summary.results.some((r) => !r.connected)) {
    io.stderr.write(`no server at ${to.host}:${to.port}: start one first (audiosocket-soniox serve), or name it with --to HOST:PORT\n`)
  }
  const { results: _results, ...totals } = summary
  if (options.json) {
    io.stdout.write(`${JSON.stringify({ total: totals })}\n`)
  } else {
    io.stdout.write(
      `total: ${summary.calls} call(s), ${summary.ok} ok, ${summary.failed} failed; ${summary.framesSent} frames, ${summary.bytesSent} bytes sent in ` +
        `${(summary.wallMs / 1000).toFixed(2)} s; max lateness ${summary.maxLatenessMs.toFixed(1)} ms\n`,
    )
  }
  return summary.failed > 0 ? EXIT_FAILURE : EXIT_OK
}

/** The recorded length of a call: the time of its last step (Asterisk's FIN), in seconds. */
function recordedSeconds(plan: ReplayPlan): string {
  return ((plan.steps.at(-1)?.atUs ?? 0) / 1e6).toFixed(1)
}

/**
 * `--progress`: once a second, a line on stderr per call in flight: how far into its recording the
 * replay is, and the frames sent.
 */
class Progress {
  readonly #live = new Map<number, { atUs: number; framesSent: number }>()
  readonly #timer: NodeJS.Timeout

  constructor(
    private readonly plans: ReplayPlan[],
    private readonly total: number,
    private readonly io: CliIo,
  ) {
    this.#timer = setInterval(() => this.#print(), 1000)
    this.#timer.unref()
  }

  sent(call: number, atUs: number, framesSent: number): void {
    this.#live.set(call, { atUs, framesSent })
  }

  ended(call: number): void {
    this.#live.delete(call)
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  #print(): void {
    for (const [call, { atUs, framesSent }] of this.#live) {
      const plan = this.plans[call % this.plans.length] as ReplayPlan
      this.io.stderr.write(
        `call ${call + 1}/${this.total} ${plan.name}: ${(atUs / 1e6).toFixed(1)}/${recordedSeconds(plan)} s sent, ${framesSent}/${plan.frameEnds.length} frames\n`,
      )
    }
  }
}
