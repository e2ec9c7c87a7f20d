import { planGroup, type RunResult } from "../loadgen/Coordinator.ts"
import { HYDROGEN_RELIABLE_PREFIX } from "../lib/servers.ts"
import { caseLabel, maxRateRun, SENDERS } from "./fanout.ts"
import {
  formatRate,
  integrityNotes,
  type ResultRow,
  ratio,
  runMetrics,
  type Scenario,
  withClients,
  withServer
} from "./common.ts"

const CASE = { units: 100, payloadBytes: 64 }

/**
 * Scenario 5: Hydrogen events at the maximum rate, 100 subscribers and 10 publishers on one channel:
 * a reliable channel (sequenced, kept in history, every event acked by every subscriber) and a
 * best-effort one for comparison. Ratio to the relay's (and raw Bun's) fan-out of scenario 1.
 */
export const hydrogen: Scenario = {
  id: "hydrogen",
  title: "Hydrogen reliable channel: acked events",
  run: async (context) => {
    const rows: Array<ResultRow> = []
    const notes: Array<string> = []
    const skipped: Array<string> = []
    const timing = { warmupMs: context.quick ? 300 : 500, measureMs: context.quick ? 1000 : 2000 }
    if (!context.servers.includes("hydrogen")) {
      skipped.push("Hydrogen is not among the servers of this run")
    } else {
      for (const reliable of [true, false]) {
        const label = `Hydrogen ${reliable ? "reliable (acked, history)" : "best-effort"}`
        try {
          const results = await withServer("hydrogen", async (server) => {
            const target = { ...server.target, reliable } as typeof server.target
            const group = reliable ? `${HYDROGEN_RELIABLE_PREFIX}-bench` : "plain-bench"
            return withClients(
              context,
              { ...server, target },
              planGroup({ group, units: CASE.units, senders: SENDERS }),
              async (generator) => {
                const runs: Array<RunResult> = []
                for (let i = 0; i < context.runs; i++) {
                  const result = await maxRateRun(generator, server, CASE, timing, (elapsed, delivered) =>
                    context.status(
                      `${label} run ${i + 1}/${context.runs}: ${formatRate(delivered / (elapsed / 1000))} events/s`
                    )
                  )
                  runs.push(result)
                  notes.push(...integrityNotes(`${label} run ${i + 1}`, result))
                  context.log(
                    `  ${label} run ${i + 1}/${context.runs}: ${formatRate(result.deliveriesPerSec)} events/s, p99 ${result.latency.p99Ms.toFixed(1)} ms, ` +
                      `${result.serverCpuPerDeliveryUs.toFixed(2)} µs CPU/event, lost ${result.lost}`
                  )
                }
                return runs
              }
            )
          })
          const metrics = runMetrics(results)
          const ratios: Record<string, number> = {}
          const fanout = context.earlier.get("fanout")
          for (const reference of ["relay", "bun-raw"]) {
            const row = fanout?.rows.find((r) => r.server === reference && r.case === caseLabel(CASE))
            if (row)
              ratios[`ackedPerSec vs ${reference}`] = ratio(
                metrics.deliveriesPerSec!.median,
                row.metrics.deliveriesPerSec?.median
              )
          }
          rows.push({
            server: "hydrogen",
            case: reliable ? "reliable channel, acked" : "best-effort channel",
            metrics: { ...metrics, ackedPerSec: metrics.deliveriesPerSec! },
            ratios
          })
        } catch (error) {
          skipped.push(`${label}: ${(error as Error).message}`)
          context.log(`  ${label}: FAILED ${(error as Error).message}`)
        }
      }
    }
    return {
      scenario: "hydrogen",
      title: hydrogen.title,
      settings: {
        ...CASE,
        senders: SENDERS,
        ...timing,
        runs: context.runs,
        reference: `scenario 1, ${caseLabel(CASE)}`
      },
      rows,
      notes,
      skipped
    }
  }
}
