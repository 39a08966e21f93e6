/**
 * `audiosocket-soniox replay FILE... --to HOST:PORT`: plays captures into a server as Asterisk
 * would, one call per capture (times --repeat, --concurrency at once), and reports each call and
 * the total. Exit 1 if any call could not connect or was cut short by the server.
 */
import { basename } from 'node:path'
import { parseArgs } from 'node:util'
import { readCaptureFile } from '../capture/index.js'
import { planReplay, runReplays, type CallReplayResult, type ReplayPlan } from '../tools/index.js'
import { EXIT_FAILURE, EXIT_OK, UsageError, parseCount, parseHostPort, processIo, runtimeError, usageError, type CliIo } from './cli-support.js'

export const REPLAY_USAGE = `Usage: audiosocket-soniox replay FILE.ascap... --to HOST:PORT [options]

  --to HOST:PORT      the AudioSocket server to call
  --speed N|max       1 = the recorded cadence (default), 10 = ten times faster, max = as fast as possible
  --concurrency N     calls in flight at once (default 1)
  --repeat N          play the list N times (default 1)
  --interval MS       at least MS between two call starts (default 0)
  --keep-uuid         send each capture's own UUID (default: a fresh UUID per call)
  --connect-timeout MS  give up connecting after MS (default 2000, as Asterisk)
  --allow-truncated   replay what a cut-off capture holds
  --json              one JSON object per call, then the total, instead of text`

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
  let files: string[]
  let to: { host: string; port: number }
  let options: { speed: number; concurrency: number; repeat: number; interval: number; keepUuid: boolean; connectTimeoutMs: number; json: boolean; allowTruncated: boolean }
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        to: { type: 'string' },
        speed: { type: 'string' },
        concurrency: { type: 'string' },
        repeat: { type: 'string' },
        interval: { type: 'string' },
        'keep-uuid': { type: 'boolean', default: false },
        'connect-timeout': { type: 'string' },
        'allow-truncated': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    })
    if (positionals.length === 0) throw new UsageError('name at least one capture file')
    if (values.to === undefined) throw new UsageError('--to HOST:PORT is required (the server to call)')
    files = positionals
    to = parseHostPort(values.to, '--to')
    options = {
      speed: parseSpeed(values.speed),
      concurrency: parseCount(values.concurrency, '--concurrency', 1),
      repeat: parseCount(values.repeat, '--repeat', 1),
      interval: parseCount(values.interval, '--interval', 0, 0),
      keepUuid: values['keep-uuid'],
      connectTimeoutMs: parseCount(values['connect-timeout'], '--connect-timeout', 2000),
      json: values.json,
      allowTruncated: values['allow-truncated'],
    }
  } catch (err) {
    return usageError(io, 'replay', (err as Error).message, REPLAY_USAGE)
  }

  let plans: ReplayPlan[]
  try {
    plans = await Promise.all(files.map(async (f) => planReplay(await readCaptureFile(f, { allowTruncated: options.allowTruncated }), basename(f))))
  } catch (err) {
    return runtimeError(io, 'replay', err)
  }
  const total = plans.length * options.repeat
  const summary = await runReplays(plans, {
    host: to.host,
    port: to.port,
    speed: options.speed,
    keepUuid: options.keepUuid,
    concurrency: options.concurrency,
    repeat: options.repeat,
    startIntervalMs: options.interval,
    connectTimeoutMs: options.connectTimeoutMs,
    onResult: (r, index) => io.stdout.write(options.json ? `${JSON.stringify({ call: index + 1, ...r })}\n` : callText(r, index, total)),
  })
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
