import { collectGarbage, objectsPerConnection } from "../lib/gc.ts"
import { planGroup } from "../loadgen/Coordinator.ts"
import { cpuBetween, openFilesLimit, rssBytes, sampleCpu } from "../lib/proc.ts"
import type { ServerKind } from "../lib/servers.ts"
import { spreadOf } from "../lib/stats.ts"
import { type ResultRow, type Scenario, serverLabel, withClients, withServer, serversFor } from "./common.ts"

/** Heartbeats every 5 s so that the idle window sees at least one sweep. */
const PING_INTERVAL_MS = 5000
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const sum = (values: ReadonlyArray<number>) => values.reduce((a, b) => a + b, 0)

/** Connecting stops after this long (logins can be slow at scale); RSS is then per connection made. */
const connectDeadlineMs = (quick: boolean) => (quick ? 20_000 : 60_000)

interface IdleRun {
  readonly connected: number
  readonly connectSeconds: number
  readonly connectsPerSec: number
  readonly rssKbPerConnection: number
  readonly rssKbPerConnectionAt2s: number
  readonly rssKbPerConnectionBeforeGc: number
  readonly heapKbPerConnection: number
  readonly heapCapacityKbPerConnection: number
  readonly idleCpuPercent: number
  readonly idleCpuUsPerConnectionSecond: number
  readonly closedWhileIdle: number
}

/**
 * Scenario 3: N authenticated connections (DroneEngage: login + upgrade each; others: their own
 * handshake) held idle with heartbeats on. Server RSS per connection (RSS after minus RSS before,
 * from /proc), CPU while idle, and the time to connect them all.
 */
export const idle: Scenario = {
  id: "idle",
  title: "Idle connection capacity",
  run: async (context) => {
    const rows: Array<ResultRow> = []
    const notes: Array<string> = []
    const skipped: Array<string> = []
    const idleMs = context.quick ? 3000 : 6000
    const limit = openFilesLimit()
    const runs = context.quick ? 1 : Math.min(2, context.runs)
    for (const size of context.idleSizes) {
      if (size > limit - 200) {
        skipped.push(
          `${size} connections: one process may open ${limit} files here (RLIMIT_NOFILE, hard limit; raising it needs CAP_SYS_RESOURCE), ` +
            "and every server under test is one process holding a socket per connection"
        )
        continue
      }
      for (const kind of serversFor(context, ["chat"])) {
        const label = `${serverLabel[kind]} ${size} idle`
        try {
          const results: Array<IdleRun> = []
          // Repeats at the first size only: the larger ones take long to connect on this box.
          const repeats = size === context.idleSizes[0] ? runs : 1
          for (let i = 0; i < repeats; i++)
            results.push(await idleRun(context, kind, size, idleMs, label, (line) => context.log(line)))
          for (const r of results) {
            if (r.closedWhileIdle > 0) notes.push(`${label}: ${r.closedWhileIdle} connections closed while idle`)
            if (r.connected < size) {
              notes.push(
                `${label}: only ${r.connected} of ${size} connected within ${connectDeadlineMs(context.quick) / 1000} s (${r.connectsPerSec.toFixed(0)}/s); figures are per connection made`
              )
            }
          }
          const metric = (key: keyof IdleRun) => spreadOf(results.map((r) => r[key]))
          rows.push({
            server: kind,
            case: `${size} connections`,
            ...(results.some((r) => r.connected < size)
              ? { notes: [`${Math.min(...results.map((r) => r.connected))} connected in time`] }
              : {}),
            metrics: {
              connectSeconds: metric("connectSeconds"),
              connectsPerSec: metric("connectsPerSec"),
              rssKbPerConnection: metric("rssKbPerConnection"),
              rssKbPerConnectionAt2s: metric("rssKbPerConnectionAt2s"),
              rssKbPerConnectionBeforeGc: metric("rssKbPerConnectionBeforeGc"),
              heapKbPerConnection: metric("heapKbPerConnection"),
              heapCapacityKbPerConnection: metric("heapCapacityKbPerConnection"),
              idleCpuPercent: metric("idleCpuPercent"),
              idleCpuUsPerConnectionSecond: metric("idleCpuUsPerConnectionSecond")
            }
          })
        } catch (error) {
          skipped.push(`${label}: ${(error as Error).message}`)
          context.log(`  ${label}: FAILED ${(error as Error).message}`)
        }
      }
    }
    return {
      scenario: "idle",
      title: idle.title,
      settings: {
        sizes: context.idleSizes,
        idleMs,
        pingIntervalMs: PING_INTERVAL_MS,
        runs,
        openFilesLimit: limit,
        connectDeadlineMs: connectDeadlineMs(context.quick)
      },
      rows,
      notes,
      skipped
    }
  }
}

const idleRun = (
  context: Parameters<Scenario["run"]>[0],
  kind: ServerKind,
  size: number,
  idleMs: number,
  label: string,
  log: (line: string) => void
): Promise<IdleRun> =>
  withServer(
    kind,
    async (server) => {
      await sleep(1000)
      const before = await collectGarbage(server.pids)
      const rssBefore = sum(server.pids.map(rssBytes))
      context.status(`${label}: connecting`)
      const clients = planGroup({ group: "idle", units: size, senders: 0 })
      return withClients(
        context,
        server,
        clients,
        async (generator) => {
          const connected = size - generator.notAttempted
          await sleep(2000)
          const rssSettled = sum(server.pids.map(rssBytes))
          context.status(`${label}: idle for ${idleMs / 1000} s`)
          const from = sampleCpu(server.pids)
          await sleep(idleMs)
          const to = sampleCpu(server.pids)
          const rssBeforeGc = sum(server.pids.map(rssBytes))
          // Every server collects its garbage the same way before both samples (bench/lib/gc-hook.mjs), so what
          // connecting left behind counts only as far as the heap keeps the space; RSS is read once that is done.
          const after = await collectGarbage(server.pids)
          const rssAfter = sum(server.pids.map(rssBytes))
          const heapGrowth = (key: "heapUsed" | "heapCapacity") =>
            sum(after.map((report) => report[key])) - sum(before.map((report) => report[key]))
          const cpu = cpuBetween(from, to)
          const { closes } = await generator.closes()
          const result: IdleRun = {
            connected,
            connectSeconds: generator.connectMs / 1000,
            connectsPerSec: connected / (generator.connectMs / 1000),
            rssKbPerConnection: (rssAfter - rssBefore) / 1024 / connected,
            rssKbPerConnectionAt2s: (rssSettled - rssBefore) / 1024 / connected,
            rssKbPerConnectionBeforeGc: (rssBeforeGc - rssBefore) / 1024 / connected,
            heapKbPerConnection: heapGrowth("heapUsed") / 1024 / connected,
            heapCapacityKbPerConnection: heapGrowth("heapCapacity") / 1024 / connected,
            idleCpuPercent: (cpu / (idleMs * 1000)) * 100,
            idleCpuUsPerConnectionSecond: cpu / connected / (idleMs / 1000),
            closedWhileIdle: sum(Object.values(closes))
          }
          log(
            `  ${label}: ${connected < size ? `only ${connected} of ${size} ` : ""}connected in ${result.connectSeconds.toFixed(1)} s, ${result.rssKbPerConnection.toFixed(2)} KB/connection ` +
              `(${result.rssKbPerConnectionBeforeGc.toFixed(2)} before GC; JS heap ${result.heapKbPerConnection.toFixed(2)} live, ` +
              `${result.heapCapacityKbPerConnection.toFixed(2)} kept), ` +
              `idle CPU ${result.idleCpuPercent.toFixed(2)} %`
          )
          const objects = before.length === 1 ? objectsPerConnection(before[0]!, after[0]!, connected) : ""
          if (objects) log(`    JS objects per connection: ${objects}`)
          return result
        },
        connectDeadlineMs(context.quick)
      )
    },
    { pingIntervalMs: PING_INTERVAL_MS }
  )
