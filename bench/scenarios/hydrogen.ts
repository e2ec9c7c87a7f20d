import { planGroup, type RunResult } from "../loadgen/Coordinator.ts"
import { join } from "node:path"
import {
  freePort,
  HYDROGEN_RELIABLE_PREFIX,
  hydrogenTarget,
  type RunningServer,
  startListening,
  startServer,
  stopChild
} from "../lib/servers.ts"
import { type Spread, spreadOf } from "../lib/stats.ts"
import { caseLabel, maxRateRun, SENDERS } from "./fanout.ts"
import { formatRate, integrityNotes, type ResultRow, ratio, runMetrics, type Scenario, withClients } from "./common.ts"

const CASE = { units: 100, payloadBytes: 64 }

/** The raw reliable floor (bench/baselines/hydrogen-raw.ts): what the same wire costs raw Bun. */
const RAW = "hydrogen-raw"

const startRaw = async (): Promise<RunningServer> => {
  const port = freePort()
  const key = crypto.randomUUID()
  const { child } = await startListening(
    "raw Bun reliable floor",
    [process.execPath, join(import.meta.dir, "..", "baselines", "hydrogen-raw.ts")],
    { PORT: String(port), HOST: "127.0.0.1", KEY: key },
    port
  )
  return {
    kind: "bun-raw",
    pids: [child.pid],
    allPids: [child.pid],
    target: hydrogenTarget(port, key),
    stop: () => stopChild(child)
  }
}

const withRunning = async <A>(start: () => Promise<RunningServer>, body: (server: RunningServer) => Promise<A>) => {
  const server = await start()
  try {
    return await body(server)
  } finally {
    await server.stop()
  }
}

interface Case {
  readonly server: "hydrogen" | typeof RAW
  readonly reliable: boolean
  readonly batchAcks: boolean
}

/** Reliable cases in both ack modes, for Hydrogen and the raw floor, then Hydrogen's best-effort channel. */
const cases: ReadonlyArray<Case> = [
  { server: "hydrogen", reliable: true, batchAcks: false },
  { server: RAW, reliable: true, batchAcks: false },
  { server: "hydrogen", reliable: true, batchAcks: true },
  { server: RAW, reliable: true, batchAcks: true },
  { server: "hydrogen", reliable: false, batchAcks: false }
]

const caseName = (c: Case) =>
  c.reliable
    ? `reliable channel, acked (${c.batchAcks ? "one batch ack per received chunk" : "one ack per event"})`
    : "best-effort channel"

/**
 * Scenario 5: Hydrogen events at the maximum rate, 100 subscribers and 10 publishers on one channel:
 * a reliable channel (sequenced, kept in history, every event acked by every subscriber) with one
 * ack frame per event or one batch ack per received chunk, each beside raw Bun doing the same
 * reliable work on the same wire (the floor), and a best-effort channel for comparison. Ratios to
 * the relay's (and raw Bun's) fan-out of scenario 1 and to the raw reliable floor.
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
      const floors = new Map<boolean, Record<string, Spread>>()
      for (const c of cases) {
        const label = `${c.server === RAW ? "raw Bun" : "Hydrogen"} ${c.reliable ? `reliable (${c.batchAcks ? "batch acks" : "acks"})` : "best-effort"}`
        try {
          const start = c.server === RAW ? startRaw : () => startServer("hydrogen")
          const results = await withRunning(start, async (server) => {
            const target = { ...server.target, reliable: c.reliable, batchAcks: c.batchAcks } as typeof server.target
            const group = c.reliable ? `${HYDROGEN_RELIABLE_PREFIX}-bench` : "plain-bench"
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
                      `${result.serverCpuPerDeliveryUs.toFixed(2)} µs CPU/event, RSS ${(result.serverRssBytes / 1e6).toFixed(0)} MB, lost ${result.lost}`
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
          if (c.server === RAW) floors.set(c.batchAcks, metrics)
          rows.push({
            server: c.server,
            case: caseName(c),
            // RSS after each run: with a bounded history it levels off instead of growing run after run.
            metrics: {
              ...metrics,
              ackedPerSec: metrics.deliveriesPerSec!,
              serverRssMb: spreadOf(results.map((r) => r.serverRssBytes / 1e6))
            },
            ratios
          })
        } catch (error) {
          skipped.push(`${label}: ${(error as Error).message}`)
          context.log(`  ${label}: FAILED ${(error as Error).message}`)
        }
      }
      // Hydrogen beside the raw floor of the same ack mode (the floor runs after it, so ratios are added here).
      for (const row of rows) {
        if (row.server !== "hydrogen") continue
        const c = cases.find((k) => k.server === "hydrogen" && caseName(k) === row.case)
        const floor = c?.reliable ? floors.get(c.batchAcks) : undefined
        if (!floor) continue
        const ratios = row.ratios as Record<string, number>
        ratios[`ackedPerSec vs ${RAW}`] = ratio(row.metrics.deliveriesPerSec!.median, floor.deliveriesPerSec?.median)
        ratios[`cpuUsPerDelivery vs ${RAW}`] = ratio(
          row.metrics.cpuUsPerDelivery!.median,
          floor.cpuUsPerDelivery?.median
        )
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
        reference: `scenario 1, ${caseLabel(CASE)}`,
        floor: "bench/baselines/hydrogen-raw.ts: raw Bun.serve, same wire, same reliable work, no Effect"
      },
      rows,
      notes,
      skipped
    }
  }
}
