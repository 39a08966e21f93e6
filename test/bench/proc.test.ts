/**
 * bench/lib/proc.ts: what the benchmark reads from /proc (Linux), checked against this process.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { cpuSeconds, mainThreadCpuSeconds, rssBytes, wakeups } from '../../bench/lib/proc.js'

const pid = process.pid

t.test('wake-ups are the voluntary context switches of every thread', async (t) => {
  // Atomics.wait blocks the main thread in the kernel for its timeout whatever the load: a timer
  // sleep may not sleep at all when the process was descheduled past its due time before polling.
  const cell = new Int32Array(new SharedArrayBuffer(4))
  const before = wakeups(pid)
  for (let i = 0; i < 20; i++) Atomics.wait(cell, 0, 0, 5)
  const after = wakeups(pid)
  t.ok(after - before >= 20, `each sleep of the main thread counts (${after - before} over 20 sleeps)`)
  const mainStatus = readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8')
  const voluntary = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(mainStatus)?.[1])
  t.ok(wakeups(pid) >= voluntary, 'at least the main thread’s own count')
})

t.test('CPU: the main thread is part of the process total, and busy work shows in both', async (t) => {
  const total0 = cpuSeconds(pid)
  const main0 = mainThreadCpuSeconds(pid)
  // Spin until the kernel has charged the process 300 ms of CPU (getrusage, not /proc): 300 ms of
  // wall time can be far less CPU on a loaded machine. Other threads do little meanwhile, so most
  // of it is the main thread's; 0.2 s leaves room for them and for clock-tick rounding.
  const usage0 = process.cpuUsage()
  const chargedMs = (): number => {
    const { user, system } = process.cpuUsage(usage0)
    return (user + system) / 1000
  }
  let spin = 0
  while (chargedMs() < 300) spin++
  const main = mainThreadCpuSeconds(pid) - main0
  const total = cpuSeconds(pid) - total0
  t.ok(main >= 0.2, `300 ms of CPU spent spinning (${spin} turns) on the main thread is charged to it (${main} s)`)
  // The kernel rounds the process's and the thread's times to clock ticks separately (cputime_adjust),
  // so the two deltas can disagree by a tick each way: a clean-clone CI run failed on exactly that.
  t.ok(total >= main - 0.02, `the process total includes it (${total} s against ${main} s)`)
  t.ok(mainThreadCpuSeconds(pid) <= cpuSeconds(pid) + 0.02, 'never more than the whole process (within that rounding)')
})

t.test('RSS in bytes, from VmRSS', async (t) => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1])
  const rss = rssBytes(pid)
  t.ok(Math.abs(rss - kb * 1024) < 64 * 1024 * 1024, 'within what this process can grow between two reads')
  t.ok(rss > 10 * 1024 * 1024, 'a Node process holds more than 10 MB')
})
