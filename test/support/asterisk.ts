/**
 * A private, real Asterisk per test: its own configuration, spool, run, log and data directories in
 * a temporary directory (removed at teardown), modules loaded explicitly (`autoload = no`), and no
 * listening port of its own (no HTTP, no SIP, no manager). The binary and modules come from
 * ASTERISK_PREFIX (default /opt/asterisk), built by `bash ../shared/asterisk/build.sh /opt/asterisk`.
 *
 *   const missing = asteriskMissing()
 *   if (missing) { t.skip(missing); return }   // or t.plan(0, missing)
 *   const ast = await startAsterisk(t, { extensions: '[test]\nexten => ...' })
 *   await ast.originate({ Channel: 'Local/x@test', Application: 'Playback', Data: ast.writeSound('tone', pcm) })
 *   console.log(await ast.rx('core show channels'))
 *
 * Asterisk runs in the foreground (`asterisk -C <dir>/asterisk.conf -f -n`) as a child of the test
 * process; `rx()` is `asterisk -C <dir>/asterisk.conf -rx <cmd>` over the instance's control socket.
 * Start-up waits for `core waitfullybooted`. Set ASTERISK_KEEP_DIR=1 to keep the directory (its
 * path is printed) for a look at log/full after a failure.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const ASTERISK_PREFIX = process.env.ASTERISK_PREFIX || '/opt/asterisk'

/** The binary of a prefix. */
export function asteriskBinary(prefix = ASTERISK_PREFIX): string {
  return join(prefix, 'sbin', 'asterisk')
}

/** Why no Asterisk can run here (a message for t.skip), or undefined when one can. */
export function asteriskMissing(prefix = ASTERISK_PREFIX): string | undefined {
  if (existsSync(asteriskBinary(prefix)) && existsSync(join(prefix, 'lib', 'asterisk', 'modules'))) return undefined
  return `no Asterisk at ${prefix}: build it with bash ../shared/asterisk/build.sh, or set ASTERISK_PREFIX`
}

/** Modules an AudioSocket test needs: dialplan, call files, AudioSocket (app and channel), playback, G.711. */
export const DEFAULT_MODULES = [
  'res_timing_timerfd',
  'pbx_config',
  'pbx_spool',
  'res_audiosocket',
  'app_audiosocket',
  'chan_audiosocket',
  'app_dial',
  'app_playback',
  'app_verbose',
  'func_channel',
  'format_sln',
  'format_pcm',
  'format_wav',
  'codec_ulaw',
  'codec_alaw',
  'codec_a_mu',
  'codec_resample',
  'bridge_simple',
  'bridge_softmix',
  'bridge_builtin_features',
]

/**
 * The files Asterisk 22 reads at start even with `autoload = no` (an ERROR for each one missing),
 * as quiet stubs. See ../shared/asterisk/README.md.
 */
const STUB_CONFIGS: Record<string, string> = {
  'cdr.conf': '[general]\nenable = no\n',
  'cel.conf': '[general]\nenable = no\n',
  'features.conf': '[general]\n',
  'acl.conf': '',
  'ccss.conf': '[general]\n',
  'udptl.conf': '[general]\n',
  'indications.conf': '[general]\ncountry = us\n\n[us]\ndescription = United States / North America\nringcadence = 2000,4000\ndial = 350+440\nbusy = 480+620/500,0/500\nring = 440+480/2000,0/4000\ncongestion = 480+620/250,0/250\n',
  'logger.conf': '[general]\n\n[logfiles]\nfull => notice,warning,error,verbose(4),dtmf\n',
  'manager.conf': '[general]\nenabled = no\n',
  'http.conf': '[general]\nenabled = no\n',
  'websocket_client.conf': '',
}

export interface AsteriskOptions {
  /** extensions.conf (pbx_config), whole. */
  extensions: string
  /** Modules to load besides DEFAULT_MODULES (names without .so). */
  modules?: string[]
  /** Load exactly these modules instead of DEFAULT_MODULES (+ `modules`). */
  onlyModules?: string[]
  /** More configuration files (name -> text), or replacements for the stubs (http.conf, logger.conf...). */
  configs?: Record<string, string>
  prefix?: string
  /** How long start-up may take; default 30 s (a loaded 2-core machine). */
  bootTimeoutMs?: number
}

/** A call file, field by field (a repeated field, e.g. Setvar, as an array). */
export type CallFile = Record<string, string | number | Array<string | number>>

export interface Asterisk {
  /** The instance's directory (asterisk.conf, etc/, spool/, run/, log/, lib/). */
  readonly dir: string
  readonly configFile: string
  readonly etcDir: string
  readonly spoolDir: string
  readonly logDir: string
  /** astdatadir: sounds/ lives here. */
  readonly dataDir: string
  readonly soundsDir: string
  /** stdout and stderr of the foreground process, as received. */
  readonly output: () => string
  /** Runs a CLI command over the control socket; resolves with its output, rejects if it cannot connect. */
  rx(command: string): Promise<string>
  /**
   * Originates a call file: written beside the spool, then renamed into outgoing/ (pbx_spool reads a
   * file the moment it appears there, so it must appear whole). `Archive: yes` is added unless given,
   * so the file lands in outgoing_done/ with a Status line. Returns the file's name.
   */
  originate(fields: CallFile, name?: string): string
  /** Status (Completed, Expired, Failed) of an archived call file, or undefined while it is not done. */
  callFileStatus(name: string): string | undefined
  /**
   * Writes a sound file into sounds/ and returns what Playback() takes for it: the absolute path
   * without the extension. `ext` picks the format: sln (8 kHz s16le), sln16, ul, al, wav...
   */
  writeSound(name: string, data: Buffer, ext?: string): string
  /** The `full` log (notice, warning, error, verbose up to 4) so far. */
  log(): string
  /** The log's tail, `core show channels` and the process state, for a failure message. */
  diagnostics(): Promise<string>
  /** core stop now; SIGKILL if it has not exited within 5 s. Idempotent; also registered on t.teardown. */
  stop(): Promise<void>
}

interface Teardownable {
  teardown(fn: () => unknown): void
}

/** A short base directory: the control socket's path must fit in sun_path (108 bytes). */
function baseTmp(): string {
  const dir = tmpdir()
  return dir.length <= 40 ? dir : '/tmp'
}

function runAsterisk(binary: string, args: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(binary, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      // A non-zero exit: err.code is the exit status; a timeout or spawn failure: not a number.
      const status = (err as { code?: unknown } | null)?.code
      const code = err === null ? 0 : typeof status === 'number' ? status : -1
      resolve({ code, out: `${stdout}${stderr}` })
    })
  })
}

function callFileText(fields: CallFile): string {
  const lines: string[] = []
  for (const [key, value] of Object.entries(fields)) {
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${key}: ${v}`)
  }
  return lines.join('\n') + '\n'
}

/** Children still running when the test process exits are killed, never left behind. */
const live = new Set<ChildProcess>()
let exitHookInstalled = false
function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL')
  })
}

export async function startAsterisk(t: Teardownable | undefined, options: AsteriskOptions): Promise<Asterisk> {
  const prefix = options.prefix ?? ASTERISK_PREFIX
  const missing = asteriskMissing(prefix)
  if (missing !== undefined) throw new Error(missing)
  const binary = asteriskBinary(prefix)

  const dir = mkdtempSync(join(baseTmp(), 'ast-'))
  const path = (...parts: string[]): string => join(dir, ...parts)
  const etcDir = path('etc')
  const spoolDir = path('spool')
  const logDir = path('log')
  const dataDir = path('lib')
  const soundsDir = path('lib', 'sounds')
  const runDir = path('run')
  for (const d of [etcDir, path('spool', 'outgoing'), path('spool', 'outgoing_done'), path('staging'), logDir, soundsDir, runDir, path('cache')]) {
    mkdirSync(d, { recursive: true })
  }

  const configFile = path('asterisk.conf')
  writeFileSync(
    configFile,
    [
      '[directories]',
      `astetcdir => ${etcDir}`,
      `astmoddir => ${join(prefix, 'lib', 'asterisk', 'modules')}`,
      `astvarlibdir => ${dataDir}`,
      `astdbdir => ${dataDir}`,
      `astkeydir => ${dataDir}`,
      `astdatadir => ${dataDir}`,
      `astagidir => ${path('lib', 'agi-bin')}`,
      `astspooldir => ${spoolDir}`,
      `astrundir => ${runDir}`,
      `astlogdir => ${logDir}`,
      `astcachedir => ${path('cache')}`,
      `astsbindir => ${join(prefix, 'sbin')}`,
      '',
      '[options]',
      'verbose = 4',
      'debug = 0',
      'documentation_language = en_US',
      'hideconnect = yes',
      '',
    ].join('\n'),
  )
  const modules = options.onlyModules ?? [...DEFAULT_MODULES, ...(options.modules ?? [])]
  const configs: Record<string, string> = {
    ...STUB_CONFIGS,
    'modules.conf': ['[modules]', 'autoload = no', ...modules.map((m) => `load => ${m.endsWith('.so') ? m : `${m}.so`}`), ''].join('\n'),
    'extensions.conf': options.extensions,
    ...options.configs,
  }
  for (const [name, text] of Object.entries(configs)) writeFileSync(join(etcDir, name), text)

  installExitHook()
  const child = spawn(binary, ['-C', configFile, '-f', '-n'], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir })
  live.add(child)
  let output = ''
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (output += s))
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (output += s))
  let exitState: string | undefined
  const exited = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      exitState = `exited with ${code ?? signal}`
      live.delete(child)
      resolve()
    })
    child.on('error', (err) => {
      exitState = `failed to start: ${err.message}`
      live.delete(child)
      resolve()
    })
  })

  const logFile = join(logDir, 'full')
  const log = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '')
  const rx = async (command: string): Promise<string> => {
    const { code, out } = await runAsterisk(binary, ['-C', configFile, '-rx', command], 15000)
    if (code !== 0) throw new Error(`asterisk -rx ${JSON.stringify(command)} failed (${code}): ${out.trim()}`)
    return out
  }

  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitState === undefined) {
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
        await rx('core stop now').catch(() => undefined)
        await exited
        clearTimeout(timer)
      }
      if (process.env.ASTERISK_KEEP_DIR) console.error(`# Asterisk directory kept: ${dir}`)
      else rmSync(dir, { recursive: true, force: true })
    })()
    return stopping
  }
  t?.teardown(stop)

  const tail = (text: string, lines: number): string => text.split('\n').slice(-lines).join('\n')
  const diagnostics = async (): Promise<string> => {
    const channels = exitState === undefined ? await rx('core show channels verbose').catch((e: Error) => e.message) : '(not running)'
    const done = existsSync(path('spool', 'outgoing_done')) ? readdirSync(path('spool', 'outgoing_done')) : []
    const statuses = done.map((f) => `${f}: ${readFileSync(path('spool', 'outgoing_done', f), 'utf8').match(/^Status: (.*)$/m)?.[1] ?? '?'}`)
    return [
      `Asterisk in ${dir}: ${exitState ?? 'running'}`,
      `call files done: ${statuses.join(', ') || 'none'}`,
      `channels:\n${channels.trim()}`,
      `log (tail, module loading left out):\n${tail(log().replace(/^.*loader\.c: Loading .*\n/gm, ''), 40)}`,
      output.trim() === '' ? '' : `output (tail):\n${tail(output, 20)}`,
    ].join('\n')
  }

  // Fully booted: the control socket answers and `core waitfullybooted` returns.
  const deadline = Date.now() + (options.bootTimeoutMs ?? 30000)
  for (;;) {
    if (exitState !== undefined) {
      const text = await diagnostics()
      rmSync(dir, { recursive: true, force: true })
      throw new Error(`Asterisk ${exitState} during start-up\n${text}`)
    }
    if (existsSync(join(runDir, 'asterisk.ctl'))) {
      const { code } = await runAsterisk(binary, ['-C', configFile, '-rx', 'core waitfullybooted'], 15000)
      if (code === 0) break
    }
    if (Date.now() > deadline) {
      const text = await diagnostics()
      await stop()
      throw new Error(`Asterisk did not boot within ${options.bootTimeoutMs ?? 30000} ms\n${text}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }

  let callFiles = 0
  return {
    dir,
    configFile,
    etcDir,
    spoolDir,
    logDir,
    dataDir,
    soundsDir,
    output: () => output,
    rx,
    originate(fields: CallFile, name = `call-${++callFiles}-${process.pid}.call`): string {
      const staged = path('staging', name)
      writeFileSync(staged, callFileText({ Archive: 'yes', ...fields }))
      renameSync(staged, path('spool', 'outgoing', name))
      return name
    },
    callFileStatus(name: string): string | undefined {
      const done = path('spool', 'outgoing_done', name)
      if (!existsSync(done)) return undefined
      return readFileSync(done, 'utf8').match(/^Status: (.*)$/m)?.[1]
    },
    writeSound(name: string, data: Buffer, ext = 'sln'): string {
      writeFileSync(join(soundsDir, `${name}.${ext}`), data)
      return join(soundsDir, name)
    },
    log,
    diagnostics,
    stop,
  }
}
