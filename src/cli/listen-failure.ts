/**
 * A listener that cannot start (the AudioSocket port, the HTTP endpoint) is an operator's problem,
 * not a bug: `serve` reports it as one fatal line naming the setting, the address, what is wrong
 * and what to do, with no stack trace, and exits 1.
 */

export interface Listener {
  /** For the message: "AudioSocket" or "HTTP". */
  what: string
  hostSetting: string
  portSetting: string
  host: string
  port: number
}

export interface ListenFailure {
  /** The setting to change. */
  setting: string
  /** host:port as configured ([v6]:port). */
  address: string
  /** Node's code: EADDRINUSE, EACCES, EADDRNOTAVAIL, ENOTFOUND, ... */
  code: string
  message: string
}

/** The system error behind `err` (itself, or its cause), if it is one from listening. */
function listenError(err: unknown): NodeJS.ErrnoException | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code
    const syscall = (e as NodeJS.ErrnoException).syscall
    if (typeof code === 'string' && (syscall === 'listen' || syscall === 'bind' || syscall === 'getaddrinfo')) return e as NodeJS.ErrnoException
  }
  return undefined
}

/** What went wrong and what to change, or undefined when `err` is not a failure to listen (a bug). */
export function describeListenFailure(err: unknown, listener: Listener): ListenFailure | undefined {
  const cause = listenError(err)
  if (cause === undefined) return undefined
  const code = cause.code as string
  const { what, hostSetting, portSetting, host, port } = listener
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
  const where = `the ${what} listener on ${address} (${hostSetting}:${portSetting})`
  switch (code) {
    case 'EADDRINUSE':
      return { setting: portSetting, address, code, message: `cannot start ${where}: the address is in use by another process; stop it, or set ${portSetting} to a free port` }
    case 'EACCES':
      return { setting: portSetting, address, code, message: `cannot start ${where}: permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE); set ${portSetting} to 1024 or above` }
    case 'EADDRNOTAVAIL':
      return {
        setting: hostSetting,
        address,
        code,
        message: `cannot start ${where}: ${host} is not an address of this host; set ${hostSetting} to one of its addresses, 127.0.0.1, or 0.0.0.0 (every IPv4 address)`,
      }
    case 'EAFNOSUPPORT':
      return { setting: hostSetting, address, code, message: `cannot start ${where}: this host has no ${host.includes(':') ? 'IPv6' : 'IPv4'}; set ${hostSetting} to another address` }
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
    case 'EAI_FAIL':
      return {
        setting: hostSetting,
        address,
        code,
        message: `cannot start ${where}: the name ${host} does not resolve (${code}); set ${hostSetting} to an IP address (e.g. 127.0.0.1) or a name this host resolves`,
      }
    default:
      return { setting: `${hostSetting} / ${portSetting}`, address, code, message: `cannot start ${where}: ${cause.message}` }
  }
}
