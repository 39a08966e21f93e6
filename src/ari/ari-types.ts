/**
 * The subset of ARI's JSON model (Asterisk's REST Interface, /ari/api-docs) this server reads: a
 * channel, a bridge, and the messages of the events WebSocket. Field names are Asterisk's, as they
 * arrive on the wire (snake_case), so a value can be traced to the ARI documentation unchanged.
 *
 * These are shapes Asterisk promises, not shapes this code checks: a message is parsed as JSON and
 * must be an object with a string `type` (ari-events.ts checks that much); every other field is read
 * defensively by whoever uses it.
 */

export interface AriCallerId {
  name: string
  number: string
}

export interface AriChannel {
  /** Unique id (`1733400000.42`, or one the creator chose): what every REST path names. */
  id: string
  /** The technology name (`PJSIP/alice-00000001`, `Local/x@ctx-00000002;1`): may hold `/`, `;`, `@`. */
  name: string
  /** Down, Rsrvd, OffHook, Dialing, Ring, Ringing, Up, Busy, Dialing Offhook, Pre-ring, Unknown. */
  state: string
  caller: AriCallerId
  connected: AriCallerId
  creationtime?: string
  language?: string
  dialplan?: { context: string; exten: string; priority: number; app_name?: string; app_data?: string }
}

export interface AriBridge {
  id: string
  technology?: string
  bridge_type?: string
  bridge_class?: string
  name?: string
  /** Ids of the channels in the bridge now. */
  channels: string[]
}

/**
 * One message of the events socket; `type` names it (StasisStart, StasisEnd, ChannelEnteredBridge,
 * ChannelLeftBridge, ChannelDtmfReceived, ChannelDestroyed, ChannelHangupRequest, ChannelVarset, ...).
 */
export interface AriEvent {
  type: string
  application?: string
  timestamp?: string
  asterisk_id?: string
  channel?: AriChannel
  bridge?: AriBridge
  /** ChannelDtmfReceived */
  digit?: string
  duration_ms?: number
  /** ChannelVarset */
  variable?: string
  value?: string
  /** ChannelDestroyed, ChannelHangupRequest: the Q.850 cause */
  cause?: number
  cause_txt?: string
  /** StasisStart: the arguments given to Stasis() (or a snoop's appArgs) */
  args?: string[]
  [field: string]: unknown
}
