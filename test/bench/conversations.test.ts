/**
 * The conversation scenario's pure parts (bench/conversations.ts, bench/lib/tapped-calls.ts): the
 * external_host a stream connects to, ARI requests counted by route, repeated runs combined, a
 * conversation's cost against a call's, and the table. The scenario run end to end is in
 * test/bench/smoke.test.ts.
 */
import t from 'tap'
import { combineShape, conversationCost, conversationTable, sumTraffic, type ShapeFigures } from '../../bench/conversations.js'
import { routeOf, type AriTraffic } from '../../bench/lib/tapped-calls.js'
import { distribution } from '../../bench/lib/stats.js'

t.test('routeOf: ids replaced, route words kept, so one route of many calls counts once', async (t) => {
  t.equal(routeOf('POST', ['channels', 'bench-1.1', 'snoop']), 'POST /channels/{id}/snoop')
  t.equal(routeOf('POST', ['channels', 'externalMedia']), 'POST /channels/externalMedia')
  t.equal(routeOf('GET', ['channels', 'bench-1.1', 'variable']), 'GET /channels/{id}/variable')
  t.equal(routeOf('POST', ['bridges', 'app-x-in-bridge', 'addChannel']), 'POST /bridges/{id}/addChannel')
  t.equal(routeOf('DELETE', ['channels', 'app-x-in-media']), 'DELETE /channels/{id}')
  t.equal(routeOf('PUT', ['applications', 'audiosocket-soniox', 'eventFilter']), 'PUT /applications/{id}/eventFilter')
})

function traffic(requests: number, byRoute: Record<string, number>, violations: string[] = []): AriTraffic {
  return { requests, byRoute, events: requests * 2, violations }
}

function shape(kind: ShapeFigures['shape'], cpuMs: number, overheadMs: number, options: { audio?: number[]; words?: number; violations?: string[] } = {}): ShapeFigures {
  const conversations = kind === 'conversations' ? 250 : 0
  const audio = options.audio ?? [1]
  const setup = kind === 'conversations' ? [20, 30] : []
  return {
    shape: kind,
    streams: 500,
    conversations,
    cpuPerStreamSecond: cpuMs / 1000,
    mainThreadCpuPerStreamSecond: cpuMs / 2000,
    rssPerStreamKb: 120,
    lifeCpuPerStreamSecond: (cpuMs * 1.1) / 1000,
    lifeCpuMsPerUnit: kind === 'conversations' ? 2 * cpuMs * 60 * 1.1 : cpuMs * 60 * 1.1,
    overheadMsPerUnit: overheadMs,
    audioLatencyMs: distribution(audio),
    setupMs: distribution(setup),
    ari: kind === 'conversations' ? traffic(4250, { 'POST /channels/{id}/snoop': 500, 'GET /bridges': 250 }, options.violations) : traffic(0, {}),
    conversationsEnded: conversations,
    wordsProduced: options.words ?? 1000,
    wordsDelivered: options.words ?? 1000,
    callsFailed: 0,
    errors: 0,
    maxLoadLatenessMs: 3,
    runs: 1,
    samples: { audio, setup },
  }
}

t.test('sumTraffic and combineShape: ARI traffic summed by route, median CPU, samples pooled, counts summed', async (t) => {
  const s = sumTraffic([traffic(3, { a: 1, b: 2 }), traffic(4, { b: 4 }, ['GET /nope: no such ARI route'])])
  t.same(s, { requests: 7, byRoute: { a: 1, b: 6 }, events: 14, violations: ['GET /nope: no such ARI route'] })

  const c = combineShape([shape('conversations', 0.4, 30, { audio: [1, 2] }), shape('conversations', 0.6, 10, { audio: [3] }), shape('conversations', 0.5, 20, { audio: [4, 5] })])
  t.equal(c.runs, 3)
  t.equal(c.cpuPerStreamSecond, 0.0005, 'the median run\'s CPU')
  t.equal(c.overheadMsPerUnit, 20)
  t.equal(c.audioLatencyMs.count, 5, 'every sample')
  t.equal(c.setupMs.count, 6)
  t.equal(c.ari.requests, 3 * 4250)
  t.equal(c.ari.byRoute['POST /channels/{id}/snoop'], 1500)
  t.equal(c.conversationsEnded, 750)
  t.equal(c.wordsProduced, 3000)
  t.throws(() => combineShape([]), /at least one run/)
})

t.test('conversationCost: per conversation-second against per call-second, and the control work beyond two calls', async (t) => {
  const cost = conversationCost(shape('calls', 0.3, 5), shape('conversations', 0.33, 16))
  t.equal(cost.perSecond.toFixed(4), '2.2000', 'two streams at 0.33 against one at 0.3')
  t.equal(cost.perSecondWholeLife.toFixed(4), '2.2000')
  t.equal(cost.controlMsPerConversation, 6, '16 ms beyond its streaming, less two calls\' 5 ms')
  t.equal(cost.controlShare.toFixed(5), (6 / (2 * 0.33 * 60 * 1.1)).toFixed(5), 'of the conversation\'s whole-life CPU')
})

t.test('conversationTable: the target line, the ARI routes per conversation, violations shown', async (t) => {
  const calls = shape('calls', 0.3, 5)
  const met = conversationTable(calls, shape('conversations', 0.29, 16), [calls], [])
  t.match(met, /### 500 streams: 500 calls against 250 conversations/)
  t.match(met, /\| CPU ms per call-second \/ per conversation-second \| 0\.300 \| 0\.580 \| 1\.93x \|/)
  t.match(met, /A conversation costs 1\.93x a call per second \(target: at most 2\.0x, met\)/)
  t.match(met, /ARI requests per conversation, by route: POST \/channels\/\{id\}\/snoop 2\.00, GET \/bridges 1\.00\./)
  t.match(met, /\| ARI requests per conversation \(total over the run for calls\) \| 0\.00 \| 17\.00 \|/)
  t.match(met, /\| fake-ARI violations \| 0 \| 0 \|/)
  t.notMatch(met, /Fake-ARI violations:/)
  const missed = conversationTable(calls, shape('conversations', 0.31, 16, { violations: ['POST /ari/channels/x/snoop: unknown foo'] }), [calls], [])
  t.match(missed, /target: at most 2\.0x, missed/)
  t.match(missed, /\| fake-ARI violations \| 0 \| 1 \|/)
  t.match(missed, /Fake-ARI violations: POST \/ari\/channels\/x\/snoop: unknown foo\./)
})
