/**
 * TLS for the Soniox WebSockets, shared by every call's session: one SecureContext and the latest
 * session ticket per host, offered on the next connect so that the handshake resumes.
 *
 * Without it every call's connect built a SecureContext of its own (what tls.connect does when given
 * none: about 0.2 ms) and ran a full handshake, certificate chain verification included, on the main
 * thread. Calls arrive in bursts (a queue opening, a failover) and so do reconnects after a Soniox
 * outage: hundreds of connects in one second, each delaying every live call's audio.
 *
 * A resumed handshake proves the server holds the secret of a session whose chain was verified; an
 * expired or refused ticket just means a full handshake. The context is the one tls.connect would
 * build: the default roots plus NODE_EXTRA_CA_CERTS.
 */
import { isIP } from 'node:net'
import tls from 'node:tls'

/** Hosts whose latest ticket is kept; Soniox is one host (two with the India region), a proxy one more. */
const MAX_TICKETS = 8

export class TlsReuse {
  private context: tls.SecureContext | undefined
  /** host:port:servername -> the latest ticket, oldest host first. */
  private readonly tickets = new Map<string, Buffer>()
  constructor(private readonly contextOptions: tls.SecureContextOptions = {}) {}

  /**
   * ws's `createConnection` for wss:// URLs: ws's own TLS connect (the server name from the host
   * unless it is an IP address) with the shared context and the host's latest ticket.
   */
  readonly connect = (options: tls.ConnectionOptions): tls.TLSSocket => {
    const host = options.host ?? 'localhost'
    const servername = options.servername || options.servername === '' ? options.servername : isIP(host) ? '' : host
    const key = `${host}:${options.port}:${servername}`
    this.context ??= tls.createSecureContext(this.contextOptions)
    const ticket = this.tickets.get(key)
    const socket = tls.connect({ ...options, path: undefined, servername, secureContext: this.context, ...(ticket ? { session: ticket } : {}) })
    // TLS 1.3 sends tickets after the handshake, possibly several: the latest is kept.
    socket.on('session', (session: Buffer) => this.keep(key, session))
    return socket
  }

  private keep(key: string, session: Buffer): void {
    this.tickets.delete(key)
    this.tickets.set(key, session)
    if (this.tickets.size > MAX_TICKETS) this.tickets.delete(this.tickets.keys().next().value as string)
  }
}

/** The process's Soniox connections: one context, one ticket cache. */
export const sonioxTls = new TlsReuse()
