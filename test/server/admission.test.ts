/**
 * src/server/admission.ts: peers matched against CIDR blocks of IPv4 and IPv6, and IPv4-mapped IPv6
 * peers (what a dual-stack listener reports for an IPv4 client) matched as IPv4, both ways.
 */
import t from 'tap'
import { AddressMatcher } from '../../src/server/admission.js'
import { parseCidrList } from '../../src/shared/cidr.js'

const matcher = (list: string): AddressMatcher => new AddressMatcher(parseCidrList(list))

t.test('IPv4 blocks', async (t) => {
  const m = matcher('10.0.0.0/8, 192.168.1.7, 172.16.0.0/12')
  t.ok(m.matches('10.255.1.2'))
  t.ok(m.matches('192.168.1.7'), 'a bare address is a /32')
  t.notOk(m.matches('192.168.1.8'))
  t.ok(m.matches('172.31.255.255'), 'the last address of a /12')
  t.notOk(m.matches('172.32.0.0'), 'the first address past it')
  t.notOk(m.matches('11.0.0.1'))
})

t.test('IPv6 blocks, with :: compression, zone ids and dotted tails', async (t) => {
  const m = matcher('fd00::/8 2001:db8:abcd::/48 ::1')
  t.ok(m.matches('fd12:3456::1'))
  t.ok(m.matches('2001:db8:abcd:ffff::9'))
  t.notOk(m.matches('2001:db8:abce::1'))
  t.ok(m.matches('::1'), 'loopback')
  t.ok(m.matches('0:0:0:0:0:0:0:1'), 'the same address uncompressed')
  t.notOk(m.matches('::2'))
  t.ok(matcher('fe80::/10').matches('fe80::1%eth0'), 'a zone id does not hide the address')
  t.ok(matcher('64:ff9b::/96').matches('64:ff9b::192.0.2.33'), 'a dotted IPv4 tail inside a plain IPv6 address')
})

t.test('IPv4-mapped IPv6 peers match IPv4 blocks, and mapped blocks match IPv4 peers', async (t) => {
  t.ok(matcher('192.0.2.0/24').matches('::ffff:192.0.2.7'), 'dual-stack listener, IPv4 client')
  t.ok(matcher('192.0.2.0/24').matches('::ffff:c000:207'), 'the same in hex groups')
  t.notOk(matcher('192.0.2.0/24').matches('::ffff:192.0.3.7'))
  t.ok(matcher('::ffff:192.0.2.0/120').matches('192.0.2.200'), 'a mapped rule is its IPv4 rule')
  t.notOk(matcher('::/0').matches('10.0.0.1'), 'an IPv6 block never matches an IPv4 peer')
  t.ok(matcher('0.0.0.0/0').matches('::ffff:10.0.0.1'), 'the IPv4 "any" block covers mapped peers')
})

t.test('an undefined or garbage peer address never matches', async (t) => {
  const m = matcher('0.0.0.0/0, ::/0')
  t.notOk(m.matches(undefined))
  t.notOk(m.matches('not-an-address'))
  t.notOk(new AddressMatcher([]).matches('127.0.0.1'), 'no blocks, no match (the server treats "unset" as "any" before asking)')
})
