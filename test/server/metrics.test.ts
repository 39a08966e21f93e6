/**
 * src/server/metrics.ts: the exposition text exactly as Prometheus reads it, and the arithmetic of
 * counters, gauges and histograms.
 */
import t from 'tap'
import { Registry, formatNumber } from '../../src/server/metrics.js'
import { parseExposition } from '../support/prometheus.js'

t.test('counters, gauges and a histogram render in the text format, families in registration order', async (t) => {
  const r = new Registry()
  const calls = r.counter('calls_total', 'Calls ended.', ['reason'])
  const hangup = calls.child('hangup')
  hangup.inc()
  hangup.inc(2)
  calls.child('error').inc()
  const active = r.gauge('calls_active', 'Calls now.')
  active.inc()
  active.inc()
  active.dec()
  r.gauge('queue_depth', 'Read at scrape time.', [], () => 7)
  const h = r.histogram('connect_seconds', 'Connect time.', [0.1, 1, 0.5])
  for (const v of [0.05, 0.1, 0.3, 2]) h.observe(v)

  t.equal(
    r.render(),
    [
      '# HELP calls_total Calls ended.',
      '# TYPE calls_total counter',
      'calls_total{reason="hangup"} 3',
      'calls_total{reason="error"} 1',
      '# HELP calls_active Calls now.',
      '# TYPE calls_active gauge',
      'calls_active 1',
      '# HELP queue_depth Read at scrape time.',
      '# TYPE queue_depth gauge',
      'queue_depth 7',
      '# HELP connect_seconds Connect time.',
      '# TYPE connect_seconds histogram',
      'connect_seconds_bucket{le="0.1"} 2',
      'connect_seconds_bucket{le="0.5"} 3',
      'connect_seconds_bucket{le="1"} 3',
      'connect_seconds_bucket{le="+Inf"} 4',
      'connect_seconds_sum 2.45',
      'connect_seconds_count 4',
      '',
    ].join('\n'),
    'a value equal to a bound falls in that bucket (le); buckets are sorted and cumulative',
  )
  const parsed = parseExposition(r.render())
  t.equal(parsed.value('calls_total', { reason: 'hangup' }), 3)
})

t.test('a labelled child is resolved once and then is a plain field', async (t) => {
  const r = new Registry()
  const frames = r.counter('frames_total', 'Frames.', ['kind'])
  const audio = frames.child('audio')
  t.equal(frames.child('audio'), audio, 'the same series object every time')
  for (let i = 0; i < 1000; i++) audio.value++
  t.match(r.render(), /frames_total\{kind="audio"\} 1000\n/)
})

t.test('label values and help text are escaped', async (t) => {
  const r = new Registry()
  r.counter('odd_total', 'Help with \\ and\nnewline.', ['v']).child('a "quoted" \\ value\nnext').inc()
  const text = r.render()
  t.match(text, /# HELP odd_total Help with \\\\ and\\nnewline\./)
  t.match(text, /odd_total\{v="a \\"quoted\\" \\\\ value\\nnext"\} 1/)
  t.equal(parseExposition(text).samples[0]?.labels.v, 'a "quoted" \\ value\nnext', 'a strict reader gets the original value back')
})

t.test('an unlabelled counter exists at 0 before its first increment; a labelled one has no series until used', async (t) => {
  const r = new Registry()
  r.counter('idle_total', 'Never incremented.')
  r.counter('by_reason_total', 'No child yet.', ['reason'])
  const text = r.render()
  t.match(text, /^idle_total 0$/m)
  t.notMatch(text, /^by_reason_total/m)
})

t.test('programming mistakes are refused at registration', async (t) => {
  const r = new Registry()
  r.counter('dup_total', 'x')
  t.throws(() => r.counter('dup_total', 'x'), /registered twice/)
  t.throws(() => r.counter('bad-name', 'x'), /invalid metric name/)
  t.throws(() => r.counter('ok_total', 'x', ['le']), /invalid label name/)
  t.throws(() => r.histogram('h', 'x', []), /buckets/)
  t.throws(() => r.counter('lab_total', 'x', ['a']).child(), /takes 1 label value/)
  t.throws(() => r.gauge('g', 'x', ['a'], () => 1), /no labels/)
})

t.test('special values', async (t) => {
  t.equal(formatNumber(Infinity), '+Inf')
  t.equal(formatNumber(-Infinity), '-Inf')
  t.equal(formatNumber(Number.NaN), 'NaN')
  t.equal(formatNumber(0.25), '0.25')
})

t.test('collected series: read at each scrape after the beforeCollect hooks; undefined leaves the sample out', async (t) => {
  const r = new Registry()
  let reading = 0
  let snapshot = 0
  r.beforeCollect(() => {
    reading++
    snapshot = reading * 10
  })
  r.counter('cpu_seconds_total', 'Read from a source.', [], () => snapshot + 0.5)
  r.gauge('half', 'The same reading.', [], () => snapshot / 2)
  let present = true
  r.gauge('sometimes', 'Not always readable.', [], () => (present ? 3 : undefined))
  t.equal(
    r.render(),
    [
      '# HELP cpu_seconds_total Read from a source.',
      '# TYPE cpu_seconds_total counter',
      'cpu_seconds_total 10.5',
      '# HELP half The same reading.',
      '# TYPE half gauge',
      'half 5',
      '# HELP sometimes Not always readable.',
      '# TYPE sometimes gauge',
      'sometimes 3',
      '',
    ].join('\n'),
  )
  present = false
  const text = r.render()
  t.equal(reading, 2, 'the hook ran once per scrape')
  t.match(text, /^cpu_seconds_total 20\.5$/m)
  t.match(text, /^half 10$/m, 'both series from the same reading')
  t.match(text, /^# TYPE sometimes gauge$/m, 'an unreadable source keeps its HELP and TYPE')
  t.notMatch(text, /^sometimes /m, 'but has no sample')
  t.doesNotThrow(() => parseExposition(text))
  t.throws(() => r.counter('labelled_total', 'x', ['a'], () => 1), { code: 'ERR_METRICS_DEFINITION' }, 'a collected counter has no labels')
})
