/**
 * `audiosocket-soniox serve`: load the configuration, start the server, run until SIGTERM/SIGINT,
 * then drain: report not ready and refuse new connections while live calls go on for up to
 * DRAIN_TIMEOUT_MS; end the remaining ones properly (last words from Soniox, call.ended with
 * reason shutdown, hangup to Asterisk); deliver pending events within FLUSH_TIMEOUT_MS (the spool
 * keeps the rest); exit 0. A second signal exits at once.
 */
import { constants } from 'node:os'
import { createApp } from '../app.js'
import { loadConfig, retiredSettings, type Config } from '../config/index.js'
import { createLogger } from '../shared/logger.js'
import { isAppError } from '../shared/errors.js'
import { VERSION } from '../version.js'
import { parseCommandLine, type CommandSpec } from './args.js'
import { ENV_FILE_FLAG, envWithFile } from './env-file.js'
import { describeListenFailure } from './listen-failure.js'
import { EXIT_CONFIG, type CliIo } from './cli-support.js'

export const SERVE_SPEC = {
  name: 'serve',
  synopsis: ['[--config FILE] [--env-file FILE]'],
  about: `Runs the AudioSocket server until SIGTERM or SIGINT (then drains: live calls go on for up to
DRAIN_TIMEOUT_MS). Settings come from the environment and from FILE (JSON, keys as in README.md,
"Settings"); the environment wins. Events go to WEBHOOK_URL and/or EVENTS_FILE, else to stdout as
JSON lines; the log is JSON on stderr. "audiosocket-soniox settings" lists every setting.`,
  flags: {
    config: { type: 'string', short: 'c', value: 'FILE', help: 'JSON settings file (also CONFIG_FILE); the environment wins over it' },
    'env-file': ENV_FILE_FLAG,
  },
} as const satisfies CommandSpec

/** `serve [--config FILE]`. */
export async function serveCommand(args: string[], io: CliIo): Promise<number> {
  const parsed = parseCommandLine(SERVE_SPEC, args, io)
  if (parsed.exit !== undefined) return parsed.exit
  const withFile = envWithFile('serve', parsed.values['env-file'], io)
  if ('exit' in withFile) return withFile.exit
  return serve({ env: withFile.env, configFile: parsed.values.config, stderr: io.stderr })
}

export async function serve(options: { env: NodeJS.ProcessEnv; configFile?: string | undefined; stderr: CliIo['stderr'] }): Promise<number> {
  let config: Config
  try {
    config = loadConfig({ env: options.env, configFile: options.configFile })
  } catch (err) {
    if (isAppError(err) && err.code === 'ERR_CONFIG_INVALID') {
      options.stderr.write(`audiosocket-soniox: ${err.message}\nSee README.md, "Settings", for every setting and its form.\n`)
      return EXIT_CONFIG
    }
    throw err
  }

  const logger = createLogger({ level: config.logLevel })
  for (const retired of retiredSettings(options.env)) logger.warn({ setting: retired.env }, `${retired.env} is no longer used: ${retired.advice}`)
  const app = createApp(config, logger)
  // SIGHUP: logrotate moved EVENTS_FILE (postrotate). Node's default for SIGHUP is to exit, which
  // would drop every live call; here it only reopens the files. Installed before start() so that
  // there is no moment at which a SIGHUP kills the server.
  const onHangupSignal = (): void => {
    if (config.events.file === null) {
      logger.info({ signal: 'SIGHUP' }, 'SIGHUP ignored: no EVENTS_FILE to reopen')
      return
    }
    logger.info({ signal: 'SIGHUP', file: config.events.file }, 'reopening EVENTS_FILE')
    void app.sink.reopen?.()
  }
  process.on('SIGHUP', onHangupSignal)
  try {
    await app.start()
  } catch (err) {
    // The sink starts first (spool recovery, EVENTS_FILE): name the setting that is actually at fault.
    if (isAppError(err) && (err.code.startsWith('ERR_SPOOL_') || err.code === 'ERR_EVENTS_FILE')) {
      logger.fatal({ err }, 'cannot start event delivery (SPOOL_DIR / EVENTS_FILE)')
    } else {
      // A port in use, an address not on this host: one line that names the setting, no stack trace.
      const http = isAppError(err) && err.code === 'ERR_HTTP_LISTEN'
      const listener = http
        ? { what: 'HTTP', hostSetting: 'HTTP_HOST', portSetting: 'HTTP_PORT', host: config.http.host, port: config.http.port }
        : { what: 'AudioSocket', hostSetting: 'AUDIOSOCKET_HOST', portSetting: 'AUDIOSOCKET_PORT', host: config.audiosocket.host, port: config.audiosocket.port }
      const failure = describeListenFailure(err, listener)
      if (failure !== undefined) logger.fatal({ setting: failure.setting, address: failure.address, code: failure.code, exitCode: 1 }, failure.message)
      else logger.fatal({ err, host: listener.host, port: listener.port, exitCode: 1 }, `cannot start the ${listener.what} listener (${listener.hostSetting} / ${listener.portSetting})`)
    }
    await new Promise<void>((resolve) => logger.flush(() => resolve()))
    return 1
  }
  logger.info({ version: VERSION, node: process.version }, 'audiosocket-soniox started')

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  const { drainTimeoutMs, flushTimeoutMs } = config.shutdown
  logger.info({ signal, activeCalls: app.server.activeCalls, drainTimeoutMs }, 'draining: new connections refused, live calls go on')
  // A second signal exits at once, as a process killed by that signal reports it: 128 + its
  // number (SIGINT 130, SIGTERM 143). Nothing here can wait: the log line is written at once, or,
  // behind a full pipe, at exit for at most a second; a broken pipe drops it (shared/log-destination.ts).
  const exitNow = (second: NodeJS.Signals): void => {
    const exitCode = 128 + (constants.signals[second] ?? 15)
    logger.warn({ signal: second, activeCalls: app.server.activeCalls, exitCode }, 'second signal: exiting at once, without waiting for calls or events')
    process.exit(exitCode)
  }
  process.once('SIGTERM', () => exitNow('SIGTERM'))
  process.once('SIGINT', () => exitNow('SIGINT'))

  if (!(await app.drain(drainTimeoutMs))) {
    logger.info({ activeCalls: app.server.activeCalls }, 'drain timeout: ending the remaining calls')
  }
  await app.stop(flushTimeoutMs)
  process.off('SIGHUP', onHangupSignal)
  logger.info('stopped')
  await new Promise<void>((resolve) => logger.flush(() => resolve()))
  return 0
}
