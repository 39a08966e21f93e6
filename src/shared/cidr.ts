/**
 * CIDR blocks of IPv4 and IPv6 (ALLOWED_SOURCES): parsed, checked and put in canonical form, so the
 * configuration shows what a rule really covers and `server/admission.ts` can hand the blocks to
 * `net.BlockList`.
 *
 * An IPv4-mapped IPv6 block (`::ffff:192.0.2.0/120`, the form a dual-stack `::` listener reports
 * IPv4 peers in) is the IPv4 block it carries (`192.0.2.0/24`).
 */
import net from 'node:net'
import { AppError } from './errors.js'

export interface CidrBlock {
  readonly family: 'ipv4' | 'ipv6'
  /** The network address, host bits cleared, in canonical text (e.g. `10.0.0.0`, `fd00::`). */
  readonly address: string
  readonly prefix: number
  /** `address/prefix`, e.g. `10.0.0.0/8`, `fd00::/8`: what the configuration and the logs show. */
  readonly text: string
}

/**
 * Parses `a.b.c.d[/n]` or `v6[/n]` (a bare address is a single host). Throws
 * AppError(ERR_CONFIG_INVALID) saying why: a block only ever comes from the configuration.
 */
export function parseCidr(input: string): CidrBlock {
  const problem = cidrProblem(input)
  if (typeof problem === 'string') throw new AppError('ERR_CONFIG_INVALID', problem)
  return problem
}

/** Parses a comma- or whitespace-separated list; throws AppError(ERR_CONFIG_INVALID) naming every bad entry. */
export function parseCidrList(input: string): CidrBlock[] {
  const blocks: CidrBlock[] = []
  const problems: string[] = []
  for (const item of input.split(/[\s,]+/).filter((s) => s !== '')) {
    const parsed = cidrProblem(item)
    if (typeof parsed === 'string') problems.push(parsed)
    else blocks.push(parsed)
  }
  if (problems.length > 0) throw new AppError('ERR_CONFIG_INVALID', problems.join('; '))
  return blocks
}

/** The block, or the reason `input` is not one. */
function cidrProblem(input: string): CidrBlock | string {
  const text = input.trim()
  const slash = text.indexOf('/')
  let bytes = parseAddress(slash === -1 ? text : text.slice(0, slash))
  if (bytes === undefined) return `"${text}" is not an IPv4 or IPv6 address or CIDR block`
  let prefix = bytes.length * 8
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1)
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bytes.length * 8) {
      return `"${text}" has an invalid prefix length (0-${bytes.length * 8})`
    }
    prefix = Number(prefixText)
  }
  if (bytes.length === 16 && isV4Mapped(bytes)) {
    if (prefix < 96) return `"${text}": an IPv4-mapped block needs a prefix of at least 96`
    bytes = bytes.subarray(12)
    prefix -= 96
  }
  const family = bytes.length === 4 ? 'ipv4' : 'ipv6'
  const address = formatAddress(applyMask(bytes, prefix), family)
  return { family, address, prefix, text: `${address}/${prefix}` }
}

function parseAddress(text: string): Uint8Array | undefined {
  // A zone id (fe80::1%eth0) names the interface, not the address.
  const address = text.includes('%') ? text.slice(0, text.indexOf('%')) : text
  switch (net.isIP(address)) {
    case 4:
      return Uint8Array.from(address.split('.').map(Number))
    case 6:
      return parseIPv6(address)
    default:
      return undefined
  }
}

/** `net.isIP` has validated the text; this only expands `::` and a dotted IPv4 tail. */
function parseIPv6(text: string): Uint8Array {
  let groups: number[] = []
  let tail = text
  const lastColon = tail.lastIndexOf(':')
  const dotted = tail.slice(lastColon + 1).includes('.') ? tail.slice(lastColon + 1) : undefined
  if (dotted !== undefined) tail = `${tail.slice(0, lastColon + 1)}0:0`
  const [head = '', rest] = tail.split('::') as [string, string | undefined]
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)))
  if (rest === undefined) {
    groups = parse(head)
  } else {
    const left = parse(head)
    const right = parse(rest)
    groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right]
  }
  const bytes = new Uint8Array(16)
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8
    bytes[i * 2 + 1] = g & 0xff
  })
  if (dotted !== undefined) bytes.set(dotted.split('.').map(Number), 12)
  return bytes
}

function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false
  return bytes[10] === 0xff && bytes[11] === 0xff
}

function applyMask(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = Uint8Array.from(bytes)
  for (let i = 0; i < out.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8))
    out[i] = (out[i] as number) & ((0xff << (8 - bits)) & 0xff)
  }
  return out
}

/** Canonical text; for IPv6 node's own (RFC 5952: the longest run of zero groups becomes `::`). */
function formatAddress(bytes: Uint8Array, family: 'ipv4' | 'ipv6'): string {
  if (family === 'ipv4') return [...bytes].join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16))
  return new net.SocketAddress({ address: groups.join(':'), family }).address
}
