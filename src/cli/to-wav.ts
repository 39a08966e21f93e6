/**
 * `audiosocket-soniox to-wav FILE`: one direction's audio as a WAV at its own sample rate.
 */
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { readCaptureFile } from '../capture/index.js'
import { captureAudio, encodeWav } from '../tools/index.js'
import { EXIT_OK, UsageError, parseSlinRate, processIo, runtimeError, usageError, type CliIo } from './cli-support.js'

export const TO_WAV_USAGE = `Usage: audiosocket-soniox to-wav FILE.ascap [-o OUT.wav] [--direction in|out] [--fill-gaps] [--slin-rate 8000|16000]

  -o, --out          the WAV file (default: FILE with .wav, or .out.wav for --direction out)
  --direction        in: what Asterisk sent (default); out: what the server sent back
  --fill-gaps        insert silence where no audio flowed for over 40 ms (wall-clock timeline);
                     without it the WAV's time axis is call audio time, as in the events' *_ms
  --slin-rate        sample rate of kind 0x10 audio (16000 for Asterisk before 20.17 with c(slin16))
  --allow-truncated  use what a cut-off capture holds`

function defaultOut(file: string, direction: 'in' | 'out'): string {
  const stem = file.endsWith('.ascap') ? file.slice(0, -'.ascap'.length) : file
  return `${stem}${direction === 'out' ? '.out' : ''}.wav`
}

export async function toWavCommand(args: string[], io: CliIo = processIo): Promise<number> {
  let file: string
  let out: string
  let direction: 'in' | 'out'
  let options: { fillGaps: boolean; slinSampleRate: number; allowTruncated: boolean }
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        out: { type: 'string', short: 'o' },
        direction: { type: 'string', default: 'in' },
        'fill-gaps': { type: 'boolean', default: false },
        'slin-rate': { type: 'string' },
        'allow-truncated': { type: 'boolean', default: false },
      },
    })
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'name a capture file' : 'name one capture file')
    if (values.direction !== 'in' && values.direction !== 'out') throw new UsageError(`--direction must be in or out, got "${values.direction}"`)
    file = positionals[0] as string
    direction = values.direction
    out = values.out ?? defaultOut(file, direction)
    options = { fillGaps: values['fill-gaps'], slinSampleRate: parseSlinRate(values['slin-rate']), allowTruncated: values['allow-truncated'] }
  } catch (err) {
    return usageError(io, 'to-wav', (err as Error).message, TO_WAV_USAGE)
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
