/**
 * The Asterisk side of tapping one live channel, per stream ("leg"): a snoop on the channel
 * (`spy=in`: what the channel's party says; `spy=out`: what that party hears), an externalMedia
 * channel that streams to our AudioSocket listener with the leg's UUID first, and a mixing bridge
 * joining the two. The call's own audio path is never touched, and the parties hear nothing of it.
 *
 *   idle --start()--> starting --all up--> up --stop()/stopLeg()--> stopped
 *             \--a step failed: what was made is torn down, start() rejects--> stopped
 *
 * Every object gets an id derived from the app and the tap's id (`<app>-<tapId>-<spy>-snoop|media|
 * bridge`), so a restarted server finds what a previous run left (isTapObjectId) and removes it.
 * Teardown order: the externalMedia channel first (its TCP stream then ends within ~15 ms: Asterisk
 * leaves it open otherwise, even after the call is gone), then the bridge, then the snoop. Teardown
 * is idempotent: an object already gone (404) is fine.
 */
import { AppError } from '../shared/errors.js'
import type { AriRest } from './ari-rest.js'
import type { StasisWaiter } from './stasis-waiter.js'

export type Spy = 'in' | 'out'
/** The externalMedia format: slin16 for a wideband channel, slin for 8 kHz (Asterisk would upsample otherwise). */
export type TapFormat = 'slin' | 'slin16'

export interface TapLegPlan {
  spy: Spy
  /** The UUID Asterisk sends first on the leg's stream (externalMedia `data`). */
  callId: string
}

export interface TapPlan {
  /** Unique per tap (the conversation id): part of every object id. */
  tapId: string
  /** The tapped channel's id. */
  channelId: string
  app: string
  /** host:port of our AudioSocket listener as Asterisk reaches it. */
  externalHost: string
  format: TapFormat
  legs: readonly TapLegPlan[]
}

export interface TapObjectIds {
  snoop: string
  media: string
  bridge: string
}

export function tapObjectIds(app: string, tapId: string, spy: Spy): TapObjectIds {
  const base = `${app}-${tapId}-${spy}`
  return { snoop: `${base}-snoop`, media: `${base}-media`, bridge: `${base}-bridge` }
}

const TAP_OBJECT_ID = /^(.+)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-(in|out)-(snoop|media|bridge)$/

/** Whether a channel or bridge id is one this app's taps create (a previous run's, possibly). */
export function isTapObjectId(app: string, id: string): boolean {
  const m = TAP_OBJECT_ID.exec(id)
  return m !== null && m[1] === app
}

/** The tap id and leg of a tap object id, if it is one of `app`'s. */
export function parseTapObjectId(app: string, id: string): { tapId: string; spy: Spy; object: keyof TapObjectIds } | undefined {
  if (!isTapObjectId(app, id)) return undefined
  const rest = id.slice(app.length + 1)
  const parts = rest.split('-')
  const object = parts.pop() as keyof TapObjectIds
  const spy = parts.pop() as Spy
  return { tapId: parts.join('-'), spy, object }
}

type LegState = 'idle' | 'starting' | 'up' | 'stopped'

export class ChannelTap {
  private stateValue: 'idle' | 'starting' | 'up' | 'stopped' = 'idle'
  private readonly legState = new Map<Spy, LegState>()
  private readonly stopping = new Map<Spy, Promise<void>>()
  /** Each leg's setup while it runs: a teardown waits for it, or it would remove objects not made yet. */
  private readonly starting = new Map<Spy, Promise<void>>()

  constructor(
    private readonly rest: AriRest,
    private readonly stasis: StasisWaiter,
    readonly plan: TapPlan,
    private readonly options: { stasisTimeoutMs: number; onTeardownError?: (objectId: string, error: unknown) => void },
  ) {
    for (const leg of plan.legs) this.legState.set(leg.spy, 'idle')
  }

  get state(): 'idle' | 'starting' | 'up' | 'stopped' {
    return this.stateValue
  }

  ids(spy: Spy): TapObjectIds {
    return tapObjectIds(this.plan.app, this.plan.tapId, spy)
  }

  /** Which leg (and which object of it) an id belongs to, if it is one of this tap's. */
  owner(id: string): { spy: Spy; object: keyof TapObjectIds } | undefined {
    const parsed = parseTapObjectId(this.plan.app, id)
    if (parsed === undefined || parsed.tapId !== this.plan.tapId) return undefined
    return { spy: parsed.spy, object: parsed.object }
  }

  /** Whether the leg was torn down by this tap (so its snoop ending says nothing about the call). */
  isLegStopped(spy: Spy): boolean {
    return this.legState.get(spy) === 'stopped'
  }

  /** Creates every leg's objects (legs in parallel). Rejects with ERR_ARI_TAP_FAILED after tearing down what it made. */
  async start(): Promise<void> {
    if (this.stateValue !== 'idle') throw new AppError('ERR_ARI_TAP_FAILED', `tap ${this.plan.tapId} was already started`)
    this.stateValue = 'starting'
    const results = await Promise.allSettled(
      this.plan.legs.map((leg) => {
        const started = this.startLeg(leg)
        this.starting.set(leg.spy, started)
        return started
      }),
    )
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined) {
      await this.stop()
      const cause: unknown = failed.reason
      if (cause instanceof AppError && cause.code === 'ERR_ARI_TAP_FAILED') throw cause
      throw new AppError('ERR_ARI_TAP_FAILED', `cannot tap channel ${this.plan.channelId}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
    }
    if (this.stateValue === 'starting') this.stateValue = 'up'
  }

  private async startLeg(leg: TapLegPlan): Promise<void> {
    const ids = this.ids(leg.spy)
    const { app, channelId, externalHost, format } = this.plan
    this.legState.set(leg.spy, 'starting')
    const timeoutMs = this.options.stasisTimeoutMs
    const snoopUp = this.stasis.expect(ids.snoop, timeoutMs)
    const mediaUp = this.stasis.expect(ids.media, timeoutMs)
    // Neither wait may reject unobserved while the other step is awaited.
    snoopUp.catch(() => {})
    mediaUp.catch(() => {})
    // A leg stopped while it is being set up (the call hung up) makes nothing more.
    const stillWanted = (): void => {
      if (this.legState.get(leg.spy) === 'stopped') throw new AppError('ERR_ARI_TAP_FAILED', `the tap of channel ${channelId} was stopped while it was being set up`)
    }
    try {
      await this.rest.snoop(channelId, { spy: leg.spy, app, snoopId: ids.snoop })
      await snoopUp
      stillWanted()
      await this.rest.externalMedia({ channelId: ids.media, app, externalHost, format, data: leg.callId })
      await mediaUp
      stillWanted()
      await this.rest.createBridge({ bridgeId: ids.bridge, type: 'mixing', name: ids.bridge })
      stillWanted()
      await this.rest.addChannels(ids.bridge, [ids.snoop, ids.media])
    } catch (err) {
      this.stasis.cancel(ids.snoop)
      this.stasis.cancel(ids.media)
      throw err
    }
    if (this.legState.get(leg.spy) === 'starting') this.legState.set(leg.spy, 'up')
  }

  /**
   * Tears down one leg (its stream ends: Asterisk closes the TCP connection). Idempotent; never
   * rejects: an object that cannot be removed now is one the next reconciliation removes.
   */
  stopLeg(spy: Spy): Promise<void> {
    const running = this.stopping.get(spy)
    if (running !== undefined) return running
    this.legState.set(spy, 'stopped')
    const ids = this.ids(spy)
    const failed = (id: string) => (error: unknown): false => {
      this.options.onTeardownError?.(id, error)
      return false
    }
    const setup = this.starting.get(spy)
    const done = (async () => {
      // What the setup is still creating is removed once it has stopped creating.
      await setup?.catch(() => undefined)
      await this.rest.hangup(ids.media).catch(failed(ids.media))
      await this.rest.destroyBridge(ids.bridge).catch(failed(ids.bridge))
      await this.rest.hangup(ids.snoop).catch(failed(ids.snoop))
    })()
    this.stopping.set(spy, done)
    if ([...this.legState.values()].every((s) => s === 'stopped')) this.stateValue = 'stopped'
    return done
  }

  /** Tears down every leg. */
  async stop(): Promise<void> {
    this.stateValue = 'stopped'
    await Promise.all(this.plan.legs.map((leg) => this.stopLeg(leg.spy)))
  }
}
