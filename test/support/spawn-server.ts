/**
 * Runs the built command (`dist/cli/main.js`) as a separate process, the way systemd or a user
 * runs it, and exposes its stdout (events) and stderr (pino logs) as parsed lines.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const BIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))

export interface ServerProcess {
  child: ChildProcess
  stdoutLines: string[]
  stderrLines: string[]
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>
  /** Resolves with the first parsed stderr record matching the predicate. */
  waitForLog(predicate: (record: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  /** Resolves once stdout holds a line matching the predicate. */
  waitForStdout(predicate: (line: string) => boolean, timeoutMs?: number): Promise<string>
}

export function spawnCli(args: string[], env: Record<string, string>): ServerProcess {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run "npm run build" first (npm test does)`)
  // HTTP_PORT defaults to off: tests run in parallel and must not all bind the fixed 9093.
  const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', HTTP_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const stdoutLines: string[] = []
  const stderrLines: string[] = []
  const listeners = new Set<() => void>()
  const collect = (stream: NodeJS.ReadableStream, into: string[]): void => {
    let rest = ''
    stream.setEncoding('utf8')
    stream.on('data', (text: string) => {
      const lines = (rest + text).split('\n')
      rest = lines.pop() ?? ''
      into.push(...lines.filter((l) => l !== ''))
      for (const notify of listeners) notify()
    })
  }
  collect(child.stdout as NodeJS.ReadableStream, stdoutLines)
  collect(child.stderr as NodeJS.ReadableStream, stderrLines)
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')))

  const waitFor = <T>(find: () => T | undefined, what: string, timeoutMs: number): Promise<T> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = find()
        if (found !== undefined) {
          listeners.delete(check)
          clearTimeout(timer)
          resolve(found)
        }
      }
      const timer = setTimeout(() => {
        listeners.delete(check)
        reject(new Error(`timed out waiting for ${what}; stderr:\n${stderrLines.join('\n')}`))
      }, timeoutMs)
      listeners.add(check)
      check()
    })

  return {
    child,
    stdoutLines,
    stderrLines,
    exited,
    waitForLog: (predicate, timeoutMs = 10000) =>
      waitFor(
        () => stderrLines.map(parseJson).find((r): r is Record<string, unknown> => r !== undefined && predicate(r)),
        'a log record',
        timeoutMs,
      ),
    waitForStdout: (predicate, timeoutMs = 10000) => waitFor(() => stdoutLines.find(predicate), 'a stdout line', timeoutMs),
  }
}

function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>
  } catch {
    return undefined
  }
}
