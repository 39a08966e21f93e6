/**
 * bench/run.ts combine() and bench/lib/stats.ts: how repeated benchmark runs become one row; the
 * word-to-webhook latency; the --batch-ms list and its curve table. Pure functions; no processes
 * are started.
 */
import t from 'tap'
import { combine, curveTable, parseBatchMs, wordToWebhookLatencies, type Figures } from '../../bench/run.js'
import { distribution, median } from '../../bench/lib/stats.js'

function run(cpu: number, rss: number, audio: number[], transcript: number[], words: number, lateness: number, tls = 0): Figures {
  return {
    target: 'server',
    calls: 100,
    cpuPerCallSecond: cpu,
    mainThreadCpuPerCallSecond: cpu / 2,
    wakeupsPerSecond: rss * 10,
    rssPerCallKb: rss,
    audioLatencyMs: distribution(audio),
    transcriptLatencyMs: distribution(transcript),
    wordToWebhookMs: distribution(transcript.map((ms) => ms + 20)),
    links: {
      soniox: { connections: 100, tlsConnections: tls, cipher: tls > 0 ? 'TLSv1.3 TLS_AES_256_GCM_SHA384' : undefined },
      webhook: { connections: 64, tlsConnections: 0 },
    },
    wordsProduced: words,
    wordsDelivered: words - 1,
    callsFailed: 0,
    errors: 1,
    maxLoadLatenessMs: lateness,
    runs: 1,
    samples: { audio, transcript, wordToWebhook: transcript.map((ms) => ms + 20) },
  }
}

t.test('median', async (t) => {
  t.equal(median([3, 1, 2]), 2, 'odd count: the middle value')
  t.equal(median([4, 1, 3, 2]), 2.5, 'even count: the mean of the two middle values')
  t.ok(Number.isNaN(median([])), 'no values: NaN')
})

t.test('combine: median CPU and RSS, pooled latency samples, summed counts, worst lateness', async (t) => {
  const runs = [
    run(0.002, 300, [1, 2], [5], 10, 3),
    run(0.009, 100, [3], [1, 9], 20, 7, 100),
    run(0.003, 200, [4, 10], [2], 30, 1, 100),
  ]
  const c = combine(runs)
  t.equal(c.cpuPerCallSecond, 0.003, 'a noisy run (0.009) does not move the CPU figure')
  t.equal(c.mainThreadCpuPerCallSecond, 0.0015, 'the main-thread share is the median of its own')
  t.equal(c.rssPerCallKb, 200)
  t.equal(c.wakeupsPerSecond, 2000, 'wake-ups: the median run')
  t.equal(c.audioLatencyMs.count, 5, 'all audio samples pooled')
  t.equal(c.audioLatencyMs.max, 10)
  t.same(c.transcriptLatencyMs, distribution([5, 1, 9, 2]), 'transcript latency over the pooled samples')
  t.same(c.wordToWebhookMs, distribution([25, 21, 29, 22]), 'word-to-webhook latency over the pooled samples')
  t.same(c.links.soniox, { connections: 300, tlsConnections: 200, cipher: 'TLSv1.3 TLS_AES_256_GCM_SHA384' }, 'connections summed: a run without TLS shows')
  t.same(c.links.webhook, { connections: 192, tlsConnections: 0, cipher: undefined })
  t.equal(c.wordsProduced, 60)
  t.equal(c.wordsDelivered, 57, 'a word lost in any run shows in the sum')
  t.equal(c.errors, 3)
  t.equal(c.maxLoadLatenessMs, 7)
  t.equal(c.runs, 3)
})

t.test('combine: one run is returned as it is; none is an error', async (t) => {
  const one = run(0.002, 300, [1], [1], 10, 3)
  t.equal(combine([one]), one)
  t.throws(() => combine([]), /at least one run/)
})

t.test('word to webhook: from the write carrying the byte that made the utterance end due, to its final', async (t) => {
  // Writes of 320 bytes (a 20 ms frame) every 20 ms from t=1000; the UUID write carries no audio.
  const log: Array<[number, number]> = [[0, 999]]
  for (let i = 1; i <= 100; i++) log.push([i * 320, 1000 + i * 20])
  const standIn = {
    connections: 1,
    link: { connections: 1, tlsConnections: 0 },
    calls: {
      a: { wordsProduced: 8, utteranceEnds: [[0, 1500, 6400], [1, 1900, 6500], [2, 2000, 40000]] as Array<[number, number, number]> },
      b: { wordsProduced: 4, utteranceEnds: [[0, 1500, 6400]] as Array<[number, number, number]> },
    },
  }
  const receiver = { requests: 3, callsEnded: 0, conversationsEnded: 0, link: { connections: 1, tlsConnections: 0 }, finals: { a: [[0, 4, 1410], [1, 4, 1480]] as Array<[number, number, number]> } }
  const latencies = wordToWebhookLatencies({ a: log }, standIn, receiver)
  // Byte 6400 ends write 20 (t=1400), byte 6500 is in write 21 (t=1420); byte 40000 was never written;
  // call b has no write log (not sampled).
  t.same(latencies, [10, 60])
})

t.test('--batch-ms: whole milliseconds, at least 0, no repeats', async (t) => {
  t.same(parseBatchMs('0,20,40,60,100,120'), [0, 20, 40, 60, 100, 120])
  t.same(parseBatchMs('60'), [60])
  t.throws(() => parseBatchMs('0,-20'), /whole milliseconds of at least 0/)
  t.throws(() => parseBatchMs('0,,20'), /whole milliseconds/)
  t.throws(() => parseBatchMs('12.5'), /whole milliseconds/)
  t.throws(() => parseBatchMs('20,20'), /twice/)
})

t.test('the batching curve: a row per batch value, CPU and added latency against the relay', async (t) => {
  const relay = { ...run(0.002, 100, [1], [1], 10, 1), target: 'relay' as const, wordToWebhookMs: distribution([10, 10, 10]) }
  const at0 = { ...run(0.003, 100, [1], [1], 10, 1), batchMs: 0, wordToWebhookMs: distribution([11, 11, 11]) }
  const at120 = { ...run(0.001, 100, [1], [1], 10, 1), batchMs: 120, wordToWebhookMs: distribution([70, 100, 130]) }
  const markdown = curveTable(100, relay, [at0, at120])
  t.match(markdown, /SONIOX_AUDIO_BATCH_MS curve/)
  t.match(markdown, /\| relay \(every frame\) \| 2\.000 \|/)
  t.match(markdown, /\| 0 \| 3\.000 \| 1\.500 \| 1\.50x \|/, 'batch 0: 1.5x the relay')
  t.match(markdown, /\| 120 \| 1\.000 \| 0\.500 \| 0\.50x \| .* \| 100\.00 \| 130\.00 \| 90\.00 \| 120\.00 \| 9 \/ 10 \|/, 'batch 120: half the relay, 90 ms added at p50, 120 at p99')
})
