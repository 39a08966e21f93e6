/**
 * `audiosocket-soniox inspect FILE`: what a capture holds (UUID, duration, frames per kind, sizes,
 * sample rate, DTMF, gaps, cadence, chunking, how it ended, protocol violations with offsets).
 */
import { parseArgs } from 'node:util'
import { readCaptureFile } from '../capture/index.js'
import { formatReport, inspectCapture } from '../tools/index.js'
import { EXIT_OK, UsageError, parseSlinRate, processIo, runtimeError, usageError, type CliIo } from './cli-support.js'

export const INSPECT_USAGE = `Usage: audiosocket-soniox inspect FILE.ascap [--frames] [--json] [--slin-rate 8000|16000] [--allow-truncated]

  --frames           also list every frame (time, direction, offset, kind, length)
  --json             print the report as JSON
  --slin-rate        sample rate of kind 0x10 audio (16000 for Asterisk before 20.17 with c(slin16))
  --allow-truncated  read what a cut-off capture holds instead of failing`

export async function inspectCommand(args: string[], io: CliIo = processIo): Promise<number> {
  let files: string[]
  let options: { frames: boolean; json: boolean; slinSampleRate: number; allowTruncated: boolean }
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        frames: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'slin-rate': { type: 'string' },
        'allow-truncated': { type: 'boolean', default: false },
      },
    })
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'name a capture file' : 'name one capture file')
    files = positionals
    options = { frames: values.frames, json: values.json, slinSampleRate: parseSlinRate(values['slin-rate']), allowTruncated: values['allow-truncated'] }
  } catch (err) {
    return usageError(io, 'inspect', (err as Error).message, INSPECT_USAGE)
  }
  const file = files[0] as string
  try {
    const capture = await readCaptureFile(file, { allowTruncated: options.allowTruncated })
    const report = inspectCapture(capture, { slinSampleRate: options.slinSampleRate, frames: options.frames })
    io.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, file))
    return EXIT_OK
  } catch (err) {
    return runtimeError(io, 'inspect', err)
  }
}
