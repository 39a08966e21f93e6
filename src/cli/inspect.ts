/**
 * `audiosocket-soniox inspect FILE`: what a capture holds (UUID, duration, frames per kind, sizes,
 * sample rate, DTMF, gaps, cadence, chunking, how it ended, protocol violations with offsets).
 */
import { readCaptureFile } from '../capture/index.js'
import { formatReport, inspectCapture } from '../tools/index.js'
import { parseCommandLine, type CommandSpec } from './args.js'
import { EXIT_OK, UsageError, parseSlinRate, processIo, runtimeError, usageError, type CliIo } from './cli-support.js'

export const INSPECT_SPEC = {
  name: 'inspect',
  synopsis: ['FILE.ascap [--frames] [--json] [--slin-rate 8000|16000] [--allow-truncated]'],
  about: `What a capture holds: UUID, duration, frames per kind, sizes, sample rate, DTMF, gaps,
cadence, chunking, how it ended, and protocol violations with their offsets.`,
  flags: {
    frames: { type: 'boolean', help: 'also list every frame (time, direction, offset, kind, length)' },
    json: { type: 'boolean', help: 'print the report as JSON' },
    'slin-rate': { type: 'string', value: '8000|16000', help: 'sample rate of kind 0x10 audio (16000 for Asterisk before 20.17 with c(slin16))' },
    'allow-truncated': { type: 'boolean', help: 'read what a cut-off capture holds instead of failing' },
  },
  positionals: true,
} as const satisfies CommandSpec

export async function inspectCommand(args: string[], io: CliIo = processIo): Promise<number> {
  let files: string[]
  let options: { frames: boolean; json: boolean; slinSampleRate: number; allowTruncated: boolean }
  const parsed = parseCommandLine(INSPECT_SPEC, args, io)
  if (parsed.exit !== undefined) return parsed.exit
  const { values, positionals } = parsed
  try {
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'name a capture file' : 'name one capture file')
    files = positionals
    options = { frames: values.frames === true, json: values.json === true, slinSampleRate: parseSlinRate(values['slin-rate']), allowTruncated: values['allow-truncated'] === true }
  } catch (err) {
    return usageError(io, 'inspect', (err as Error).message)
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
