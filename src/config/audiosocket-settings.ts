/** Settings of the AudioSocket listener and of each call's connection (AUDIOSOCKET_*). */
import { listenHost, payloadBytes, positiveMs, silenceMode, slinEncoding, slinRate, tcpPort } from './formats.js'
import { setting } from './setting.js'

export const audiosocketSettings = {
  host: setting(listenHost, { doc: 'Address the AudioSocket TCP server listens on: an IPv4 or IPv6 address (0.0.0.0 or :: for every interface) or a host name.', default: '127.0.0.1', env: 'AUDIOSOCKET_HOST' }),
  port: setting(tcpPort, { doc: 'TCP port for AudioSocket connections from Asterisk.', default: 9092, env: 'AUDIOSOCKET_PORT' }),
  firstFrameTimeoutMs: setting(positiveMs, {
    doc: 'Close a connection whose UUID frame has not arrived after this many milliseconds.',
    default: 2000,
    env: 'AUDIOSOCKET_FIRST_FRAME_TIMEOUT_MS',
  }),
  /** Sample rate of 0x10 frames: 8000, or 16000 for Asterisk < 20.17 with `c(slin16)`. */
  slinSampleRate: setting(slinRate, {
    doc: 'Sample rate of kind 0x10 audio. 8000, or 16000 for Asterisk before 20.17/21.12/22.7/23.1 dialled with c(slin16), which labels 16 kHz audio 0x10.',
    default: 8000,
    env: 'AUDIOSOCKET_SLIN_SAMPLE_RATE',
  }),
  /** What 0x10 frames carry: slin, or G.711 from a channel driver dialled without c(slin). */
  slinEncoding: setting(slinEncoding, {
    doc: 'What kind 0x10 frames carry: slin (16-bit PCM), or mulaw / alaw when Dial(AudioSocket/...) runs without c(slin) from a G.711 caller and the dialplan cannot change (Asterisk labels the G.711 bytes 0x10); G.711 goes to Soniox as it is.',
    default: 'slin',
    env: 'AUDIOSOCKET_SLIN_ENCODING',
  }),
  maxPayloadBytes: setting(payloadBytes, {
    doc: 'Largest frame payload accepted; a frame announcing more ends that call. 65535 is the protocol maximum.',
    default: 65535,
    env: 'AUDIOSOCKET_MAX_PAYLOAD_BYTES',
  }),
  hangupGraceMs: setting(positiveMs, {
    doc: 'After sending hangup, how long to wait for Asterisk to close before the socket is destroyed.',
    default: 2000,
    env: 'AUDIOSOCKET_HANGUP_GRACE_MS',
  }),
  silenceMode: setting(silenceMode, {
    doc: 'Silence sent to Asterisk so its 2 s inactivity timeout (20.14+) never ends a quiet call: off, gaps (when the caller sends no audio for AUDIOSOCKET_SILENCE_AFTER_MS) or continuous (from the first frame; the workaround for the channel-driver stall, asterisk#2089).',
    default: 'gaps',
    env: 'AUDIOSOCKET_SILENCE_MODE',
  }),
  silenceAfterMs: setting(positiveMs, {
    doc: 'In gaps mode, how long the caller may send no audio before 20 ms silence frames are sent.',
    default: 1000,
    env: 'AUDIOSOCKET_SILENCE_AFTER_MS',
  }),
}
