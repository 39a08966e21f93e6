/**
 * `audiosocket-soniox check` with WEBHOOK_FORMAT=avr: the test event goes in AVR's envelope with
 * AVR's secret header, so an AVR receiver (which refuses any other shape) answers it 2xx.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startFakeSoniox } from '../support/fake-soniox.js'
import { spawnCli } from '../support/spawn-server.js'
import { avrShapeProblems, startAvrReceiver } from '../support/avr-receiver.js'

t.test('WEBHOOK_FORMAT=avr: an AVR-format test event with X-AVR-WEBHOOK-SECRET, answered 200', async (t) => {
  const soniox = await startFakeSoniox()
  // AVR's sample receiver logs a type it does not know and answers 200; the strict one would refuse it.
  const receiver = await startAvrReceiver({ secret: 'avr-secret', respond: (req) => (req.body?.type === 'webhook_test' ? { status: 200, body: '{"success":true}' } : undefined) })
  const spoolDir = mkdtempSync(join(tmpdir(), 'audiosocket-soniox-check-avr-'))
  t.teardown(async () => {
    await receiver.close()
    await soniox.close()
    rmSync(spoolDir, { recursive: true, force: true })
  })
  const p = spawnCli(['check'], {
    SONIOX_API_KEY: 'test-key',
    SONIOX_WEBSOCKET_URL: soniox.url,
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: 'avr-secret',
    WEBHOOK_FORMAT: 'avr',
    SPOOL_DIR: join(spoolDir, 'spool'),
  })
  t.equal(await p.exited, 0, p.stdoutLines.join('\n'))
  t.ok(
    p.stdoutLines.some((line) => /^ok {4}webhook {2}http:\/\/127\.0\.0\.1:\d+\/events answered 200 to an AVR-format test event \(with X-AVR-WEBHOOK-SECRET\)$/.test(line)),
    p.stdoutLines.join('\n'),
  )
  t.equal(receiver.requests.length, 1)
  const request = receiver.requests[0]
  t.equal(request?.headers['x-avr-webhook-secret'], 'avr-secret')
  t.notOk(request?.headers['webhook-signature'], 'no Standard Webhooks signature')
  t.same(Object.keys(request?.body ?? {}), ['uuid', 'type', 'timestamp', 'payload'])
  t.match(request?.body, { uuid: '00000000-0000-0000-0000-000000000000', type: 'webhook_test', payload: { message: /test event/, version: String } })
  // The strict receiver knows no webhook_test (AVR has none): it names only that.
  t.same(avrShapeProblems(request?.body), ['type "webhook_test" is not one of AVR\'s'])
})
