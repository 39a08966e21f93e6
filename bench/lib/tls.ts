/**
 * A throwaway certificate authority for the benchmark's TLS path (`--tls`, `--webhook-tls`): a CA
 * and one leaf for 127.0.0.1 and localhost, made with the `openssl` command line in a temp dir at
 * the start of a run (node:crypto makes keys but cannot sign an X.509 certificate). The stand-in
 * and the receiver serve the leaf; the targets (server and relay) trust the CA through
 * NODE_EXTRA_CA_CERTS, so they verify the chain exactly as they would Soniox's public one.
 *
 * The leaf is ECDSA P-256, the CA's key too: one handshake per call either way, so the choice
 * weighs on call setup, not on the per-frame cost the benchmark measures (that is the record
 * cipher, which Node and the peer negotiate as with any server: TLS 1.3, AES-GCM on x86).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'

export interface BenchCertificates {
  /** The temp dir holding every file below. */
  dir: string
  /** PEM of the CA certificate: what NODE_EXTRA_CA_CERTS points at. */
  caFile: string
  /** PEM of the leaf certificate (127.0.0.1, localhost), signed by the CA. */
  certFile: string
  /** PEM of the leaf's private key. */
  keyFile: string
  /** Removes the temp dir. */
  remove(): void
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer }
    if (e.code === 'ENOENT') {
      throw new Error('--tls and --webhook-tls need the openssl command line to make a throwaway CA, and it is not on PATH (Debian/Ubuntu: apt-get install openssl)')
    }
    throw new Error(`openssl ${args[0]} failed while making the benchmark's CA: ${e.stderr?.toString().trim() || e.message}`)
  }
}

/** Makes a CA and a leaf for 127.0.0.1/localhost, valid for two days, in a new temp dir. */
export function makeBenchCertificates(): BenchCertificates {
  const dir = mkdtempSync(join(os.tmpdir(), 'bench-tls-'))
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=audiosocket-soniox bench CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir)
    openssl(['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost'], dir)
    writeFileSync(join(dir, 'leaf.ext'), [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '',
    ].join('\n'))
    openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'leaf.ext', '-out', 'leaf.pem'], dir)
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    certFile: join(dir, 'leaf.pem'),
    keyFile: join(dir, 'leaf.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/** What a role saw of the connections made to it: how many, how many over TLS, and with what. */
export interface LinkReport {
  connections: number
  tlsConnections: number
  /** e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384" from the first TLS connection; undefined over plain TCP. */
  cipher?: string | undefined
}
