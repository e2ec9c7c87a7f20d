/**
 * The fan-out scenario's max-rate run with the kernel's count of what each server did (perf stat on the
 * server's process: syscalls by tracepoint, context switches, task clock), servers interleaved run by run:
 * whether a gap in CPU per delivery comes with more syscalls per delivery (smaller send batches) or not.
 * Needs perf with tracepoints. Counts cover a whole run (warm-up, window and drain), per delivery of the run.
 *
 *   npx bun run bench/lib/fanout-syscalls.ts [units=1000] [payloadBytes=64] [servers=bun-raw,transport,relay] [rounds=3]
 *
 * PACED=<msg/s per sender> runs the paced mode at that rate instead of the maximum; IDLE=<seconds> counts the
 * connected server doing nothing for that long instead (timers and sweeps: per second, not per delivery).
 * A server may carry environment for its program: bun-raw:RAW_APPEND=,"p":4294967295 (raw Bun sending the relay's
 * bytes), bun-raw:RAW_WS={"idleTimeout":0} (raw Bun with one of our websocket settings).
 */
import { type LoadGenerator, planGroup } from "../loadgen/Coordinator.ts"
import { maxRateRun, SENDERS } from "../scenarios/fanout.ts"
import { type BenchContext, windowFor, withClients, withServer } from "../scenarios/common.ts"
import { readdirSync, readFileSync } from "node:fs"
import { cpuMicros } from "./proc.ts"
import type { RunningServer, ServerKind } from "./servers.ts"

const [unitsArg = "1000", bytesArg = "64", serversArg = "bun-raw,transport,relay", roundsArg = "3"] =
  process.argv.slice(2)
const units = Number(unitsArg)
const payloadBytes = Number(bytesArg)
/** "kind" or "kind:NAME=value" (split on the first ":" and "="). */
const kinds = serversArg.split(/,(?=[a-z-]+(?::|,|$))/).map((text) => {
  const colon = text.indexOf(":")
  if (colon === -1) return { kind: text as ServerKind, label: text, env: {} }
  const setting = text.slice(colon + 1)
  const eq = setting.indexOf("=")
  return {
    kind: text.slice(0, colon) as ServerKind,
    label: text,
    env: { [setting.slice(0, eq)]: setting.slice(eq + 1) }
  }
})
const rounds = Number(roundsArg)
const paced = Number(process.env.PACED ?? 0)
const idleSeconds = Number(process.env.IDLE ?? 0)

const events = [
  "syscalls:sys_enter_sendto",
  "syscalls:sys_enter_recvfrom",
  "syscalls:sys_enter_epoll_pwait",
  "syscalls:sys_enter_epoll_pwait2",
  "syscalls:sys_enter_futex",
  "syscalls:sys_enter_madvise",
  "syscalls:sys_enter_write",
  "syscalls:sys_enter_read",
  "syscalls:sys_enter_timerfd_settime",
  "context-switches"
]

const context = {
  quick: false,
  runs: 1,
  workers: 2,
  clockBase: performance.timeOrigin + performance.now(),
  log: () => {},
  status: () => {}
} as unknown as BenchContext

/** perf stat's counts (CSV on stderr) by event name. */
const perfCounts = (text: string): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const line of text.split("\n")) {
    const [value, , event] = line.split(",")
    if (event && value && /^\d+$/.test(value)) counts[event.replace("syscalls:sys_enter_", "")] = Number(value)
  }
  return counts
}

/** CPU ticks (user + system) of every live thread, by thread name (main, GC helpers, JIT workers, …). */
const threadTicks = (pid: number): Record<string, number> => {
  const ticks: Record<string, number> = {}
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8")
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      ticks[name] = (ticks[name] ?? 0) + Number(fields[11]) + Number(fields[12])
    } catch {
      // The thread ended meanwhile.
    }
  }
  return ticks
}

/** What the server does with every client connected and no traffic, per second. */
const measureIdle = async (server: RunningServer, seconds: number) => {
  const pid = server.pids[0]!
  const perf = Bun.spawn(["perf", "stat", "-x", ",", "-e", events.join(","), "-p", String(pid)], {
    stdout: "ignore",
    stderr: "pipe"
  })
  await Bun.sleep(300)
  const cpuBefore = cpuMicros(pid)
  await Bun.sleep(seconds * 1000)
  const cpuMs = (cpuMicros(pid) - cpuBefore) / 1000
  perf.kill("SIGINT")
  const counts = perfCounts(await new Response(perf.stderr as ReadableStream).text())
  return {
    server: server.kind,
    idleCpuMsPerSec: Number((cpuMs / seconds).toFixed(2)),
    perSec: Object.fromEntries(Object.entries(counts).map(([name, n]) => [name, Number((n / seconds).toFixed(1))]))
  }
}

const measure = async (server: RunningServer, generator: LoadGenerator) => {
  const pid = server.pids[0]!
  const perf = Bun.spawn(["perf", "stat", "-x", ",", "-e", events.join(","), "-p", String(pid)], {
    stdout: "ignore",
    stderr: "pipe"
  })
  await Bun.sleep(300)
  const cpuBefore = cpuMicros(pid)
  const threadsBefore = threadTicks(pid)
  const result = paced
    ? await generator.run({
        plan: { mode: "paced", rate: paced, window: windowFor(SENDERS, payloadBytes), payloadBytes, maxPerSender: 1e7 },
        warmupMs: 500,
        measureMs: 1500,
        drainMs: 10_000,
        serverPids: server.pids
      })
    : await maxRateRun(generator, server, { units, payloadBytes }, { warmupMs: 500, measureMs: 1500 })
  const cpu = cpuMicros(pid) - cpuBefore
  const threadsAfter = threadTicks(pid)
  const threadMs = Object.fromEntries(
    Object.entries(threadsAfter)
      .map(([name, ticks]) => [name, (ticks - (threadsBefore[name] ?? 0)) * 10] as const)
      .filter(([, ms]) => ms > 0)
  )
  perf.kill("SIGINT")
  const counts = perfCounts(await new Response(perf.stderr as ReadableStream).text())
  const total = result.expected - result.lost
  const per = (n: number | undefined) => Number(((n ?? 0) / total).toFixed(4))
  return {
    server: server.kind,
    windowCpuUsPerDelivery: Number(result.serverCpuPerDeliveryUs.toFixed(3)),
    deliveriesPerSec: Math.round(result.deliveriesPerSec),
    runCpuUsPerDelivery: Number((cpu / total).toFixed(3)),
    sendtoPerDelivery: per(counts.sendto),
    recvfromPerMessage: Number(((counts.recvfrom ?? 0) / result.sent).toFixed(3)),
    epollPerMessage: Number((((counts.epoll_pwait ?? 0) + (counts.epoll_pwait2 ?? 0)) / result.sent).toFixed(3)),
    futexPerKDelivery: per((counts.futex ?? 0) * 1000),
    madvisePerKDelivery: per((counts.madvise ?? 0) * 1000),
    otherPerMessage: Object.fromEntries(
      ["write", "read", "timerfd_settime", "futex"].map((name) => [
        name,
        Number(((counts[name] ?? 0) / result.sent).toFixed(3))
      ])
    ),
    switchesPerKDelivery: per((counts["context-switches"] ?? 0) * 1000),
    cpuMs: Math.round(cpu / 1000),
    threadMs
  }
}

type Up = { label: string; server: RunningServer; generator: LoadGenerator }

const withEvery = async (rest: typeof kinds, up: Array<Up>, body: (up: Array<Up>) => Promise<void>) => {
  const [next, ...more] = rest
  if (next === undefined) return body(up)
  await withServer(
    next.kind,
    (server) =>
      withClients(context, server, planGroup({ group: "fanout", units, senders: SENDERS }), (generator) =>
        withEvery(more, [...up, { label: next.label, server, generator }], body)
      ),
    { env: next.env }
  )
}

await withEvery(kinds, [], async (up) => {
  for (let round = 0; round < rounds; round++) {
    for (const { label, server, generator } of up) {
      if (idleSeconds > 0) {
        console.log(JSON.stringify({ round, ...(await measureIdle(server, idleSeconds)), server: label }))
        continue
      }
      console.log(JSON.stringify({ round, ...(await measure(server, generator)), server: label }))
    }
  }
})
process.exit(0)
