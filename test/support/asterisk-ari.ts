/**
 * What a test's private Asterisk (test/support/asterisk.ts) needs to serve ARI: the modules and the
 * two configuration files, for `startAsterisk(t, { modules: ARI_MODULES, configs: ariConfigs(...) })`.
 *
 *   const port = await freePort()
 *   const ast = await startAsterisk(t, { extensions, modules: ARI_MODULES, configs: ariConfigs({ port, username, password }) })
 *   const rest = new AriRest({ url: `http://127.0.0.1:${port}`, username, password })
 *
 * The modules are those an admin needs for the ARI route (../shared/reference/audiosocket-protocol.md,
 * "Tapping a bridged call"), less what DEFAULT_MODULES loads already (chan_audiosocket,
 * res_audiosocket, bridge_simple, bridge_softmix). `websocket_client.conf`, which res_ari in 22 needs
 * to exist, is one of asterisk.ts's stubs.
 */

/** Modules to load besides DEFAULT_MODULES (names without .so). */
export const ARI_MODULES = [
  'res_http_websocket',
  'res_websocket_client',
  'res_sorcery_config',
  'res_stasis',
  'res_stasis_snoop',
  // res_ari_channels and res_ari_bridges refuse to load without these three (their .requires).
  'res_stasis_answer',
  'res_stasis_playback',
  'res_stasis_recording',
  'app_stasis',
  'res_ari',
  'res_ari_model',
  'res_ari_asterisk',
  'res_ari_applications',
  'res_ari_events',
  'res_ari_channels',
  'res_ari_bridges',
]

export interface AriConfigOptions {
  /** bindport of Asterisk's HTTP server (pick one with freePort()). */
  port: number
  username: string
  password: string
  /** bindaddr; default 127.0.0.1. */
  host?: string
}

/** http.conf (the HTTP server on host:port) and ari.conf (one read-write user with a plain password). */
export function ariConfigs(options: AriConfigOptions): Record<string, string> {
  if (/[\s;[\]=]/.test(options.username) || /[\r\n;]/.test(options.password)) {
    throw new Error('ariConfigs: the username and password must be writable in ari.conf as they are (no spaces, ;, [, ], = in the name; no ; or line break in the password)')
  }
  return {
    'http.conf': ['[general]', 'enabled = yes', `bindaddr = ${options.host ?? '127.0.0.1'}`, `bindport = ${options.port}`, ''].join('\n'),
    'ari.conf': ['[general]', 'enabled = yes', '', `[${options.username}]`, 'type = user', 'read_only = no', 'password_format = plain', `password = ${options.password}`, ''].join('\n'),
  }
}
