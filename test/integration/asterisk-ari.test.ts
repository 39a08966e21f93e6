/**
 * The ARI client (src/ari/) against a real Asterisk (test/support/asterisk.ts, ARI from
 * test/support/asterisk-ari.ts): the events socket, /asterisk/info, a Local channel that waits
 * (found by listChannels and getChannel, a dialplan variable read back), a snoop on it with its
 * StasisStart, a mixing bridge with an externalMedia channel that streams to a TCP server here,
 * hangups (true, then false), ChannelDestroyed; and a wrong password, on both halves.
 *
 * Skipped, with the reason, when there is no Asterisk at ASTERISK_PREFIX (default /opt/asterisk).
 */
import t, { type Test } from 'tap'
import net from 'node:net'
import { randomUUID } from 'node:crypto'
import { AriError, AriEventStream, AriRest, type AriChannel, type AriEvent } from '../../src/ari/index.js'
import type { AppError } from '../../src/shared/errors.js'
import { createLogger } from '../../src/shared/logger.js'
import { asteriskMissing, startAsterisk, type Asterisk } from '../support/asterisk.js'
import { ARI_MODULES, ariConfigs } from '../support/asterisk-ari.js'
import { freePort } from '../support/free-port.js'
import { waitUntil } from '../support/wait.js'

const missing = asteriskMissing()

const USERNAME = 'soniox'
const PASSWORD = 'ari-test-pw/+:@x'
const APP = 'audiosocket-soniox-test'
const TAG = 'tagged value/1'

const EXTENSIONS = ['[test]', `exten => wait,1,Set(TAP_TAG=${TAG})`, ' same => n,Answer()', ' same => n,Wait(60)', ' same => n,Hangup()', ''].join('\n')

interface Rig {
  ast: Asterisk
  rest: AriRest
  stream: AriEventStream
  events: AriEvent[]
  errors: AppError[]
  logs: string[]
}

async function rig(t: Test, password = PASSWORD): Promise<Rig> {
  const port = await freePort()
  const ast = await startAsterisk(t, { extensions: EXTENSIONS, modules: ARI_MODULES, configs: ariConfigs({ port, username: USERNAME, password: PASSWORD }) })
  const url = `http://127.0.0.1:${port}`
  const rest = new AriRest({ url, username: USERNAME, password })
  const r: Rig = { ast, rest, stream: undefined as unknown as AriEventStream, events: [], errors: [], logs: [] }
  r.stream = new AriEventStream({
    url,
    username: USERNAME,
    password,
    app: APP,
    logger: createLogger({ level: 'debug', destination: { write: (line: string) => void r.logs.push(line) } }),
    onEvent: (event) => void r.events.push(event),
    onDisconnected: (error) => void r.errors.push(error),
  })
  t.teardown(async () => {
    await r.stream.close()
    rest.close()
  })
  return r
}

/** Polls `probe` until it returns a value (not undefined); the Asterisk diagnostics on a timeout. */
async function eventually<T>(r: Rig, what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; events: ${r.events.map((e) => e.type).join(', ')}\n${await r.ast.diagnostics()}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const eventOf = (r: Rig, type: string, channelId: string) => (): AriEvent | undefined => r.events.find((e) => e.type === type && e.channel?.id === channelId)

t.test('ARI against Asterisk: events, info, channels, a variable, snoop, bridge, externalMedia, hangup', { skip: missing ?? false }, async (t) => {
  const r = await rig(t)
  r.stream.start()
  await r.stream.connected()
  t.equal(r.stream.state, 'connected')

  const info = await r.rest.asteriskInfo()
  t.match(info, { system: { version: /^\d+\.\d+/ } }, 'asterisk/info names the version')

  t.same(await r.rest.listChannels(), [], 'no channel yet')
  r.ast.originate({ Channel: 'Local/wait@test', Application: 'Wait', Data: '60' })
  const channels = await eventually(r, 'both halves of the Local channel up', async () => {
    const list = await r.rest.listChannels()
    return list.length === 2 && list.every((c) => c.state === 'Up') ? list : undefined
  })
  const leg = channels.find((c) => c.name.endsWith(';2')) as AriChannel
  const other = channels.find((c) => c.name.endsWith(';1')) as AriChannel
  t.match(leg, { name: /^Local\/wait@test-[0-9a-f]+;2$/, state: 'Up', dialplan: { context: 'test', exten: 'wait' } }, 'the dialplan half, with a name holding / @ ;')
  t.match(await r.rest.getChannel(leg.id), { id: leg.id, name: leg.name })
  t.equal(await r.rest.getChannelVariable(leg.id, 'TAP_TAG'), TAG, 'a variable set in the dialplan')
  t.equal(await r.rest.getChannelVariable(leg.id, 'CHANNEL(name)'), leg.name, 'a function reads too')
  t.equal(await r.rest.getChannelVariable(leg.id, 'NEVER_SET'), undefined, 'an unset variable: undefined (Asterisk answers 404)')
  t.equal(await r.rest.getChannelVariable('no-such-channel', 'TAP_TAG'), undefined, 'no such channel: undefined')
  t.equal(await r.rest.getChannel('no-such-channel'), undefined)
  t.ok(r.events.some((e) => e.type === 'ChannelVarset' && e.variable === 'TAP_TAG' && e.value === TAG), 'subscribeAll: events of channels not in Stasis (ChannelVarset)')

  // A snoop on the leg: a channel in our Stasis app (StasisStart proves it lives).
  const snoopId = `snoop-${randomUUID()}`
  const snoop = await r.rest.snoop(leg.id, { spy: 'in', app: APP, snoopId, appArgs: 'tap,in' })
  t.equal(snoop.id, snoopId)
  const started = await eventually(r, 'the snoop StasisStart', eventOf(r, 'StasisStart', snoopId))
  t.same(started.args, ['tap', 'in'])
  t.equal(started.application, APP)

  // externalMedia to a TCP server here: Asterisk connects and sends the UUID frame first.
  const received: Buffer[] = []
  const mediaSockets = new Set<net.Socket>()
  const media = net.createServer((socket) => {
    mediaSockets.add(socket)
    socket.on('data', (chunk) => received.push(chunk))
    socket.on('error', () => undefined)
    socket.on('close', () => mediaSockets.delete(socket))
  })
  await new Promise<void>((resolve) => media.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of mediaSockets) s.destroy()
    return new Promise<void>((resolve) => media.close(() => resolve()))
  })
  const streamUuid = randomUUID()
  const mediaId = `media-${randomUUID()}`
  const externalHost = `127.0.0.1:${(media.address() as net.AddressInfo).port}`
  const mediaChannel = await r.rest.externalMedia({ channelId: mediaId, app: APP, externalHost, format: 'slin16', data: streamUuid })
  t.equal(mediaChannel.id, mediaId)
  const bridgeId = `bridge-${randomUUID()}`
  t.match(await r.rest.createBridge({ bridgeId, type: 'mixing', name: 'tap test' }), { id: bridgeId, channels: [] })
  await r.rest.addChannels(bridgeId, [snoopId, mediaId])
  const bridged = await eventually(r, 'both in the bridge', async () => (await r.rest.listBridges()).find((b) => b.id === bridgeId && b.channels.length === 2))
  t.same([...bridged.channels].sort(), [snoopId, mediaId].sort())
  const head = await eventually(r, 'the UUID frame and some audio on the tap stream', () => {
    const bytes = Buffer.concat(received)
    return bytes.length >= 19 + 3 + 640 ? bytes : undefined
  })
  t.equal(head[0], 0x01, 'the UUID frame first')
  t.equal(head.readUInt16BE(1), 16)
  t.equal(head.subarray(3, 19).toString('hex'), streamUuid.replaceAll('-', ''), 'the UUID given as data')
  t.equal(head[19], 0x12, 'then slin16 audio (kind 0x12)')

  // Hang up: true, then false; ChannelDestroyed for each.
  t.equal(await r.rest.hangup(mediaId), true)
  t.equal(await r.rest.hangup(mediaId), false, 'already gone')
  t.equal(await r.rest.hangup(leg.id), true)
  t.equal(await r.rest.hangup(leg.id), false)
  const destroyed = await eventually(r, 'ChannelDestroyed of the leg', eventOf(r, 'ChannelDestroyed', leg.id))
  t.type(destroyed.cause, 'number')
  await eventually(r, 'ChannelDestroyed of the other half', eventOf(r, 'ChannelDestroyed', other.id))
  await eventually(r, 'ChannelDestroyed of the snoop (it ends with the call)', eventOf(r, 'ChannelDestroyed', snoopId))
  await eventually(r, 'ChannelDestroyed of the externalMedia channel', eventOf(r, 'ChannelDestroyed', mediaId))
  t.equal(await r.rest.destroyBridge(bridgeId), true)
  t.equal(await r.rest.destroyBridge(bridgeId), false)
  await eventually(r, 'no channel left', async () => ((await r.rest.listChannels()).length === 0 ? true : undefined))

  t.same(r.errors, [], 'the events socket stayed up')
  t.equal(r.stream.state, 'connected')
  t.notOk(r.logs.some((l) => l.includes(PASSWORD)), 'the password is never logged')
})

t.test('a wrong ARI password: REST 401 and the events upgrade 401, both naming the fix', { skip: missing ?? false }, async (t) => {
  const r = await rig(t, 'not-the-password')
  const err = await r.rest.asteriskInfo().catch((e: unknown) => e)
  t.ok(err instanceof AriError)
  t.match(err, { code: 'ERR_ARI_REQUEST', status: 401, message: /ARI refused the username\/password: check ARI_USERNAME\/ARI_PASSWORD and ari\.conf/ })
  r.stream.start()
  await waitUntil(() => r.errors.length > 0, 'the refused upgrade')
  t.match(r.errors[0], { code: 'ERR_ARI_EVENTS', status: 401, message: /answered 401: ARI refused the username\/password/ })
  t.equal(r.stream.state, 'waiting', 'retried after a backoff')
  t.notOk(r.logs.some((l) => l.includes('not-the-password')), 'the password is never logged')
})
