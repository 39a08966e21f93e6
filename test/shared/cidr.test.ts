/**
 * src/shared/cidr.ts: CIDR blocks of IPv4 and IPv6 in canonical form (an IPv4-mapped block is its
 * IPv4 block), and every bad entry of a list named at once.
 */
import t from 'tap'
import { parseCidr, parseCidrList } from '../../src/shared/cidr.js'

t.test('canonical text clears host bits', async (t) => {
  t.equal(parseCidr('10.1.2.3/8').text, '10.0.0.0/8')
  t.equal(parseCidr('2001:db8::1/32').text, '2001:db8::/32')
  t.equal(parseCidr('::ffff:10.9.8.7/104').text, '10.0.0.0/8')
  t.equal(parseCidr('::1').text, '::1/128')
  t.equal(parseCidr('0.0.0.0/0').text, '0.0.0.0/0')
})

t.test('bad entries are named, all at once', async (t) => {
  t.throws(() => parseCidrList('10.0.0.0/33, host.example, 10.0.0.1/x, ::ffff:1.2.3.4/90, 1.2.3'), {
    message: /"10\.0\.0\.0\/33" has an invalid prefix length \(0-32\); "host\.example" is not an IPv4 or IPv6 address.*"10\.0\.0\.1\/x" has an invalid prefix.*"::ffff:1\.2\.3\.4\/90": an IPv4-mapped block needs a prefix of at least 96; "1\.2\.3" is not/,
  })
  t.same(parseCidrList(' '), [], 'empty means no blocks')
})

t.test("IPv6 text is node's canonical form (RFC 5952)", async (t) => {
  t.equal(parseCidr('2001:0:0:1:0:0:0:1').text, '2001:0:0:1::1/128', 'the longest run of zero groups is the one compressed')
  t.same(parseCidr('fd00::/8'), { family: 'ipv6', address: 'fd00::', prefix: 8, text: 'fd00::/8' })
})

t.test('a bad block is a configuration error', async (t) => {
  t.throws(() => parseCidr('10.0.0.0/33'), { code: 'ERR_CONFIG_INVALID', message: /invalid prefix length/ })
})
