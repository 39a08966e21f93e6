/**
 * Bench smoke: the benchmark runs end to end (stand-in, receiver, relay, the built server, the
 * load generator, each in its own process) and every word the stand-in produced reaches the
 * receiver through both the relay and the server. It measures nothing: figures from 3 calls
 * for 6 s are noise; real figures come from `npm run bench` (see bench/RESULTS.md).
 */
import t from 'tap'
import { main } from '../../bench/run.js'

t.test('the benchmark runs and words match for the relay and the server', async (t) => {
  const { figures, markdown } = await main(['--smoke', '--results', '-'])
  t.same(figures.map((f) => f.target), ['relay', 'server'])
  for (const f of figures) {
    t.ok(f.wordsProduced > 0, `${f.target}: the stand-in produced words`)
    t.equal(f.wordsDelivered, f.wordsProduced, `${f.target}: every word produced was delivered`)
    t.equal(f.callsFailed, 0, `${f.target}: no call failed`)
    t.equal(f.errors, 0, `${f.target}: no errors`)
    t.ok(f.audioLatencyMs.count > 100, `${f.target}: audio latency was sampled`)
    t.ok(f.transcriptLatencyMs.count > 0, `${f.target}: transcript latency was sampled`)
  }
  t.match(markdown, /\| CPU ms per call-second of audio \|/, 'the results table is produced')
})
