/**
 * Each benchmark role runs in its own process, so no role shares an event loop with the server
 * under test. Roles talk to the orchestrator over Node's IPC channel: one `ready` message with
 * what the role offers (a port), then request/response pairs (`report`, `stop`).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface RoleHandle<Ready> {
  child: ChildProcess
  ready: Ready
  request<T>(type: string, body?: unknown): Promise<T>
  stop(): Promise<void>
}

/** Role files sit beside this one's folder; keep the extension we run with (.ts under tests, .js built). */
function roleFile(name: string): string {
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js'
  return fileURLToPath(new URL(`../roles/${name}.${ext}`, import.meta.url))
}

export async function startRole<Ready>(name: string, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<RoleHandle<Ready>> {
  const child = fork(roleFile(name), [], { env: { ...process.env, ...env }, execArgv: [...process.execArgv, ...nodeArgs], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let nextId = 0
  const pending = new Map<number, (value: unknown) => void>()
  const ready = await new Promise<Ready>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`bench role ${name} exited with ${code} before it was ready`)))
    child.on('message', (msg: { type: string; id?: number; body?: unknown }) => {
      if (msg.type === 'ready') resolve(msg.body as Ready)
      else if (msg.type === 'response' && msg.id !== undefined) {
        pending.get(msg.id)?.(msg.body)
        pending.delete(msg.id)
      }
    })
  })
  child.removeAllListeners('exit')
  return {
    child,
    ready,
    request<T>(type: string, body?: unknown): Promise<T> {
      const id = nextId++
      return new Promise<T>((resolve) => {
        pending.set(id, resolve as (value: unknown) => void)
        child.send({ type, id, body })
      })
    },
    async stop() {
      if (child.exitCode !== null) return
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** Inside a role: announce readiness and answer requests. */
export function serveRole(ready: unknown, handlers: Record<string, (body: unknown) => unknown | Promise<unknown>>): void {
  process.on('message', async (msg: { type: string; id: number; body?: unknown }) => {
    const handler = handlers[msg.type]
    const body = handler ? await handler(msg.body) : { error: `unknown request ${msg.type}` }
    process.send?.({ type: 'response', id: msg.id, body })
  })
  process.on('SIGTERM', () => process.exit(0))
  process.send?.({ type: 'ready', body: ready })
}

/**
 * This process's epoch ms at performance.now() = 0, anchored on a tick of the wall clock: a busy
 * wait for Date.now() to change, bracketed by the last performance.now() read while it had not
 * changed and the first read after it had (the narrowest bracket of up to 20, until one is under
 * 5 µs; each costs at most a millisecond; a process descheduled in a bracket only widens it). Not
 * performance.timeOrigin, which Node fixes at start-up and which a process started on a loaded
 * machine can get wrong by tens of milliseconds (40 processes started on the 2-core VM while two
 * others spun: 38 within 1 ms of Date.now(), two off by -88 and +46 ms), and cross-process latencies
 * with it (a bench run showed the relay's audio latency p50 at -12 ms). Two anchors taken 200 ms
 * apart in each of 30 processes under that load agreed within 8 µs.
 */
function wallClockOrigin(): number {
  let best = Infinity
  let origin = performance.timeOrigin
  for (let attempt = 0; attempt < 20 && best > 0.005; attempt++) {
    const start = Date.now()
    let lower = -Infinity
    let tick = start
    while (tick === start) {
      const before = performance.now()
      tick = Date.now()
      if (tick === start) lower = before
    }
    const upper = performance.now()
    // Date.now() turned to `tick` after `lower` and before `upper`.
    if (upper - lower < best) {
      best = upper - lower
      origin = tick - (lower + upper) / 2
    }
  }
  return origin
}

const ORIGIN = wallClockOrigin()

/** Epoch ms of a performance.now() reading of this process, comparable across processes on one machine. */
export function epochOf(performanceNowMs: number): number {
  return ORIGIN + performanceNowMs
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export function epochMs(): number {
  return ORIGIN + performance.now()
}

/** The repository root (the folder holding package.json), from source or from a build folder. */
export function repoRoot(): string {
  let dir = fileURLToPath(new URL('.', import.meta.url))
  while (!existsSync(`${dir}/package.json`)) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error('cannot find the repository root')
    dir = parent
  }
  return dir
}
