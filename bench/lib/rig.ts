/**
 * One measurement's processes, short of the load: the Soniox stand-in, the webhook receiver and
 * the target under test (the built server with production settings, or bench/roles/relay), wired
 * to each other as a real deployment is. Every scenario (bench/run.ts steady state, bench/burst.ts)
 * starts one per measurement and stops it after.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { ReceiverReport, StandInReport } from './reports.js'
import { repoRoot, startRole, type RoleHandle } from './roles.js'
import type { BenchCertificates } from './tls.js'

/** The measured target: the relay, or the server at one SONIOX_AUDIO_BATCH_MS (undefined: its default). */
export interface Variant {
  target: 'relay' | 'server'
  batchMs?: number | undefined
  /**
   * Another build of the server to measure instead of this checkout's (`--compare <checkout>`): its
   * dist/cli/main.js, and a name for it in the tables.
   */
  build?: { bin: string; name: string } | undefined
}

export interface RigOptions {
  /** Calls whose audio arrivals the stand-in logs (the load generator logs the same calls' writes). */
  sampledCalls: number
  /** wss:// between the target and the stand-in, https:// to the receiver. */
  tls: { soniox: boolean; webhook: boolean }
  /** A file the target's event-loop delay windows are appended to (bench/lib/loop-delay-probe.ts). */
  loopDelayFile?: string | undefined
  /**
   * The server with ARI on (bench/conversations.ts): this ARI (a fake one, in the load generator)
   * as ARI_URL, and its HTTP endpoint on a free port with this HTTP_TOKEN, for POST /conversations.
   */
  ari?: { url: string; username: string; password: string; httpToken: string } | undefined
}

export interface Rig {
  /** The target's AudioSocket port. */
  port: number
  /** The server's HTTP endpoint, when started with `ari`: http://127.0.0.1:<port>. */
  httpUrl?: string | undefined
  pid: number
  standIn: RoleHandle<{ url: string }>
  receiver: RoleHandle<{ url: string }>
  /** Error and fatal log lines of the server so far (the relay logs none). */
  errors(): number
  stop(): Promise<void>
}

const SERVER_BIN = join(repoRoot(), 'dist/cli/main.js')

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * BENCH_NODE_ARGS: extra node flags for the target (server or relay), the same for both, e.g.
 * "--perf-basic-prof" so that `perf record -p <pid>` can name JIT-compiled functions.
 */
function targetNodeArgs(options: RigOptions): string[] {
  const extra = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '')
  return options.loopDelayFile ? [...extra, '--import', pathToFileURL(join(repoRoot(), 'bench/lib/loop-delay-probe.mjs')).href] : extra
}

/** Starts the built server and resolves once it logs that it listens; counts error log lines. */
async function startServer(bin: string, env: Record<string, string>, nodeArgs: string[]): Promise<{ child: ChildProcess; errors: () => number; stop: () => Promise<void> }> {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build" first`)
  // BENCH_PROFILE=<dir> writes a V8 CPU profile of the server (node --cpu-prof) for the profiler.
  const profile = [...nodeArgs, ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [])]
  // HTTP_PORT=0: the bench measures the call path, and must not collide with a server on 9093.
  const child = spawn(process.execPath, [...profile, bin, 'serve'], { env: { PATH: process.env.PATH ?? '', HTTP_PORT: '0', ...env }, stdio: ['ignore', 'inherit', 'pipe'] })
  let errors = 0
  let rest = ''
  const listening = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited with ${code} before listening`)))
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (text: string) => {
      const lines = (rest + text).split('\n')
      rest = lines.pop() ?? ''
      for (const line of lines) {
        if (line.includes('"AudioSocket server listening"')) resolve()
        if (/"level":(50|60)/.test(line)) errors++
      }
    })
  })
  await listening
  child.removeAllListeners('exit')
  return {
    child,
    errors: () => errors,
    stop: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** The stand-in's and the receiver's role environment: their certificate when they serve TLS. */
function tlsRoleEnv(on: boolean, certificates: BenchCertificates | undefined): Record<string, string> {
  return on && certificates ? { BENCH_TLS_CERT: certificates.certFile, BENCH_TLS_KEY: certificates.keyFile } : {}
}

/**
 * After the load generator is done: lets the last words reach the receiver (each of the server's
 * calls ends with a call.ended, so up to 30 s for `callsEnded` of them; the relay, which sends none,
 * gets 2 s), then takes the receiver's and the stand-in's reports.
 */
export async function finalReports(rig: Rig, target: Variant['target'], callsEnded: number): Promise<{ receiver: ReceiverReport; standIn: StandInReport }> {
  const deadline = Date.now() + 30_000
  let receiver = await rig.receiver.request<ReceiverReport>('report')
  while (Date.now() < deadline && target === 'server' && receiver.callsEnded < callsEnded) {
    await sleep(500)
    receiver = await rig.receiver.request<ReceiverReport>('report')
  }
  if (target === 'relay') {
    await sleep(2000)
    receiver = await rig.receiver.request<ReceiverReport>('report')
  }
  return { receiver, standIn: await rig.standIn.request<StandInReport>('report') }
}

export async function startRig(variant: Variant, options: RigOptions, certificates: BenchCertificates | undefined): Promise<Rig> {
  const standIn = await startRole<{ url: string }>('stand-in', { BENCH_SAMPLED_CALLS: String(options.sampledCalls), ...tlsRoleEnv(options.tls.soniox, certificates) })
  const receiver = await startRole<{ url: string }>('receiver', tlsRoleEnv(options.tls.webhook, certificates))
  const port = await freePort()
  const httpPort = options.ari ? await freePort() : 0
  const spoolDir = mkdtempSync(join(os.tmpdir(), 'bench-spool-'))
  const env: Record<string, string> = {
    AUDIOSOCKET_PORT: String(port),
    SONIOX_API_KEY: 'bench-key',
    SONIOX_WEBSOCKET_URL: standIn.ready.url,
    WEBHOOK_URL: receiver.ready.url,
    WEBHOOK_SECRET: 'whsec_YmVuY2htYXJrLXNlY3JldA==',
    LOG_LEVEL: 'info',
    SPOOL_DIR: spoolDir,
    HTTP_PORT: '0',
    NODE_ENV: 'production',
    // The targets verify the stand-in's and the receiver's certificates against the bench's CA, as
    // they would a public one: nothing in the server is told it is being benchmarked.
    ...(certificates ? { NODE_EXTRA_CA_CERTS: certificates.caFile } : {}),
    ...(variant.target === 'server' && variant.batchMs !== undefined ? { SONIOX_AUDIO_BATCH_MS: String(variant.batchMs) } : {}),
    ...(options.loopDelayFile ? { BENCH_LOOP_DELAY_FILE: options.loopDelayFile } : {}),
    ...(options.ari
      ? { HTTP_PORT: String(httpPort), HTTP_TOKEN: options.ari.httpToken, ARI_URL: options.ari.url, ARI_USERNAME: options.ari.username, ARI_PASSWORD: options.ari.password }
      : {}),
  }
  const httpUrl = options.ari ? `http://127.0.0.1:${httpPort}` : undefined
  const nodeArgs = targetNodeArgs(options)
  const stopRoles = async (): Promise<void> => {
    await receiver.stop()
    await standIn.stop()
    rmSync(spoolDir, { recursive: true, force: true })
  }
  try {
    if (variant.target === 'server') {
      const server = await startServer(variant.build?.bin ?? SERVER_BIN, env, nodeArgs)
      return { port, httpUrl, pid: server.child.pid as number, standIn, receiver, errors: server.errors, stop: async () => { await server.stop(); await stopRoles() } }
    }
    const relay: RoleHandle<{ port: number }> = await startRole('relay', env, nodeArgs)
    return { port, pid: relay.child.pid as number, standIn, receiver, errors: () => 0, stop: async () => { await relay.stop(); await stopRoles() } }
  } catch (err) {
    await stopRoles()
    throw err
  }
}
