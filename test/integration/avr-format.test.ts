/**
 * WEBHOOK_FORMAT=avr end to end, the way an AVR installation switches: the real server in process,
 * the dialplan's AVR pre-registration (`POST /call` with `{ uuid, payload }`, plus the bearer token)
 * before each call, real Asterisk captures replayed into the AudioSocket port, and a strict AVR
 * receiver (test/support/avr-receiver.ts) that checks AVR's exact shapes, the X-AVR-WEBHOOK-SECRET
 * header and the order call_started ... call_ended per uuid. The same events in the standard format
 * (EVENTS_FILE keeps it) are the reference each AVR sequence is checked against. Delivery is the
 * standard one: a failed call's error, a receiver down across a restart (the spool), a receiver that
 * refuses (dead letters, then `dead-letters redeliver`).
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { uuidToBytes } from '../../src/audiosocket/index.js'
import { deadLetters } from '../../src/cli/dead-letters.js'
import { DeadLetterFile } from '../../src/webhook/dead-letter.js'
import { parseSegment } from '../../src/webhook/spool-format.js'
import { startAvrReceiver, type AvrEvent } from '../support/avr-receiver.js'
import { loadCapture, loadCaptureSummary } from '../support/frames.js'
import { freePort } from '../support/free-port.js'
import { startHarness } from '../support/harness.js'
import { replayCapture } from '../support/replay.js'
import { waitUntil } from '../support/wait.js'

// Each subtest has its own server, stand-in and receivers on ephemeral ports: they can run at once.
t.jobs = 4

const TOKEN = 'avr-switch-token-0123456789'
const SECRET = 'the-avr-webhook-secret'
const STEMS = ['app-8k-speech', 'app-8k-dtmf', 'chan-16k-dtmf', 'dial-16k-speech', 'dial-48k-speech']

/** A standard event as AVR's types and payloads, the reference for each AVR sequence. */
function asAvr(event: any): Array<Pick<AvrEvent, 'type' | 'payload'>> {
  switch (event.type) {
    case 'call.started':
      return [{ type: 'call_started', payload: {} }]
    case 'transcript.final':
      return [{ type: 'transcription', payload: { role: 'user', text: event.data.text.trim() } }]
    case 'call.dtmf':
      return [{ type: 'dtmf_digit', payload: { digit: event.data.digit } }]
    case 'call.ended':
      return event.data.error === null ? [{ type: 'call_ended', payload: {} }] : [{ type: 'error', payload: { message: `${event.data.error.message} (${event.data.error.code})` } }, { type: 'call_ended', payload: {} }]
    default:
      return []
  }
}

function eventsFileLines(path: string): any[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line))
}

/** AVR's dialplan, as its documentation writes it, with the one line this server adds (the token). */
async function preRegister(httpPort: number, uuid: string, payload: Record<string, string>): Promise<Response> {
  return fetch(`http://127.0.0.1:${httpPort}/call`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ uuid, payload }),
  })
}

t.test('an AVR installation switched: POST /call, the calls, and exactly AVR\'s events at its receiver', async (t) => {
  const avr = await startAvrReceiver({ secret: SECRET })
  t.teardown(() => avr.close())
  const dir = mkdtempSync(join(tmpdir(), 'avr-format-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const httpPort = await freePort()
  const eventsFile = join(dir, 'events.jsonl')
  const h = await startHarness({
    env: {
      WEBHOOK_FORMAT: 'avr',
      WEBHOOK_URL: avr.url,
      WEBHOOK_SECRET: SECRET,
      HTTP_PORT: String(httpPort),
      HTTP_TOKEN: TOKEN,
      // Every call must have come through POST /call: the alias is the only way in.
      REQUIRE_REGISTRATION: 'true',
      EVENTS_FILE: eventsFile,
    },
  })
  t.teardown(() => h.stop())

  const calls = STEMS.map((stem, i) => ({
    stem,
    uuid: randomUUID(),
    capture: loadCapture(stem),
    summary: loadCaptureSummary(stem),
    payload: { from: `200${i}`, to: '5001', uniqueid: `1770758888.${30 + i}`, channel: `PJSIP/200${i}-0000001${i}` },
  }))
  for (const call of calls) {
    const res = await preRegister(httpPort, call.uuid, call.payload)
    t.equal(res.status, 201, `${call.stem}: POST /call registered ${call.uuid}`)
  }
  t.equal(h.app.registrations.size, STEMS.length)

  // All at once, as on a PBX.
  await Promise.all(calls.map((call) => replayCapture(call.capture, { port: h.port, speed: 4, uuidBytes: uuidToBytes(call.uuid) })))
  await avr.waitFor((events) => events.filter((e) => e.type === 'call_ended').length === calls.length, 30000)
  // EVENTS_FILE is flushed on its own schedule: wait for its last line too.
  await waitUntil(() => eventsFileLines(eventsFile).filter((e) => e.type === 'call.ended').length === calls.length, 'EVENTS_FILE has every call.ended')

  t.same(avr.violations, [], 'every request had AVR\'s exact shape, secret and order')
  t.equal(avr.rateLimited, 0, 'within the sample receiver\'s 100 requests per 15 minutes')
  t.ok(avr.requests.every((r) => r.status === 200), 'every request was answered 200 at the first attempt')
  t.same([...new Set(avr.events.map((e) => e.type))].sort(), ['call_ended', 'call_started', 'dtmf_digit', 'transcription'], 'no partials, no conversation events, nothing AVR does not send')
  t.equal(h.receiver.requests.length, 0, 'nothing went anywhere else')
  t.equal(h.app.registrations.size, 0, 'each call took its registration')

  const standard = eventsFileLines(eventsFile)
  for (const call of calls) {
    t.test(call.stem, async (t) => {
      const got = avr.eventsFor(call.uuid)
      const reference = standard.filter((e) => e.call_id === call.uuid)
      t.equal(reference[0]?.type, 'call.started', 'EVENTS_FILE keeps the standard events')
      t.same(reference[0]?.data.metadata, call.payload, 'POST /call\'s payload became the call\'s metadata')
      t.same(
        got.map((e) => ({ type: e.type, payload: e.payload })),
        reference.flatMap(asAvr),
        'the AVR events are the standard events mapped, one for one, in the same order',
      )
      t.equal(got[0]?.type, 'call_started')
      t.equal(got.at(-1)?.type, 'call_ended')
      const session = h.soniox.sessions.find((s) => s.startMessage?.client_reference_id === call.uuid)
      if (!session) return t.fail(`no Soniox session for ${call.uuid}`)
      const texts = got.filter((e) => e.type === 'transcription').map((e) => e.payload.text)
      t.same(texts, session.utterances, 'one transcription per utterance Soniox ended, with its exact text')
      t.ok(texts.length >= 1)
      t.same(got.filter((e) => e.type === 'dtmf_digit').map((e) => e.payload.digit), call.summary.dtmf.map((d) => d.digit), 'the DTMF digits, in order')
      const times = got.map((e) => Date.parse(e.timestamp))
      t.same(times, [...times].sort((a, b) => a - b), 'timestamps in order')
      t.same(
        got.map((e) => e.timestamp),
        reference.flatMap((e) => asAvr(e).map(() => e.time)),
        'each timestamp is its standard event\'s time',
      )
    })
  }
})

t.test('a call whose transcription fails: error with the reason, then call_ended', async (t) => {
  const avr = await startAvrReceiver({ secret: SECRET })
  t.teardown(() => avr.close())
  const h = await startHarness({ env: { WEBHOOK_FORMAT: 'avr', WEBHOOK_URL: avr.url, WEBHOOK_SECRET: SECRET } })
  t.teardown(() => h.stop())
  h.soniox.rejectNextSessions(1, { code: 400, type: 'invalid_request', message: 'Start request is malformed.' })
  const uuid = randomUUID()
  await replayCapture(loadCapture('app-8k-dtmf'), { port: h.port, speed: 4, uuidBytes: uuidToBytes(uuid) })
  const events = (await avr.waitFor((all) => all.some((e) => e.uuid === uuid && e.type === 'call_ended'), 20000)).filter((e) => e.uuid === uuid)
  t.same(avr.violations, [])
  const types = events.map((e) => e.type)
  t.equal(types[0], 'call_started')
  t.same(types.slice(-2), ['error', 'call_ended'], 'the error goes right before call_ended')
  t.notOk(types.includes('transcription'), 'no words: Soniox refused the session')
  t.match(events.at(-2)?.payload, { message: /400 invalid_request: Start request is malformed\..*\(ERR_SONIOX_SERVER_ERROR\)$/ })
  t.same(Object.keys(events.at(-2)?.payload ?? {}), ['message'])
})

t.test('the receiver down across a restart: the spool holds the AVR bodies, which arrive later, in order, byte for byte', async (t) => {
  const spoolDir = mkdtempSync(join(tmpdir(), 'avr-spool-'))
  t.teardown(() => rmSync(spoolDir, { recursive: true, force: true }))
  const down = await startAvrReceiver({ secret: SECRET, respond: () => ({ status: 503, body: 'down for maintenance' }) })
  t.teardown(() => down.close())
  const env = { WEBHOOK_FORMAT: 'avr', WEBHOOK_SECRET: SECRET, SPOOL_DIR: spoolDir, FLUSH_TIMEOUT_MS: '300' }
  const first = await startHarness({ env: { ...env, WEBHOOK_URL: down.url } })
  const uuid = randomUUID()
  await replayCapture(loadCapture('app-8k-dtmf'), { port: first.port, speed: 4, uuidBytes: uuidToBytes(uuid) })
  await waitUntil(() => first.logs.some((l) => l.msg === 'call ended' && l.callId === uuid), 'the call ended', 20000)
  await waitUntil(() => down.requests.length >= 2, 'refused attempts')
  await first.stop()

  // What the spool holds: AVR bodies, with their fields beside them (f records).
  const spooled = readdirSync(spoolDir)
    .filter((name) => name.startsWith('segment-'))
    .flatMap((name) => {
      const content = parseSegment(readFileSync(join(spoolDir, name)))
      return content.status === 'ok' ? content.events.filter((e) => !content.acks.includes(e.id)) : []
    })
  t.ok(spooled.length >= 3, `${spooled.length} events left in the spool`)
  t.ok(spooled.every((e) => e.callId === uuid && JSON.parse(e.bodyText).uuid === uuid), 'AVR bodies of the call')
  t.equal(JSON.parse(spooled[0]?.bodyText ?? '{}').type, 'call_started')
  t.match(readFileSync(join(spoolDir, readdirSync(spoolDir).find((n) => n.startsWith('segment-')) ?? ''), 'utf8'), /^[0-9a-f]{8} f \d+ \{"id":"evt_[^"]+","call_id":"[^"]+","seq":0,"type":"call_started"\}\t\{"uuid":/m)

  const up = await startAvrReceiver({ secret: SECRET })
  t.teardown(() => up.close())
  const second = await startHarness({ env: { ...env, WEBHOOK_URL: up.url } })
  t.teardown(() => second.stop())
  const delivered = (await up.waitFor((all) => all.some((e) => e.uuid === uuid && e.type === 'call_ended'), 20000)).filter((e) => e.uuid === uuid)
  t.same(up.violations, [], 'in order per uuid, AVR\'s shapes, the secret')
  t.equal(delivered.length, spooled.length, 'every spooled event, once')
  t.same(
    up.requests.map((r) => r.rawBody),
    spooled.map((e) => e.bodyText),
    'the very bytes written before the restart',
  )
  t.equal(delivered.at(-1)?.type, 'call_ended')
})

t.test('refused by the receiver: AVR bodies in the dead-letter file, redelivered by dead-letters redeliver with the AVR header, in order', async (t) => {
  const spoolDir = mkdtempSync(join(tmpdir(), 'avr-dead-'))
  t.teardown(() => rmSync(spoolDir, { recursive: true, force: true }))
  const refused = randomUUID()
  const refusing = await startAvrReceiver({ secret: SECRET, respond: (req) => (req.body?.uuid === refused ? { status: 400, body: '{"error":"unknown call"}' } : undefined) })
  t.teardown(() => refusing.close())
  const h = await startHarness({ env: { WEBHOOK_FORMAT: 'avr', WEBHOOK_URL: refusing.url, WEBHOOK_SECRET: SECRET, SPOOL_DIR: spoolDir } })
  await replayCapture(loadCapture('app-8k-dtmf'), { port: h.port, speed: 4, uuidBytes: uuidToBytes(refused) })
  await waitUntil(() => h.logs.some((l) => l.msg === 'call ended' && l.callId === refused), 'the call ended', 20000)
  await waitUntil(() => refusing.requests.some((r) => r.body?.uuid === refused && r.body?.type === 'call_ended'), 'every event tried once', 20000)
  await h.stop()

  const { entries } = await new DeadLetterFile(join(spoolDir, 'dead-letter.jsonl')).read()
  t.ok(entries.length >= 3, `${entries.length} dead letters`)
  t.ok(entries.every((e) => e.callId === refused && e.reason === 'rejected' && e.status === 400), 'each refused event, with its call and status')
  t.same(entries.map((e) => e.type), refusing.requests.filter((r) => r.body?.uuid === refused).map((r) => r.body.type), 'the AVR types')
  t.same(entries.map((e) => e.bodyText), refusing.requests.filter((r) => r.body?.uuid === refused).map((r) => r.rawBody), 'the AVR bodies as they were sent')

  const fresh = await startAvrReceiver({ secret: SECRET })
  t.teardown(() => fresh.close())
  const out: string[] = []
  const code = await deadLetters(['redeliver'], {
    env: { SONIOX_API_KEY: 'unused', WEBHOOK_FORMAT: 'avr', WEBHOOK_URL: fresh.url, WEBHOOK_SECRET: SECRET, SPOOL_DIR: spoolDir },
    stdout: { write: (text: string) => out.push(text) },
    stderr: { write: (text: string) => out.push(text) },
  })
  t.equal(code, 0, out.join(''))
  t.same(fresh.violations, [], 'AVR\'s shapes, the secret header, call_started first and call_ended last')
  t.same(fresh.requests.map((r) => r.rawBody), entries.map((e) => e.bodyText), 'every dead letter, once, in order, byte for byte')
  t.equal((await new DeadLetterFile(join(spoolDir, 'dead-letter.jsonl')).read()).entries.length, 0, 'none left')
})
