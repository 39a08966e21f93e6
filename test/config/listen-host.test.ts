/**
 * AUDIOSOCKET_HOST and HTTP_HOST (the listen-host format, src/config/formats.ts): an IPv4 or IPv6
 * address or a host name. A mistyped address such as 999.1.1.1 is a named problem when the
 * settings load (exit 78 from serve), not a failure at start.
 */
import t from 'tap'
import { loadConfig } from '../../src/config/index.js'
import { listenHost } from '../../src/config/formats.js'
import { AppError } from '../../src/shared/errors.js'

const KEY = 'sk-test-0123456789abcdef'

function problems(env: Record<string, string>): string {
  try {
    loadConfig({ env: { SONIOX_API_KEY: KEY, ...env } })
  } catch (err) {
    if (err instanceof AppError && err.code === 'ERR_CONFIG_INVALID') return err.message
    throw err
  }
  return ''
}

t.test('addresses and names that are accepted, as written (spaces trimmed)', async (t) => {
  for (const host of ['127.0.0.1', '0.0.0.0', '10.1.2.3', '::', '::1', 'fd00::5', '::ffff:127.0.0.1', 'fe80::1%eth0', 'localhost', 'pbx-1.example.com', 'pbx.example.com.', '1pbx.lan', 'xn--bcher-kva.example']) {
    t.equal(listenHost.check(host), host, host)
  }
  t.equal(loadConfig({ env: { SONIOX_API_KEY: KEY, AUDIOSOCKET_HOST: ' 0.0.0.0 ', HTTP_HOST: '::1' } }).audiosocket.host, '0.0.0.0')
  t.equal(loadConfig({ env: { SONIOX_API_KEY: KEY, HTTP_HOST: '::1' } }).http.host, '::1')
})

t.test('999.1.1.1 and other non-addresses: refused, naming the setting, the value and the forms', async (t) => {
  const message = problems({ AUDIOSOCKET_HOST: '999.1.1.1', HTTP_HOST: '10.0.0' })
  t.match(message, /AUDIOSOCKET_HOST \(audiosocket\.host\): must be an IPv4 address \(e\.g\. 127\.0\.0\.1, or 0\.0\.0\.0 for every IPv4 interface\), an IPv6 address \(e\.g\. ::1, or :: for every interface\) or a host name; this is not an IPv4 address \(four numbers from 0 to 255, e\.g\. 192\.168\.1\.10\): value was "999\.1\.1\.1"/)
  t.match(message, /HTTP_HOST \(http\.host\): must be an IPv4 address .* value was "10\.0\.0"/)
  for (const host of ['256.0.0.1', '1.2.3.4.5', '127.0.0.1:9092', 'pbx.example.123', 'pbx_1', '-pbx', 'pbx..lan', 'two words', 'http://pbx']) {
    t.throws(() => listenHost.check(listenHost.coerce?.(host) ?? host), /must be an IPv4 address/, host)
  }
  t.throws(() => listenHost.check('[::1]'), /without brackets/, 'an IPv6 address in brackets says to drop them')
  t.match(problems({ AUDIOSOCKET_HOST: '' }), /AUDIOSOCKET_HOST \(audiosocket\.host\): must be an IPv4 address/, 'empty is not "every interface"')
})
