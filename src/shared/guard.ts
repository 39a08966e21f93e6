/**
 * A fault boundary for one unit of work (a call). Wrap every function through which the event loop
 * enters that unit (socket and WebSocket events, timers): an exception thrown there would otherwise
 * reach process 'uncaughtException' and end every call; wrapped, it goes to the unit's `onFault`,
 * which ends that unit only. Functions called synchronously from a guarded one need no wrapping.
 */
export type Guard = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A) => void

/** `onFault` must not throw: it is the last catch. */
export function createGuard(onFault: (err: unknown) => void): Guard {
  return (fn) =>
    (...args) => {
      try {
        fn(...args)
      } catch (err) {
        onFault(err)
      }
    }
}

/** No boundary: for a unit that is its own process (tools, tests of the unit itself). */
export const UNGUARDED: Guard = (fn) => fn
