/**
 * Source address allowlist (ALLOWED_SOURCES): CIDR blocks of IPv4 and IPv6, matched against the
 * peer of each new connection before a byte of it is read.
 *
 * IPv4-mapped IPv6 addresses (`::ffff:192.0.2.7`, what a dual-stack `::` listener reports for an
 * IPv4 peer) are treated as the IPv4 address they carry, in both the rules and the peers, so
 * `192.0.2.0/24` matches that peer and `::ffff:192.0.2.0/120` is the same rule as `192.0.2.0/24`.
 */
import net from 'node:net'

export interface CidrBlock {
  /** 4 bytes (IPv4) or 16 bytes (IPv6), host bits cleared. */
  readonly bytes: Uint8Array
  readonly prefix: number
  /** The canonical text form, e.g. `10.0.0.0/8`, `fd00::/8` (v6 as written, host bits cleared). */
  readonly text: string
}

/** Parses `a.b.c.d[/n]` or `v6[/n]` (a bare address is a single host). Throws Error with a reason. */
export function parseCidr(input: string): CidrBlock {
  const text = input.trim()
  const slash = text.indexOf('/')
  const addressText = slash === -1 ? text : text.slice(0, slash)
  let bytes = parseAddress(addressText)
  if (bytes === undefined) throw new Error(`"${text}" is not an IPv4 or IPv6 address or CIDR block`)
  let prefix = bytes.length * 8
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1)
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bytes.length * 8) {
      throw new Error(`"${text}" has an invalid prefix length (0-${bytes.length * 8})`)
    }
    prefix = Number(prefixText)
  }
  if (bytes.length === 16 && isV4Mapped(bytes)) {
    if (prefix < 96) throw new Error(`"${text}": an IPv4-mapped block needs a prefix of at least 96`)
    bytes = bytes.subarray(12)
    prefix -= 96
  }
  const masked = applyMask(bytes, prefix)
  return { bytes: masked, prefix, text: `${formatAddress(masked)}/${prefix}` }
}

/** Parses a comma- or whitespace-separated list; throws Error naming every bad entry. */
export function parseCidrList(input: string): CidrBlock[] {
  const blocks: CidrBlock[] = []
  const problems: string[] = []
  for (const item of input.split(/[\s,]+/).filter((s) => s !== '')) {
    try {
      blocks.push(parseCidr(item))
    } catch (err) {
      problems.push((err as Error).message)
    }
  }
  if (problems.length > 0) throw new Error(problems.join('; '))
  return blocks
}

/** Answers "is this peer address in one of the blocks?"; an empty list matches nothing. */
export class AddressMatcher {
  private readonly v4: CidrBlock[]
  private readonly v6: CidrBlock[]

  constructor(blocks: readonly CidrBlock[]) {
    this.v4 = blocks.filter((b) => b.bytes.length === 4)
    this.v6 = blocks.filter((b) => b.bytes.length === 16)
  }

  /** `address` as Node reports it (`socket.remoteAddress`); undefined or unparsable never matches. */
  matches(address: string | undefined): boolean {
    if (address === undefined) return false
    let bytes = parseAddress(address)
    if (bytes === undefined) return false
    if (bytes.length === 16 && isV4Mapped(bytes)) bytes = bytes.subarray(12)
    const list = bytes.length === 4 ? this.v4 : this.v6
    return list.some((block) => inBlock(bytes as Uint8Array, block))
  }
}

// ---------------------------------------------------------------------------------------------

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

function inBlock(bytes: Uint8Array, block: CidrBlock): boolean {
  const full = block.prefix >> 3
  for (let i = 0; i < full; i++) if (bytes[i] !== block.bytes[i]) return false
  const bits = block.prefix & 7
  if (bits === 0) return true
  const mask = (0xff << (8 - bits)) & 0xff
  return ((bytes[full] as number) & mask) === block.bytes[full]
}

function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return [...bytes].join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16))
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')
}
