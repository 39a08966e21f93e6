/**
 * Conversations through ARI: taps a live bridged call (one snoop stream per party, ari/channel-tap.ts),
 * admits the tap's streams as the legs of one Conversation (call/conversation.ts), and carries
 * what ARI sees outside the streams into them: DTMF, transfers, the call's end.
 *
 * A tap starts two ways: `begin()` (POST /conversations), or on its own when a channel carrying the
 * channel variable AUDIOSOCKET_SONIOX_TAP is in a two-party bridge (one conversation per call even
 * when both channels carry it: the older channel, the caller's in an inbound call, is tapped).
 *
 * Lifecycle of one tapped channel:
 *   begin: the conversation is announced (conversation.started), the legs' UUIDs are registered
 *          for admission, then the tap is built; a leg whose stream does not arrive within
 *          streamTimeoutMs counts as ended (ERR_ARI_TAP_NO_STREAM)
 *   the tapped channel ends (its snoops end): the tap is torn down, which ends both streams (EOF),
 *          so both legs end and the conversation publishes conversation.ended
 *   a leg's call ends first (the server closed it): that leg's ARI objects are removed
 *   end() (DELETE /conversations/{id}) or shutdown: the tap is torn down, reason stopped / shutdown
 *   the events socket drops: taps go on (their streams are plain TCP); at every (re)connect, tap
 *          objects of this app that no live tap owns are removed (a previous run's, or ones whose
 *          call ended unseen), and live taps whose channel is gone are torn down
 *
 * Registrations are bounded: a leg waits for its stream at most streamTimeoutMs, and taps are
 * bounded by maxConversations.
 *
 * Over 400 lines because every ARI event that touches a tap (bridge moves, DTMF, the channel's end,
 * reconnection) changes the same per-tap record; the ARI objects (ari/channel-tap.ts) and the
 * conversation (call/conversation.ts) live apart.
 */
import { randomUUID } from 'node:crypto'
import { ChannelTap, isTapObjectId, type Spy, type TapFormat } from '../ari/channel-tap.js'
import type { AriRest } from '../ari/ari-rest.js'
import type { AriTapMetrics } from '../ari/ari-metrics.js'
import type { AriBridge, AriChannel, AriEvent } from '../ari/ari-types.js'
import { StasisWaiter } from '../ari/stasis-waiter.js'
import type { CallOptions } from '../call/call-session.js'
import { Conversation, type ConversationEndReason } from '../call/conversation.js'
import { systemClock, type Clock, type ClockTimer } from '../shared/clock.js'
import { AppError } from '../shared/errors.js'
import type { Logger } from '../shared/logger.js'
import type { EventSink } from '../events/envelope.js'

/** The channel variable that asks for a channel to be tapped when it is bridged; its value may name the roles ("caller,agent"). */
export const TAP_VARIABLE = 'AUDIOSOCKET_SONIOX_TAP'
export const DEFAULT_ROLES: Readonly<Roles> = Object.freeze({ in: 'caller', out: 'agent' })

/** The role of each stream: `in` carries what the tapped channel's party says, `out` what that party hears. */
export interface Roles {
  in: string
  out: string
}

export interface ConversationRequest {
  /** The channel's id, or its name (`PJSIP/alice-00000001`). */
  channel: string
  roles: Roles
  /** Recognition options and metadata, as for a registration (POST /calls/{uuid}). */
  options: Pick<CallOptions, 'recognition' | 'metadata'>
}

export type BeginResult =
  | { ok: true; conversationId: string; legs: Array<{ callId: string; role: string }> }
  | { ok: false; status: 404 | 409 | 429 | 502 | 503; error: string; conversationId?: string }

export interface ConversationTapsSettings {
  app: string
  /** host:port of the AudioSocket listener as Asterisk reaches it (a function: known once the listener is bound). */
  externalHost: string | (() => string)
  /** Tap channels carrying TAP_VARIABLE when they are bridged. Default true. */
  autoTap?: boolean
  stasisTimeoutMs?: number
  streamTimeoutMs?: number
  maxConversations?: number
}

/** The events socket as the taps use it (ari/ari-events.ts AriEventStream). */
export interface TapEventSource {
  start(): void
  connected(): Promise<void>
  close(): Promise<void>
  readonly state: string
}

export interface ConversationTapsDeps {
  rest: AriRest
  /** Builds the events socket with these handlers (called once). */
  createEvents(handlers: { onEvent(event: AriEvent): void; onConnected(): void; onDisconnected(error: AppError): void }): TapEventSource
  sink: EventSink
  logger: Logger
  clock?: Clock
  metrics?: AriTapMetrics
  settings: ConversationTapsSettings
}

interface Tapped {
  readonly conversation: Conversation
  readonly tap: ChannelTap
  readonly channelId: string
  readonly roles: Roles
  /** The other channels of the bridge the tapped channel is in: whose DTMF is the `out` party's. */
  peers: Set<string>
  /** Legs whose stream has not arrived yet, by call id. */
  readonly pending: Map<string, { spy: Spy; options: CallOptions }>
  readonly legSpy: Map<string, Spy>
  streamTimer: ClockTimer | undefined
  /** The tapped channel ended (ARI said so), possibly while the tap was being set up. */
  channelGone: boolean
}

export class ConversationTaps {
  private stateValue: 'idle' | 'running' | 'draining' | 'closed' = 'idle'
  private readonly byId = new Map<string, Tapped>()
  private readonly byChannel = new Map<string, Tapped>()
  /** Leg call id -> its tap, until its stream arrives. */
  private readonly pendingLegs = new Map<string, Tapped>()
  /** Channels being looked at for an automatic tap: one look per bridge join. */
  private readonly autoChecking = new Set<string>()
  private readonly stasis: StasisWaiter
  private readonly clock: Clock
  private readonly events: TapEventSource
  private readonly log: Logger
  private readonly settings: Required<ConversationTapsSettings>
  /** Teardowns in flight: close() waits for them before it closes the REST client. */
  private readonly teardowns = new Set<Promise<void>>()

  constructor(private readonly deps: ConversationTapsDeps) {
    this.clock = deps.clock ?? systemClock
    this.stasis = new StasisWaiter(this.clock)
    this.log = deps.logger
    this.settings = { autoTap: true, stasisTimeoutMs: 5000, streamTimeoutMs: 10_000, maxConversations: 1000, ...deps.settings }
    this.events = deps.createEvents({
      onEvent: (event) => this.onEvent(event),
      onConnected: () => void this.reconcile().catch((err: unknown) => this.log.warn({ err }, 'ARI reconciliation failed; it runs again at the next connection')),
      onDisconnected: (error) => this.stasis.failAll(error),
    })
  }

  start(): void {
    if (this.stateValue !== 'idle') return
    this.stateValue = 'running'
    this.events.start()
  }

  /** The events socket's state ('connected' when taps can start). */
  get eventsState(): string {
    return this.events.state
  }

  /** Resolves once the events socket is connected (taps can start). */
  connected(): Promise<void> {
    return this.events.connected()
  }

  get active(): number {
    return this.byId.size
  }

  /** New taps are refused from now on (draining); live ones go on until their calls end. */
  refuseNew(): void {
    if (this.stateValue === 'running') this.stateValue = 'draining'
  }

  /** Admission: the options of a tap stream's leg, consumed; undefined for any other UUID. */
  takeLeg(callId: string): CallOptions | undefined {
    const tapped = this.pendingLegs.get(callId)
    if (tapped === undefined) return undefined
    this.pendingLegs.delete(callId)
    const leg = tapped.pending.get(callId)
    tapped.pending.delete(callId)
    if (tapped.pending.size === 0) this.clearStreamTimer(tapped)
    return leg?.options
  }

  /** POST /conversations. */
  async begin(request: ConversationRequest): Promise<BeginResult> {
    if (this.stateValue !== 'running') return { ok: false, status: 503, error: 'the server is draining and starts no new conversations' }
    if (this.events.state !== 'connected') return { ok: false, status: 503, error: `the ARI events socket is ${this.events.state}: a tap cannot start without it (check ARI_URL and Asterisk)` }
    if (this.byId.size >= this.settings.maxConversations) return { ok: false, status: 429, error: `${this.settings.maxConversations} conversations are live, the most this server taps at once` }
    let channel: AriChannel | undefined
    try {
      channel = await this.findChannel(request.channel)
    } catch (err) {
      return { ok: false, status: 502, error: `ARI: ${(err as Error).message}` }
    }
    if (channel === undefined) return { ok: false, status: 404, error: `no live channel with the id or name "${request.channel}"` }
    if (isTapObjectId(this.settings.app, channel.id)) return { ok: false, status: 409, error: 'that channel is one of this server\'s own tap channels' }
    const existing = this.tapOf(channel.id)
    if (existing !== undefined) return { ok: false, status: 409, error: 'this call is already being transcribed', conversationId: existing.conversation.id }
    return this.tapChannel(channel, request)
  }

  /** DELETE /conversations/{id}: false when no live conversation has this id. */
  async end(conversationId: string, reason: ConversationEndReason = 'stopped'): Promise<boolean> {
    const tapped = this.byId.get(conversationId)
    if (tapped === undefined) return false
    await this.stopTap(tapped, reason)
    return true
  }

  /** Shutdown: every tap is torn down (its streams end), then the events socket closes. */
  async close(): Promise<void> {
    if (this.stateValue === 'closed') return
    this.stateValue = 'closed'
    await Promise.all([...this.byId.values()].map((tapped) => this.stopTap(tapped, 'shutdown')))
    await Promise.all([...this.teardowns])
    await this.events.close()
    this.deps.rest.close()
  }

  /** Marks every live conversation as ending for `reason` (the server is about to end their calls). */
  markEnding(reason: ConversationEndReason): void {
    for (const tapped of this.byId.values()) tapped.conversation.ending(reason)
  }

  // ---- starting a tap -----------------------------------------------------------------------------

  private async tapChannel(channel: AriChannel, request: ConversationRequest): Promise<BeginResult> {
    const format = await this.formatOf(channel.id)
    const conversationId = randomUUID()
    const legPlans = [
      { spy: 'in' as const, callId: randomUUID(), role: request.roles.in },
      { spy: 'out' as const, callId: randomUUID(), role: request.roles.out },
    ]
    const conversation = new Conversation({
      conversationId,
      legs: legPlans,
      channel: { id: channel.id, name: channel.name, caller: { ...channel.caller }, connected: { ...channel.connected } },
      metadata: request.options.metadata ?? null,
      sink: this.deps.sink,
      clock: this.clock,
      logger: this.log,
      onLegEnded: (callId) => this.onLegEnded(conversationId, callId),
      onEnded: () => this.onConversationEnded(conversationId),
    })
    const tap = new ChannelTap(this.deps.rest, this.stasis, { tapId: conversationId, channelId: channel.id, app: this.settings.app, externalHost: typeof this.settings.externalHost === 'string' ? this.settings.externalHost : this.settings.externalHost(), format, legs: legPlans }, {
      stasisTimeoutMs: this.settings.stasisTimeoutMs,
      onTeardownError: (objectId, err) => this.log.warn({ err, objectId, conversationId }, 'a tap object could not be removed; the next reconciliation removes it'),
    })
    const tapped: Tapped = { conversation, tap, channelId: channel.id, roles: request.roles, peers: new Set(), pending: new Map(), legSpy: new Map(), streamTimer: undefined, channelGone: false }
    for (const leg of legPlans) {
      const options: CallOptions = {
        ...request.options,
        conversation: conversation.legOf(leg.callId),
        silenceMode: 'continuous',
        sampleRate: format === 'slin16' ? 16000 : 8000,
      }
      tapped.pending.set(leg.callId, { spy: leg.spy, options })
      tapped.legSpy.set(leg.callId, leg.spy)
      this.pendingLegs.set(leg.callId, tapped)
    }
    this.byId.set(conversationId, tapped)
    this.byChannel.set(channel.id, tapped)
    this.deps.metrics?.tapStarted()
    conversation.announce()
    try {
      await tap.start()
    } catch (err) {
      const error = err instanceof AppError ? err : new AppError('ERR_ARI_TAP_FAILED', String(err), { cause: err })
      this.log.warn({ err: error, channel: channel.name, conversationId }, 'tap failed')
      conversation.ending('error')
      this.abandonPending(tapped, 'ERR_ARI_TAP_FAILED')
      if (tapped.channelGone) return { ok: false, status: 404, error: 'the channel ended while the tap was being set up', conversationId }
      return { ok: false, status: 502, error: error.message, conversationId }
    }
    if (this.byId.get(conversationId) !== tapped) {
      // The channel ended while the tap was being built.
      return { ok: false, status: 404, error: 'the channel ended while the tap was being set up', conversationId }
    }
    tapped.peers = await this.peersOf(channel.id)
    if (tapped.pending.size > 0) {
      tapped.streamTimer = this.clock.setTimeout(() => {
        tapped.streamTimer = undefined
        this.abandonPending(tapped, 'ERR_ARI_TAP_NO_STREAM')
      }, this.settings.streamTimeoutMs)
    }
    this.log.info({ conversationId, channel: channel.name, format, legs: legPlans.map((l) => ({ callId: l.callId, role: l.role, spy: l.spy })) }, 'tap up')
    return { ok: true, conversationId, legs: legPlans.map(({ callId, role }) => ({ callId, role })) }
  }

  /** Legs still waiting for their stream count as ended with `errorCode`; their ARI objects go. */
  private abandonPending(tapped: Tapped, errorCode: 'ERR_ARI_TAP_FAILED' | 'ERR_ARI_TAP_NO_STREAM'): void {
    this.clearStreamTimer(tapped)
    for (const [callId, leg] of [...tapped.pending]) {
      tapped.pending.delete(callId)
      this.pendingLegs.delete(callId)
      this.track(tapped.tap.stopLeg(leg.spy))
      tapped.conversation.legMissing(callId, errorCode)
    }
  }

  private clearStreamTimer(tapped: Tapped): void {
    this.clock.clearTimeout(tapped.streamTimer)
    tapped.streamTimer = undefined
  }

  private async findChannel(idOrName: string): Promise<AriChannel | undefined> {
    const byId = await this.deps.rest.getChannel(idOrName)
    if (byId !== undefined) return byId
    const all = await this.deps.rest.listChannels()
    return all.find((c) => c.name === idOrName)
  }

  /** slin16 for a wideband channel, slin for 8 kHz: asking for slin16 on an 8 kHz call makes Asterisk upsample. */
  private async formatOf(channelId: string): Promise<TapFormat> {
    const native = await this.deps.rest.getChannelVariable(channelId, 'CHANNEL(audionativeformat)').catch(() => undefined)
    return native !== undefined && WIDEBAND.test(native) ? 'slin16' : 'slin'
  }

  private async peersOf(channelId: string): Promise<Set<string>> {
    const bridges = await this.deps.rest.listBridges().catch(() => [] as AriBridge[])
    const bridge = bridges.find((b) => b.channels.includes(channelId))
    return new Set(bridge?.channels.filter((id) => id !== channelId) ?? [])
  }

  /** The live tap that transcribes the call this channel is in (as the tapped channel or its peer). */
  private tapOf(channelId: string): Tapped | undefined {
    const direct = this.byChannel.get(channelId)
    if (direct !== undefined) return direct
    for (const tapped of this.byId.values()) if (tapped.peers.has(channelId)) return tapped
    return undefined
  }

  // ---- ending -------------------------------------------------------------------------------------

  private async stopTap(tapped: Tapped, reason: ConversationEndReason): Promise<void> {
    tapped.conversation.ending(reason)
    this.abandonPending(tapped, 'ERR_ARI_TAP_NO_STREAM')
    await tapped.tap.stop()
  }

  private onLegEnded(conversationId: string, callId: string): void {
    const tapped = this.byId.get(conversationId)
    const spy = tapped?.legSpy.get(callId)
    if (tapped === undefined || spy === undefined) return
    // The stream is over: whatever of its leg is still in Asterisk goes (no-op when the tap is already down).
    this.track(tapped.tap.stopLeg(spy))
  }

  private onConversationEnded(conversationId: string): void {
    const tapped = this.byId.get(conversationId)
    if (tapped === undefined) return
    this.byId.delete(conversationId)
    if (this.byChannel.get(tapped.channelId) === tapped) this.byChannel.delete(tapped.channelId)
    this.clearStreamTimer(tapped)
    this.deps.metrics?.tapEnded()
    this.track(tapped.tap.stop())
  }

  /** Keeps a teardown until it settles (it never rejects: ChannelTap swallows what it cannot remove). */
  private track(teardown: Promise<void>): void {
    this.teardowns.add(teardown)
    void teardown.finally(() => this.teardowns.delete(teardown))
  }

  // ---- ARI events ---------------------------------------------------------------------------------

  private onEvent(event: AriEvent): void {
    this.stasis.onEvent(event)
    switch (event.type) {
      case 'ChannelDtmfReceived':
        return this.onDtmf(event)
      case 'ChannelEnteredBridge':
        return this.onEnteredBridge(event)
      case 'ChannelLeftBridge':
        return this.onLeftBridge(event)
      case 'StasisEnd':
      case 'ChannelDestroyed':
        return this.onChannelGone(event)
    }
  }

  private onDtmf(event: AriEvent): void {
    const channelId = event.channel?.id
    const digit = event.digit
    if (channelId === undefined || typeof digit !== 'string') return
    const own = this.byChannel.get(channelId)
    if (own !== undefined) return own.conversation.dtmf(own.roles.in, digit)
    for (const tapped of this.byId.values()) {
      if (tapped.peers.has(channelId)) return tapped.conversation.dtmf(tapped.roles.out, digit)
    }
  }

  private onEnteredBridge(event: AriEvent): void {
    const bridge = event.bridge
    const channel = event.channel
    if (bridge === undefined || channel === undefined || isTapObjectId(this.settings.app, bridge.id)) return
    let tappedHere = false
    for (const id of bridge.channels) {
      const tapped = this.byChannel.get(id)
      if (tapped === undefined) continue
      tappedHere = true
      // A transfer or a new bridge: whoever is bridged with the tapped channel now is the other party.
      tapped.peers = new Set(bridge.channels.filter((other) => other !== id))
    }
    if (!tappedHere && this.settings.autoTap && this.stateValue === 'running' && bridge.channels.length === 2) void this.maybeAutoTap(bridge.channels)
  }

  private onLeftBridge(event: AriEvent): void {
    const channelId = event.channel?.id
    if (channelId === undefined) return
    const own = this.byChannel.get(channelId)
    if (own !== undefined) {
      own.peers = new Set()
      return
    }
    for (const tapped of this.byId.values()) tapped.peers.delete(channelId)
  }

  private onChannelGone(event: AriEvent): void {
    const channelId = event.channel?.id
    if (channelId === undefined) return
    const own = this.byChannel.get(channelId)
    if (own !== undefined && event.type === 'ChannelDestroyed') {
      own.channelGone = true
      this.track(this.stopTap(own, 'hangup'))
      return
    }
    for (const tapped of this.byId.values()) {
      const owner = tapped.tap.owner(channelId)
      if (owner === undefined) continue
      // A snoop ends with the channel it spies on: the call is over for this tap.
      // (A snoop this tap removed itself, with its leg, says nothing about the call.)
      if (owner.object === 'snoop') {
        if (!tapped.tap.isLegStopped(owner.spy)) {
          tapped.channelGone = true
          this.track(this.stopTap(tapped, 'hangup'))
        }
      } else if (owner.object === 'media') this.track(tapped.tap.stopLeg(owner.spy))
      return
    }
  }

  /** A two-party bridge formed: tap its call if a channel in it carries TAP_VARIABLE (the older one if both do). */
  private async maybeAutoTap(channelIds: string[]): Promise<void> {
    if (channelIds.some((id) => this.autoChecking.has(id) || this.tapOf(id) !== undefined || isTapObjectId(this.settings.app, id))) return
    for (const id of channelIds) this.autoChecking.add(id)
    try {
      const candidates: Array<{ channel: AriChannel; value: string }> = []
      for (const id of channelIds) {
        const value = await this.deps.rest.getChannelVariable(id, TAP_VARIABLE)
        if (value === undefined || value.trim() === '' || /^(0|no|false|off)$/i.test(value.trim())) continue
        const channel = await this.deps.rest.getChannel(id)
        if (channel !== undefined) candidates.push({ channel, value })
      }
      candidates.sort((a, b) => (a.channel.creationtime ?? '').localeCompare(b.channel.creationtime ?? '') || a.channel.id.localeCompare(b.channel.id))
      const chosen = candidates[0]
      if (chosen === undefined || channelIds.some((id) => this.tapOf(id) !== undefined)) return
      const roles = parseTapRoles(chosen.value)
      if (roles === undefined) {
        this.log.warn({ channel: chosen.channel.name, value: chosen.value.slice(0, 100) }, `${TAP_VARIABLE} should be "1" or "<in role>,<out role>" (e.g. "caller,agent"); the channel is tapped with the default roles`)
      }
      if (this.stateValue !== 'running' || this.events.state !== 'connected') return
      const result = await this.tapChannel(chosen.channel, { channel: chosen.channel.id, roles: roles ?? DEFAULT_ROLES, options: {} })
      if (!result.ok) this.log.warn({ channel: chosen.channel.name, error: result.error }, 'automatic tap failed')
    } catch (err) {
      this.log.warn({ err }, 'automatic tap: ARI request failed')
    } finally {
      for (const id of channelIds) this.autoChecking.delete(id)
    }
  }

  /**
   * At every (re)connection: removes this app's tap objects that no live tap owns (a previous run's,
   * or a tap whose end happened while the socket was down), and ends live taps whose channel is gone.
   */
  private async reconcile(): Promise<void> {
    const app = this.settings.app
    // Set at every connection: a filter lives with the app, which Asterisk forgets when it restarts.
    await this.deps.rest.setEventFilter(app, TAP_EVENT_TYPES).catch((err: unknown) => this.log.warn({ err }, 'ARI event filter not set: every event of the PBX reaches this server (Asterisk older than 16.3?)'))
    const owned = (id: string): boolean => [...this.byId.values()].some((tapped) => tapped.tap.owner(id) !== undefined)
    const [channels, bridges] = await Promise.all([this.deps.rest.listChannels(), this.deps.rest.listBridges()])
    const orphans = channels.filter((c) => isTapObjectId(app, c.id) && !owned(c.id))
    const orphanBridges = bridges.filter((b) => isTapObjectId(app, b.id) && !owned(b.id))
    // Media channels first: each one's TCP stream then ends.
    orphans.sort((a, b) => Number(b.id.endsWith('-media')) - Number(a.id.endsWith('-media')))
    for (const channel of orphans) await this.deps.rest.hangup(channel.id).catch(() => false)
    for (const bridge of orphanBridges) await this.deps.rest.destroyBridge(bridge.id).catch(() => false)
    if (orphans.length + orphanBridges.length > 0) this.log.info({ channels: orphans.length, bridges: orphanBridges.length }, 'removed tap channels and bridges no live tap owns')
    const live = new Set(channels.map((c) => c.id))
    for (const tapped of [...this.byId.values()]) {
      if (!live.has(tapped.channelId) && tapped.tap.state !== 'starting') await this.stopTap(tapped, 'hangup')
    }
  }
}

/** The events the taps act on: the events socket is filtered to these (ARI eventFilter). */
export const TAP_EVENT_TYPES: readonly string[] = ['StasisStart', 'StasisEnd', 'ChannelEnteredBridge', 'ChannelLeftBridge', 'ChannelDtmfReceived', 'ChannelDestroyed']

/** Channel formats Asterisk carries at 16 kHz or more: their taps ask for slin16. */
const WIDEBAND = /slin(1[26]|2[4]|3[2]|4[48]|96|192)|g722|g719|opus|siren|speex(16|32)|silk(12|16|24)/i

const ROLE = /^[A-Za-z][A-Za-z0-9_.-]{0,31}$/

/** The value of TAP_VARIABLE as roles: "1"/"yes"/"true"/"on" -> the defaults; "caller,agent" -> in, out. */
export function parseTapRoles(value: string): Roles | undefined {
  const text = value.trim()
  if (/^(1|yes|true|on)$/i.test(text)) return DEFAULT_ROLES
  const parts = text.split(',').map((p) => p.trim())
  if (parts.length !== 2) return undefined
  const [inRole, outRole] = parts as [string, string]
  if (!isRole(inRole) || !isRole(outRole) || inRole === outRole) return undefined
  return { in: inRole, out: outRole }
}

export function isRole(value: unknown): value is string {
  return typeof value === 'string' && ROLE.test(value)
}
