/**
 * `audiosocket-soniox to-wav FILE`: one direction's audio as a WAV at its own sample rate.
 */
import { writeFile } from 'node:fs/promises'
import { readCaptureFile } from '../capture/index.js'
import { captureAudio, encodeWav } from '../tools/index.js'
import { parseCommandLine, type CommandSpec } from './args.js'
import { EXIT_OK, UsageError, parseSlinRate, processIo, runtimeError, usageError, type CliIo } from './cli-support.js'

export const TO_WAV_SPEC = {
  name: 'to-wav',
  synopsis: ['FILE.ascap [-o OUT.wav] [--direction in|out] [--fill-gaps] [--slin-rate 8000|16000] [--allow-truncated]'],
  about: `Writes one direction of a capture's audio as a WAV file at its own sample rate. Without
--fill-gaps the WAV's time axis is call audio time, as the events' *_ms fields count it.`,
  flags: {
    out: { type: 'string', short: 'o', value: 'OUT.wav', help: 'the WAV file (default: FILE with .wav, or .out.wav for --direction out)' },
    direction: { type: 'string', value: 'in|out', help: 'in: what Asterisk sent (default); out: what the server sent back' },
    'fill-gaps': { type: 'boolean', help: 'insert silence where no audio flowed for over 40 ms (a wall-clock timeline)' },
    'slin-rate': { type: 'string', value: '8000|16000', help: 'sample rate of kind 0x10 audio (16000 for Asterisk before 20.17 with c(slin16))' },
    'allow-truncated': { type: 'boolean', help: 'use what a cut-off capture holds' },
  },
  positionals: true,
} as const satisfies CommandSpec

function defaultOut(file: string, direction: 'in' | 'out'): string {
  const stem = file.endsWith('.ascap') ? file.slice(0, -'.ascap'.length) : file
  return `${stem}${direction === 'out' ? '.out' : ''}.wav`
}

export async function toWavCommand(args: string[], io: CliIo = processIo): Promise<number> {
  let file: string
  let out: string
  let direction: 'in' | 'out'
  let options: { fillGaps: boolean; slinSampleRate: number; allowTruncated: boolean }
  const parsed = parseCommandLine(TO_WAV_SPEC, args, io)
  if (parsed.exit !== undefined) return parsed.exit
  const { values, positionals } = parsed
  try {
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'name a capture file' : 'name one capture file')
    const dir = values.direction ?? 'in'
    if (dir !== 'in' && dir !== 'out') throw new UsageError(`--direction must be in or out, got "${dir}"`)
    file = positionals[0] as string
    direction = dir
    out = values.out ?? defaultOut(file, direction)
    options = { fillGaps: values['fill-gaps'] === true, slinSampleRate: parseSlinRate(values['slin-rate']), allowTruncated: values['allow-truncated'] === true }
  } catch (err) {
    return usageError(io, 'to-wav', (err as Error).message)
  }
  try {
    const capture = await readCaptureFile(file, { allowTruncated: options.allowTruncated })
    const audio = captureAudio(capture, { direction, fillGaps: options.fillGaps, slinSampleRate: options.slinSampleRate })
    await writeFile(out, encodeWav(audio.pcm, audio.sampleRate), { mode: 0o600 })
    const seconds = (audio.pcm.length / 2 / audio.sampleRate).toFixed(2)
    io.stdout.write(
      `wrote ${out}: ${seconds} s of ${audio.sampleRate} Hz audio from ${audio.frames} frames${audio.filledMs > 0 ? ` (${audio.filledMs} ms of silence filled in)` : ''}\n`,
    )
    return EXIT_OK
  } catch (err) {
    return runtimeError(io, 'to-wav', err)
  }
}
