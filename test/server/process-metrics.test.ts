/**
 * src/server/process-metrics.ts: the process series under prom-client's names, read at scrape time:
 * real values from this process (Linux /proc where there is one), parsing of /proc files from a
 * fixture directory, families left out where /proc is absent, and the event-loop delay figures
 * covering the time since the previous scrape.
 */
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Registry } from '../../src/server/metrics.js'
import { registerProcessMetrics } from '../../src/server/process-metrics.js'
import { createServiceMetrics } from '../../src/server/service-metrics.js'
import { parseExposition, type Exposition } from '../support/prometheus.js'

const linux = process.platform === 'linux'

function scrape(r: Registry): Exposition {
  return parseExposition(r.render())
}

function busy(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // block the event loop
  }
}

t.test('this process: every series present with sane values, typed as prom-client types them', async (t) => {
  const r = new Registry()
  const pm = registerProcessMetrics(r)
  t.teardown(() => pm.close())
  busy(20)
  const m = scrape(r)
  const user = m.value('process_cpu_user_seconds_total')
  const system = m.value('process_cpu_system_seconds_total')
  t.ok(user > 0, `user CPU ${user} s`)
  t.ok(system >= 0)
  t.ok(Math.abs(m.value('process_cpu_seconds_total') - (user + system)) < 1e-9, 'total = user + system, from one reading')
  for (const name of ['process_cpu_user_seconds_total', 'process_cpu_system_seconds_total', 'process_cpu_seconds_total']) t.equal(m.types.get(name), 'counter', name)

  const start = m.value('process_start_time_seconds')
  const now = Date.now() / 1000
  const uptime = process.uptime()
  t.ok(start <= now && start >= now - uptime - 1, `start time ${start} within this process's lifetime (${uptime.toFixed(1)} s)`)
  t.ok(m.value('process_resident_memory_bytes') > 10 * 1024 * 1024, 'RSS above 10 MB (a Node process)')
  t.ok(m.value('nodejs_heap_size_used_bytes') > 0)
  t.ok(m.value('nodejs_heap_size_used_bytes') <= m.value('nodejs_heap_size_total_bytes'))
  t.ok(m.value('nodejs_external_memory_bytes') >= 0)
  t.equal(m.value('nodejs_version_info', { version: process.version, major: process.versions.node.split('.')[0] as string, minor: process.versions.node.split('.')[1] as string, patch: process.versions.node.split('.')[2] as string }), 1)
  for (const figure of ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99']) {
    const v = m.value(`nodejs_eventloop_lag_${figure}_seconds`)
    t.ok(Number.isFinite(v) && v >= 0, `nodejs_eventloop_lag_${figure}_seconds = ${v}`)
    t.equal(m.types.get(`nodejs_eventloop_lag_${figure}_seconds`), 'gauge')
  }

  if (!linux) {
    t.notOk(m.types.has('process_open_fds'), 'no /proc: no fd series')
    return
  }
  const open = m.value('process_open_fds')
  const max = m.value('process_max_fds')
  t.ok(open >= 3, `open fds ${open} >= 3 (stdin, stdout, stderr)`)
  t.ok(max >= open, `max fds ${max} >= open fds`)
  t.ok(m.value('process_virtual_memory_bytes') >= m.value('process_resident_memory_bytes'), 'virtual >= resident')
  t.ok(m.value('process_heap_bytes') > 0)
})

t.test('CPU time only grows; the start time stays', async (t) => {
  const r = new Registry()
  const pm = registerProcessMetrics(r)
  t.teardown(() => pm.close())
  const before = scrape(r)
  busy(30)
  const after = scrape(r)
  t.ok(after.value('process_cpu_seconds_total') > before.value('process_cpu_seconds_total'), 'busy work is counted')
  t.equal(after.value('process_start_time_seconds'), before.value('process_start_time_seconds'))
})

t.test('open fds follow files opened and closed', { skip: linux ? false : 'no /proc/self/fd here' }, async (t) => {
  const { openSync, closeSync } = await import('node:fs')
  const r = new Registry()
  const pm = registerProcessMetrics(r)
  t.teardown(() => pm.close())
  const before = scrape(r).value('process_open_fds')
  const fds = [0, 1, 2, 3, 4].map(() => openSync(process.execPath, 'r'))
  const during = scrape(r).value('process_open_fds')
  for (const fd of fds) closeSync(fd)
  const after = scrape(r).value('process_open_fds')
  t.equal(during - before, 5, 'five more while open (readdir\'s own fd not counted)')
  t.equal(after, before)
})

t.test('/proc files parsed from a fixture: kB to bytes, the soft limit, unlimited as +Inf', async (t) => {
  const dir = t.testdir({
    status: ['Name:\tnode', 'VmPeak:\t 1200000 kB', 'VmSize:\t 1100000 kB', 'VmRSS:\t   51200 kB', 'VmData:\t  204800 kB', 'Threads:\t11', ''].join('\n'),
    limits: [
      'Limit                     Soft Limit           Hard Limit           Units     ',
      'Max processes             63704                63704                processes ',
      'Max open files            1024                 524288               files     ',
      '',
    ].join('\n'),
  })
  mkdirSync(join(dir, 'fd'))
  for (const fd of ['0', '1', '2', '5', '7', '9', '12']) writeFileSync(join(dir, 'fd', fd), '')
  const r = new Registry()
  const pm = registerProcessMetrics(r, { procDir: dir, rss: () => 51200 * 1024, startTimeMs: 1_700_000_000_500 })
  t.teardown(() => pm.close())
  let m = scrape(r)
  t.equal(m.value('process_virtual_memory_bytes'), 1100000 * 1024)
  t.equal(m.value('process_heap_bytes'), 204800 * 1024)
  t.equal(m.value('process_resident_memory_bytes'), 51200 * 1024)
  t.equal(m.value('process_open_fds'), 7, 'one per entry of fd/')
  t.equal(m.value('process_max_fds'), 1024, 'the soft limit, not the hard one')
  t.equal(m.value('process_start_time_seconds'), 1_700_000_000.5)

  writeFileSync(join(dir, 'limits'), 'Max open files            unlimited            unlimited            files     \n')
  writeFileSync(join(dir, 'fd', '13'), '')
  m = scrape(r)
  t.equal(m.value('process_max_fds'), Infinity, 'read at each scrape: unlimited is +Inf')
  t.match(r.render(), /^process_max_fds \+Inf$/m)
  t.equal(m.value('process_open_fds'), 8, 'and the fds counted again')
})

t.test('without /proc (not Linux): the Linux-only families are not there at all, the rest are', async (t) => {
  const r = new Registry()
  const pm = registerProcessMetrics(r, { procDir: null })
  t.teardown(() => pm.close())
  const m = scrape(r)
  for (const name of ['process_open_fds', 'process_max_fds', 'process_virtual_memory_bytes', 'process_heap_bytes']) t.notOk(m.types.has(name), `no ${name}`)
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_eventloop_lag_p99_seconds']) {
    t.ok(m.types.has(name), name)
  }
  const r2 = new Registry()
  const pm2 = registerProcessMetrics(r2, { procDir: t.testdir({}) })
  t.teardown(() => pm2.close())
  t.notOk(scrape(r2).types.has('process_open_fds'), 'a /proc without the files: left out too')
})

t.test('event-loop delay: a blocked loop shows in max and p99 of the next scrape, then the window starts over', async (t) => {
  const r = new Registry()
  const pm = registerProcessMetrics(r, { eventLoopResolutionMs: 5 })
  t.teardown(() => pm.close())
  scrape(r) // start a fresh window
  await new Promise((resolve) => setTimeout(resolve, 30))
  busy(300)
  await new Promise((resolve) => setTimeout(resolve, 30))
  const blocked = scrape(r)
  const max = blocked.value('nodejs_eventloop_lag_max_seconds')
  t.ok(max >= 0.29, `max ${max} s covers the 300 ms block`)
  t.ok(blocked.value('nodejs_eventloop_lag_min_seconds') <= blocked.value('nodejs_eventloop_lag_p50_seconds'))
  t.ok(blocked.value('nodejs_eventloop_lag_p50_seconds') <= blocked.value('nodejs_eventloop_lag_p99_seconds'))
  t.ok(blocked.value('nodejs_eventloop_lag_p99_seconds') <= max)

  await new Promise((resolve) => setTimeout(resolve, 60))
  const calm = scrape(r)
  t.ok(calm.value('nodejs_eventloop_lag_max_seconds') < 0.29, `the next window no longer holds the block (max ${calm.value('nodejs_eventloop_lag_max_seconds')} s)`)
})

t.test('createServiceMetrics includes them; close() stops the sampler', async (t) => {
  const metrics = createServiceMetrics({ version: 'test', ready: () => true, process: { procDir: null } })
  const m = parseExposition(metrics.registry.render())
  t.ok(m.value('process_cpu_seconds_total') > 0)
  t.notOk(m.types.has('process_open_fds'))
  metrics.close()
  t.doesNotThrow(() => metrics.registry.render(), 'still renders after close')
})
