/**
 * A TCP port free right now on 127.0.0.1, for settings where 0 does not mean "any port" (HTTP_PORT=0
 * turns the endpoint off) or for a process that must be told its port up front (HAProxy). The port
 * is released before it is returned; another process taking it in between is possible but unlikely.
 */
import net from 'node:net'

export async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
