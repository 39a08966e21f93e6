/**
 * Source address allowlist (ALLOWED_SOURCES), matched against the peer of each new connection
 * before a byte of it is read. The blocks come parsed and canonical from `shared/cidr.ts`; the
 * matching is node's `net.BlockList`.
 *
 * IPv4-mapped IPv6 peers (`::ffff:192.0.2.7`, what a dual-stack `::` listener reports for an IPv4
 * client) are IPv4 peers: they match IPv4 blocks and never IPv6 ones. `net.BlockList` alone would
 * let an IPv6 block such as `::/0` match IPv4 peers too, so each family has its own list.
 */
import net from 'node:net'
import type { CidrBlock } from '../shared/cidr.js'

/** Recognises an IPv4-mapped IPv6 address, in any of its spellings (`::ffff:c000:207` too). */
const IPV4_MAPPED = new net.BlockList()
IPV4_MAPPED.addSubnet('::ffff:0.0.0.0', 96, 'ipv6')

/** Answers "is this peer address in one of the blocks?"; an empty list matches nothing. */
export class AddressMatcher {
  private readonly ipv4 = new net.BlockList()
  private readonly ipv6 = new net.BlockList()

  constructor(blocks: readonly CidrBlock[]) {
    for (const block of blocks) {
      ;(block.family === 'ipv4' ? this.ipv4 : this.ipv6).addSubnet(block.address, block.prefix, block.family)
    }
  }

  /** `address` as Node reports it (`socket.remoteAddress`); undefined or unparsable never matches. */
  matches(address: string | undefined): boolean {
    if (address === undefined) return false
    switch (net.isIP(address)) {
      case 4:
        return this.ipv4.check(address, 'ipv4')
      case 6:
        // The IPv4 list matches a mapped peer by the IPv4 address it carries.
        return IPV4_MAPPED.check(address, 'ipv6') ? this.ipv4.check(address, 'ipv6') : this.ipv6.check(address, 'ipv6')
      default:
        return false
    }
  }
}
