/**
 * Bench smoke: the benchmark runs end to end (stand-in, receiver, relay, the built server, the
 * load generator, each in its own process) and every word the stand-in produced reaches the
 * receiver through both the relay and the server; then the same over TLS (wss:// to the stand-in,
 * https:// to the receiver, a CA made for the run) with the server at two SONIOX_AUDIO_BATCH_MS
 * values; then the burst scenario (calls arriving on top of live ones, the event-loop delay probe
 * loaded into both targets); then the conversation scenario (calls, then conversations tapped
 * through the fake ARI, against the server alone). It measures nothing: figures from 3 calls for
 * 6 s are noise; real figures come from `npm run bench` (see bench/RESULTS.md).
 */
import t, { type Test } from 'tap'
import type { ShapeFigures } from '../../bench/conversations.js'
import { main, type Figures } from '../../bench/run.js'

function wordsMatch(t: Test, f: Figures, name: string): void {
  t.ok(f.wordsProduced > 0, `${name}: the stand-in produced words`)
  t.equal(f.wordsDelivered, f.wordsProduced, `${name}: every word produced was delivered`)
  t.equal(f.callsFailed, 0, `${name}: no call failed`)
  t.equal(f.errors, 0, `${name}: no errors`)
  t.ok(f.audioLatencyMs.count > 100, `${name}: audio latency was sampled`)
  t.ok(f.transcriptLatencyMs.count > 0, `${name}: transcript latency was sampled`)
  t.ok(f.wordToWebhookMs.count > 0, `${name}: word-to-webhook latency was sampled`)
}

t.test('the benchmark runs and words match for the relay and the server', async (t) => {
  const { figures, markdown } = await main(['--smoke', '--results', '-'])
  t.same(figures.map((f) => f.target), ['relay', 'server'])
  for (const f of figures) {
    wordsMatch(t, f, f.target)
    t.ok(f.links.soniox.connections >= 3, `${f.target}: a stand-in connection per call`)
    t.equal(f.links.soniox.tlsConnections, 0, `${f.target}: plain ws:// without --tls`)
    t.equal(f.links.webhook.tlsConnections, 0, `${f.target}: plain http:// without --webhook-tls`)
  }
  t.match(markdown, /\| CPU ms per call-second of audio \|/, 'the results table is produced')
  t.match(markdown, /Soniox stand-in over ws:\/\/ \(plain TCP\)/, 'the transport is stated')
})

t.test('over TLS, at two batch values: wss:// and https:// on every connection, words match', async (t) => {
  const { figures, markdown } = await main(['--smoke', '--tls', '--webhook-tls', '--batch-ms', '0,100', '--results', '-'])
  t.same(figures.map((f) => [f.target, f.batchMs]), [['relay', undefined], ['server', 0], ['server', 100]], 'the relay once, the server at each batch value')
  for (const f of figures) {
    const name = f.target === 'server' ? `server at batch ${f.batchMs} ms` : f.target
    wordsMatch(t, f, name)
    t.ok(f.links.soniox.connections >= 3, `${name}: a stand-in connection per call`)
    t.equal(f.links.soniox.tlsConnections, f.links.soniox.connections, `${name}: every session to the stand-in is wss://`)
    t.match(f.links.soniox.cipher, /^TLSv1\.3 /, `${name}: TLS 1.3 to the stand-in`)
    t.ok(f.links.webhook.connections > 0, `${name}: connected to the receiver`)
    t.equal(f.links.webhook.tlsConnections, f.links.webhook.connections, `${name}: every webhook connection is https://`)
  }
  t.match(markdown, /SONIOX_AUDIO_BATCH_MS curve/, 'the batching curve is produced')
  t.match(markdown, /Soniox stand-in over wss:\/\/ \(TLS\), → webhook receiver over https:\/\/ \(TLS\)/, 'the transport is stated')
})

t.test('a burst on top of live calls: event-loop delay read from both targets, words match', async (t) => {
  const { bursts, markdown } = await main(['--smoke', '--burst', '4', '--results', '-'])
  t.same(bursts.map((b) => b.target), ['relay', 'server'])
  for (const b of bursts) {
    t.equal(b.live, 3)
    t.equal(b.burst, 4)
    t.ok(b.loopDelay.burst.count > 100 && b.loopDelay.steady.count > 100, `${b.target}: the probe sampled the event loop before and during the burst`)
    t.ok(b.loopDelay.burst.maxMs >= b.loopDelay.burst.p99Ms, `${b.target}: max >= p99`)
    t.ok(b.liveAudioMs.burst.count > 50, `${b.target}: the live calls' audio was sampled during the burst`)
    t.ok(b.wordsProduced > 0, `${b.target}: words produced`)
    t.equal(b.wordsDelivered, b.wordsProduced, `${b.target}: every word delivered, the burst calls' too`)
    t.equal(b.callsFailed, 0, `${b.target}: no call failed`)
    t.equal(b.errors, 0, `${b.target}: no errors`)
  }
  t.match(markdown, /### A burst of 4 calls within 1 s on top of 3 live calls/, 'the burst table is produced')
})

t.test('conversations against calls: taps through the fake ARI, every word delivered, no violation', async (t) => {
  const { conversations, markdown } = await main(['--smoke', '--conversations', '2', '--results', '-'])
  t.same(conversations.map((f) => [f.shape, f.streams, f.conversations]), [['calls', 4, 0], ['conversations', 4, 2]], '4 calls, then 2 conversations of 2 streams')
  for (const f of conversations) {
    t.ok(f.wordsProduced > 0, `${f.shape}: the stand-in produced words`)
    t.equal(f.wordsDelivered, f.wordsProduced, `${f.shape}: every word produced was delivered`)
    t.equal(f.callsFailed, 0, `${f.shape}: no stream failed`)
    t.equal(f.errors, 0, `${f.shape}: no errors`)
    t.same(f.ari.violations, [], `${f.shape}: the fake ARI saw nothing a real Asterisk would refuse`)
    t.ok(f.audioLatencyMs.count > 100, `${f.shape}: audio latency was sampled`)
  }
  const [calls, conv] = conversations as [ShapeFigures, ShapeFigures]
  t.equal(calls.ari.requests, 0, 'single calls make no ARI request')
  t.equal(conv.conversationsEnded, 2, 'both conversations ended (conversation.ended)')
  t.equal(conv.setupMs.count, 2, 'both taps set up')
  t.ok((conv.ari.byRoute['POST /channels/externalMedia'] ?? 0) === 4, 'an externalMedia channel per leg')
  // The externalMedia DELETEs close the legs' streams, so they are in before the load ends; the
  // snoops' DELETEs that follow are counted once the ARI traffic goes quiet, which a loaded machine may stretch.
  t.ok((conv.ari.byRoute['DELETE /channels/{id}'] ?? 0) >= 2, 'the legs torn down by the server')
  t.match(markdown, /### 4 streams: 4 calls against 2 conversations/, 'the conversation table is produced')
  t.match(markdown, /A conversation costs [\d.]+x a call per second/)
})
