/**
 * src/webhook/spool-format.ts: the on-disk format (records, checksums, header, torn and damaged
 * records), pure: bytes in, records out.
 */
import t from 'tap'
import { ackRecord, crc32, encodeRecord, eventRecord, parseSegment, segmentHeader } from '../../src/webhook/spool-format.js'

/** An envelope as the sink serialises it; `text` lets a test put non-ASCII into the body. */
function body(callId: string, seq: number, text = `words ${seq}`): string {
  return JSON.stringify({ id: `evt_${callId}_${seq}`, type: 'transcript.final', call_id: callId, seq, time: '2026-11-20T22:00:00.000Z', data: { text } })
}

t.test('CRC-32 is the standard one, so spool files stay readable across versions', async (t) => {
  // The check value of CRC-32/ISO-HDLC, the one zlib, PNG and Ethernet use (and earlier versions'
  // own table implementation wrote).
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926)
  t.equal(crc32(Buffer.alloc(0)), 0)
})

t.test('record encoding: checksum, space, body, newline', async (t) => {
  const line = encodeRecord('a "evt_1"')
  const text = line.toString('utf8')
  t.match(text, /^[0-9a-f]{8} a "evt_1"\n$/)
  t.equal(Number.parseInt(text.slice(0, 8), 16), crc32(Buffer.from('a "evt_1"')))
  t.same(ackRecord('evt_1'), line, 'an ack is `a <id as JSON>`')
  const event = eventRecord(1_700_000_000_123, body('c1', 0)).toString('utf8')
  t.equal(event.slice(9), `e 1700000000123 ${body('c1', 0)}\n`, 'an event is `e <enqueuedAtMs> <envelope>`')
  t.equal(segmentHeader().toString(), 'audiosocket-soniox-spool 1\n', 'the header names the format and its version')
})

t.test('parseSegment reads events and acks back byte for byte', async (t) => {
  const bodies = [body('c1', 0), body('c1', 1, 'é ünïcödé 🎧 "quoted" \\ back\nslash'), body('c2', 0)]
  const bytes = Buffer.concat([
    segmentHeader(),
    eventRecord(1000, bodies[0] as string),
    eventRecord(2000, bodies[1] as string),
    ackRecord('evt_c1_0'),
    eventRecord(3000, bodies[2] as string),
  ])
  const parsed = parseSegment(bytes)
  if (parsed.status !== 'ok') return t.fail(`status ${parsed.status}`)
  t.same(
    parsed.events.map((e) => [e.id, e.callId, e.seq, e.type, e.enqueuedAtMs]),
    [
      ['evt_c1_0', 'c1', 0, 'transcript.final', 1000],
      ['evt_c1_1', 'c1', 1, 'transcript.final', 2000],
      ['evt_c2_0', 'c2', 0, 'transcript.final', 3000],
    ],
  )
  t.same(
    parsed.events.map((e) => e.bodyText),
    bodies,
    'the exact bytes that were POSTed, non-ASCII and escapes included',
  )
  t.same(parsed.acks, ['evt_c1_0'])
  t.equal(parsed.damaged, 0)
  t.equal(parsed.tornTail, false)
})

t.test('a half-written last record is detected and ignored, at every cut point', async (t) => {
  const good = Buffer.concat([segmentHeader(), eventRecord(1, body('c1', 0)), eventRecord(2, body('c1', 1))])
  const last = eventRecord(3, body('c1', 2, 'the record a crash cut short'))
  let checked = 0
  for (let cut = 0; cut < last.length; cut++) {
    const parsed = parseSegment(Buffer.concat([good, last.subarray(0, cut)]))
    if (parsed.status !== 'ok') return t.fail(`cut ${cut}: status ${parsed.status}`)
    const intact = parsed.events.length === 2 && parsed.damaged === 0 && parsed.tornTail === (cut > 0)
    if (!intact) return t.fail(`cut at byte ${cut} of ${last.length}: ${JSON.stringify(parsed)}`)
    checked++
  }
  t.equal(checked, last.length, `the two complete records survive every one of ${last.length} cut points`)
  const whole = parseSegment(Buffer.concat([good, last]))
  t.equal(whole.status === 'ok' && whole.events.length, 3, 'with its newline the record counts')
})

t.test('after a torn record, the separator newline keeps the next record whole', async (t) => {
  const torn = eventRecord(3, body('c1', 2)).subarray(0, 40)
  const bytes = Buffer.concat([segmentHeader(), eventRecord(1, body('c1', 0)), torn, Buffer.from('\n'), ackRecord('evt_c1_0'), eventRecord(4, body('c1', 3))])
  const parsed = parseSegment(bytes)
  if (parsed.status !== 'ok') return t.fail(parsed.status)
  t.same(
    parsed.events.map((e) => e.seq),
    [0, 3],
  )
  t.same(parsed.acks, ['evt_c1_0'])
  t.equal(parsed.damaged, 1, 'the fragment is one damaged line')
  t.equal(parsed.tornTail, false)
})

t.test('a flipped byte fails the checksum of that record only', async (t) => {
  const records = [eventRecord(1, body('c1', 0)), eventRecord(2, body('c1', 1)), eventRecord(3, body('c1', 2))]
  const bytes = Buffer.concat([segmentHeader(), ...records])
  const offset = segmentHeader().length + (records[0]?.length ?? 0) + 30
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x01
  const parsed = parseSegment(bytes)
  if (parsed.status !== 'ok') return t.fail(parsed.status)
  t.same(
    parsed.events.map((e) => e.seq),
    [0, 2],
  )
  t.equal(parsed.damaged, 1)
})

t.test('headers: empty and torn headers, other versions, foreign files', async (t) => {
  t.same(parseSegment(Buffer.alloc(0)), { status: 'empty' })
  t.same(parseSegment(segmentHeader().subarray(0, 10)), { status: 'empty' }, 'a header cut short: nothing was ever written after it')
  t.same(parseSegment(segmentHeader()), { status: 'ok', events: [], acks: [], damaged: 0, tornTail: false })
  t.match(parseSegment(Buffer.from('audiosocket-soniox-spool 2\nwhatever\n')), { status: 'unsupported', header: 'audiosocket-soniox-spool 2' })
  t.match(parseSegment(Buffer.from('hello')), { status: 'unsupported' })
})

/** An AVR body (WEBHOOK_FORMAT=avr): it carries no id, call_id or seq of its own. */
function avrBody(uuid: string, text: string): string {
  return JSON.stringify({ uuid, type: 'transcription', timestamp: '2026-11-20T22:00:00.000Z', payload: { role: 'user', text } })
}

t.test('an event whose body does not carry its fields (AVR) is an f record: fields, a tab, the body', async (t) => {
  const tricky = 'tab\there, "quotes", spaces  and é 🎧 {"id":"evt_fake","seq":9}\n'
  const bodies = [avrBody('c1', 'hello'), avrBody('c1', tricky)]
  const record = eventRecord(1000, bodies[0] as string, { id: 'evt_1', callId: 'c1', seq: 4, type: 'transcription' }).toString('utf8')
  t.equal(record.slice(9), `f 1000 {"id":"evt_1","call_id":"c1","seq":4,"type":"transcription"}\t${bodies[0]}\n`)
  t.notOk((bodies[1] as string).includes('\t'), 'JSON never carries a raw tab: the first tab ends the fields')

  const bytes = Buffer.concat([
    segmentHeader(),
    eventRecord(1000, bodies[0] as string, { id: 'evt_1', callId: 'c1', seq: 4, type: 'transcription' }),
    eventRecord(2000, body('c2', 0)),
    eventRecord(3000, bodies[1] as string, { id: 'evt_1.error', callId: 'c1', seq: 5, type: 'error' }),
    ackRecord('evt_c2_0'),
  ])
  const parsed = parseSegment(bytes)
  if (parsed.status !== 'ok') return t.fail(`status ${parsed.status}`)
  t.same(
    parsed.events.map((e) => [e.id, e.callId, e.seq, e.type, e.enqueuedAtMs]),
    [
      ['evt_1', 'c1', 4, 'transcription', 1000],
      ['evt_c2_0', 'c2', 0, 'transcript.final', 2000],
      ['evt_1.error', 'c1', 5, 'error', 3000],
    ],
    'the fields come from beside the body, the standard ones from the envelope',
  )
  t.same(parsed.events.map((e) => e.bodyText), [bodies[0], body('c2', 0), bodies[1]], 'the exact bytes that were POSTed')
  t.equal(parsed.damaged, 0)
})

t.test('an f record without its tab, with bad fields or a body that is not JSON counts as damaged', async (t) => {
  const records = [
    encodeRecord(`f 1 {"id":"evt_1","call_id":"c","seq":0,"type":"x"} ${avrBody('c', 'no tab')}`),
    encodeRecord(`f 1 {"id":"evt_2","call_id":"c","seq":"0","type":"x"}\t${avrBody('c', 'seq is text')}`),
    encodeRecord(`f 1 {"id":"evt_3","seq":0}\t${avrBody('c', 'no call_id')}`),
    encodeRecord('f 1 {"id":"evt_4","call_id":"c","seq":0,"type":"x"}\tnot json'),
    encodeRecord('f 1 {"id":"evt_5","call_id":"c","seq":0,"type":"x"}\t"a string"'),
    encodeRecord(`f x {"id":"evt_6","call_id":"c","seq":0,"type":"x"}\t${avrBody('c', 'bad time')}`),
  ]
  const parsed = parseSegment(Buffer.concat([segmentHeader(), ...records, eventRecord(1, avrBody('c', 'good'), { id: 'evt_7', callId: 'c', seq: 1, type: 'x' })]))
  if (parsed.status !== 'ok') return t.fail(`status ${parsed.status}`)
  t.equal(parsed.damaged, records.length)
  t.same(parsed.events.map((e) => e.id), ['evt_7'])
})
