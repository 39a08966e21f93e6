/**
 * bench/lib/tls.ts: the throwaway CA of `--tls` / `--webhook-tls`. Its leaf verifies for 127.0.0.1
 * and localhost against the CA, both when the CA is given to tls.connect and when a child process
 * trusts it through NODE_EXTRA_CA_CERTS (as the bench's server and relay do); without the CA the
 * leaf is refused; without openssl the error says what to install.
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { basename } from 'node:path'
import tls from 'node:tls'
import t from 'tap'
import { makeBenchCertificates } from '../../bench/lib/tls.js'

function handshake(options: tls.ConnectionOptions): Promise<{ authorized: boolean; error?: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect(options, () => {
      resolve({ authorized: socket.authorized })
      socket.end()
    })
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ authorized: false, error: err.code ?? err.message }))
  })
}

t.test('a CA and a leaf for 127.0.0.1 and localhost, trusted with the CA only', async (t) => {
  const certificates = makeBenchCertificates()
  t.teardown(() => certificates.remove())
  for (const file of [certificates.caFile, certificates.certFile, certificates.keyFile]) t.ok(existsSync(file), `${basename(file)} is written`)
  const server = https.createServer({ cert: readFileSync(certificates.certFile), key: readFileSync(certificates.keyFile) }, (_req, res) => res.end('ok'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const { port } = server.address() as AddressInfo
  const ca = readFileSync(certificates.caFile)

  t.same(await handshake({ host: '127.0.0.1', port, ca }), { authorized: true }, 'verified for 127.0.0.1 (IP subjectAltName)')
  t.same(await handshake({ host: '127.0.0.1', port, ca, servername: 'localhost' }), { authorized: true }, 'verified for localhost')
  t.equal((await handshake({ host: '127.0.0.1', port })).error, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'refused without the CA: nothing verifies it by accident')
  t.equal((await handshake({ host: '127.0.0.1', port, ca, servername: 'example.com' })).error, 'ERR_TLS_CERT_ALTNAME_INVALID', 'for its names only')

  // What the targets rely on: a child process trusting the CA through its environment alone.
  const script = `require('node:https').get('https://127.0.0.1:${port}/', (res) => { res.resume(); console.log(res.statusCode) }).on('error', (e) => { console.log(e.code); process.exitCode = 1 })`
  const stdout = await new Promise<string>((resolve) => {
    execFile(process.execPath, ['-e', script], { env: { PATH: process.env.PATH ?? '', NODE_EXTRA_CA_CERTS: certificates.caFile } }, (_err, out) => resolve(out.trim()))
  })
  t.equal(stdout, '200', 'a child process with NODE_EXTRA_CA_CERTS verifies the leaf')

  certificates.remove()
  t.notOk(existsSync(certificates.dir), 'remove() deletes the temp dir')
})

t.test('without openssl on PATH: a clear error', async (t) => {
  const path = process.env.PATH
  process.env.PATH = '/nonexistent'
  t.teardown(() => {
    process.env.PATH = path
  })
  t.throws(() => makeBenchCertificates(), /need the openssl command line .* apt-get install openssl/)
})
