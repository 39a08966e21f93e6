/**
 * Waits for a channel this app created (a snoop, an externalMedia channel) to enter Stasis. ARI's
 * 200 on the create request does not prove the channel lives: without the app's events socket the
 * snoop dies at once. The wait is registered before the request is sent, because the StasisStart
 * can arrive on the events socket before the REST answer does.
 */
import { AppError } from '../shared/errors.js'
import { systemClock, type Clock, type ClockTimer } from '../shared/clock.js'
import type { AriEvent } from './ari-types.js'

interface Waiting {
  resolve(): void
  reject(error: AppError): void
  timer: ClockTimer
}

export class StasisWaiter {
  private readonly waiting = new Map<string, Waiting>()

  constructor(private readonly clock: Clock = systemClock) {}

  /** Resolves at the channel's StasisStart; rejects (ERR_ARI_TAP_FAILED) if it ends first or after `timeoutMs`. */
  expect(channelId: string, timeoutMs: number): Promise<void> {
    this.cancel(channelId)
    return new Promise<void>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.waiting.delete(channelId)
        reject(new AppError('ERR_ARI_TAP_FAILED', `channel ${channelId} did not enter Stasis within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiting.set(channelId, { resolve, reject, timer })
    })
  }

  /** Feed every event of the app's events socket. */
  onEvent(event: AriEvent): void {
    const id = event.channel?.id
    if (id === undefined) return
    const waiting = this.waiting.get(id)
    if (waiting === undefined) return
    if (event.type === 'StasisStart') this.settle(id, waiting)
    else if (event.type === 'ChannelDestroyed' || event.type === 'StasisEnd') {
      this.settle(id, waiting, new AppError('ERR_ARI_TAP_FAILED', `channel ${id} ended before entering Stasis (${event.cause_txt ?? event.type})`))
    }
  }

  /** Stops waiting for the channel (its request failed); the promise is left unsettled. */
  cancel(channelId: string): void {
    const waiting = this.waiting.get(channelId)
    if (waiting === undefined) return
    this.clock.clearTimeout(waiting.timer)
    this.waiting.delete(channelId)
  }

  /** Rejects every wait (the events socket closed: no StasisStart can be seen any more). */
  failAll(error: AppError): void {
    for (const [id, waiting] of [...this.waiting]) this.settle(id, waiting, error)
  }

  get size(): number {
    return this.waiting.size
  }

  private settle(id: string, waiting: Waiting, error?: AppError): void {
    this.clock.clearTimeout(waiting.timer)
    this.waiting.delete(id)
    if (error === undefined) waiting.resolve()
    else waiting.reject(error)
  }
}
