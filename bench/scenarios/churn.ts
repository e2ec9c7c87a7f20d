import { LoadGenerator } from "../loadgen/Coordinator.ts"
import { type CpuSample, cpuBetween, sampleCpu } from "../lib/proc.ts"
import { spreadOf } from "../lib/stats.ts"
import { formatRate, type ResultRow, type Scenario, serverLabel, withServer } from "./common.ts"

const LANES_PER_WORKER = 16

/** For a target of several processes (the relay and its authenticator): " (relay N µs, others M µs)" per cycle. */
const splitOf = (
  server: { readonly pids: ReadonlyArray<number>; readonly allPids: ReadonlyArray<number> },
  from: CpuSample,
  to: CpuSample,
  perCycle: (micros: number) => string
) => {
  if (server.allPids.length <= server.pids.length) return ""
  const measured = server.allPids.reduce(
    (sum, pid, i) => (server.pids.includes(pid) ? sum + (to.micros[i]! - from.micros[i]!) : sum),
    0
  )
  return ` (measured process ${perCycle(measured)} µs, the others ${perCycle(cpuBetween(from, to) - measured)} µs)`
}

/**
 * Scenario 4: connection churn. Lanes log in (DroneEngage: POST /w/wl to the authenticator), open
 * the WebSocket with the key, wait for the server's hello, close, and start over, for a fixed
 * time. Completed cycles per second, cycle latency, and server CPU per cycle (relay and
 * authenticator together).
 */
export const churn: Scenario = {
  id: "churn",
  title: "Connection churn: login + connect + close",
  run: async (context) => {
    const rows: Array<ResultRow> = []
    const notes: Array<string> = []
    const skipped: Array<string> = []
    const durationMs = context.quick ? 1500 : 4000
    for (const kind of context.servers) {
      const label = `${serverLabel[kind]} churn`
      try {
        const runs = await withServer(kind, async (server) => {
          const results = []
          for (let i = 0; i < context.runs; i++) {
            context.status(`${label} run ${i + 1}/${context.runs}`)
            const from = sampleCpu(server.allPids)
            const result = await LoadGenerator.churn({
              target: server.target,
              workers: context.workers,
              concurrency: LANES_PER_WORKER,
              durationMs,
              clockBase: context.clockBase,
              group: "churn"
            })
            const to = sampleCpu(server.allPids)
            const cpu = cpuBetween(from, to)
            const perSecond = result.completed / result.seconds
            const perCycle = (micros: number) => (micros / Math.max(1, result.completed)).toFixed(0)
            context.log(
              `  ${label} run ${i + 1}/${context.runs}: ${formatRate(perSecond)} cycles/s, p99 ${result.latency.p99Ms.toFixed(1)} ms, ` +
                `${perCycle(cpu)} µs server CPU/cycle${splitOf(server, from, to, perCycle)}, ${result.failed} failed`
            )
            if (result.failed > 0)
              notes.push(`${label} run ${i + 1}: ${result.failed} failed: ${result.errors.join("; ")}`)
            results.push({
              ...result,
              perSecond,
              cpuUsPerChurn: result.completed > 0 ? cpu / result.completed : Number.NaN
            })
          }
          return results
        })
        rows.push({
          server: kind,
          case: `${context.workers * LANES_PER_WORKER} lanes`,
          metrics: {
            perSecond: spreadOf(runs.map((r) => r.perSecond)),
            p50Ms: spreadOf(runs.map((r) => r.latency.p50Ms)),
            p99Ms: spreadOf(runs.map((r) => r.latency.p99Ms)),
            cpuUsPerChurn: spreadOf(runs.map((r) => r.cpuUsPerChurn)),
            failed: spreadOf(runs.map((r) => r.failed))
          }
        })
      } catch (error) {
        skipped.push(`${label}: ${(error as Error).message}`)
        context.log(`  ${label}: FAILED ${(error as Error).message}`)
      }
    }
    return {
      scenario: "churn",
      title: churn.title,
      settings: { durationMs, lanes: context.workers * LANES_PER_WORKER, runs: context.runs },
      rows,
      notes,
      skipped
    }
  }
}
