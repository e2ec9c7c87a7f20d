import { type LoadGenerator, planGroup, type RunResult } from "../loadgen/Coordinator.ts"
import type { RunningServer } from "../lib/servers.ts"
import {
  addBaselineRatios,
  formatRate,
  integrityNotes,
  type ResultRow,
  runMetrics,
  type Scenario,
  serverLabel,
  windowFor,
  withClients,
  withServer,
  serversFor
} from "./common.ts"

export const SENDERS = 10

export interface FanoutCase {
  readonly units: number
  readonly payloadBytes: number
}

export const caseLabel = (c: FanoutCase) =>
  `${c.units} units, ${c.payloadBytes >= 1024 ? `${c.payloadBytes / 1024} KB` : `${c.payloadBytes} B`}`

/** FANOUT_CASES=100x1024,1000x1024 (units x payload bytes) measures only those cases. */
const chosenCases = (): Array<FanoutCase> | undefined =>
  process.env.FANOUT_CASES?.split(",").map((text) => {
    const [units, payloadBytes] = text.split("x").map(Number)
    if (!Number.isInteger(units) || !Number.isInteger(payloadBytes)) throw new Error(`FANOUT_CASES: bad case ${text}`)
    return { units: units!, payloadBytes: payloadBytes! }
  })

export const fanoutCases = (quick: boolean): Array<FanoutCase> =>
  chosenCases() ??
  (quick
    ? [
        { units: 100, payloadBytes: 64 },
        { units: 1000, payloadBytes: 64 }
      ]
    : [
        { units: 100, payloadBytes: 64 },
        { units: 100, payloadBytes: 1024 },
        { units: 1000, payloadBytes: 64 },
        { units: 1000, payloadBytes: 1024 }
      ])

/** One closed-loop run at the maximum rate the slowest receiver allows. */
export const maxRateRun = (
  generator: LoadGenerator,
  server: RunningServer,
  c: FanoutCase,
  timing: { warmupMs: number; measureMs: number },
  onTick?: (elapsedMs: number, delivered: number) => void
) =>
  generator.run({
    plan: {
      mode: "max",
      rate: 0,
      window: windowFor(SENDERS, c.payloadBytes),
      payloadBytes: c.payloadBytes,
      maxPerSender: 10_000_000
    },
    ...timing,
    drainMs: 10_000,
    serverPids: server.pids,
    ...(onTick ? { onTick } : {})
  })

/**
 * Scenario 1: one group, 10 senders sending as fast as the slowest receiver allows (closed loop,
 * bounded window), everyone else receiving. Deliveries/s, latency, and the server's own CPU time
 * per delivery read from /proc (valid even when the load generator saturates the machine).
 */
export const fanout: Scenario = {
  id: "fanout",
  title: "Group fan-out at maximum rate",
  run: async (context) => {
    const rows: Array<ResultRow> = []
    const notes: Array<string> = []
    const skipped: Array<string> = []
    const warmupMs = context.quick ? 300 : 500
    const measureMs = context.quick ? 1000 : 1500
    for (const c of fanoutCases(context.quick)) {
      for (const kind of serversFor(context, ["hydrogen"])) {
        const label = `${serverLabel[kind]} ${caseLabel(c)}`
        try {
          const results = await withServer(kind, (server) =>
            withClients(
              context,
              server,
              planGroup({ group: "fanout", units: c.units, senders: SENDERS }),
              async (generator) => {
                const runs: Array<RunResult> = []
                for (let i = 0; i < context.runs; i++) {
                  const result = await maxRateRun(generator, server, c, { warmupMs, measureMs }, (elapsed, delivered) =>
                    context.status(
                      `${label} run ${i + 1}/${context.runs}: ${formatRate(delivered / (elapsed / 1000))} deliveries/s`
                    )
                  )
                  runs.push(result)
                  notes.push(...integrityNotes(`${label} run ${i + 1}`, result))
                  context.log(
                    `  ${label} run ${i + 1}/${context.runs}: ${formatRate(result.deliveriesPerSec)} deliveries/s, ` +
                      `p99 ${result.latency.p99Ms.toFixed(1)} ms, ${result.serverCpuPerDeliveryUs.toFixed(3)} µs CPU/delivery, ` +
                      `lost ${result.lost}, dup ${result.duplicates}`
                  )
                }
                return runs
              }
            )
          )
          rows.push({ server: kind, case: caseLabel(c), metrics: runMetrics(results) })
        } catch (error) {
          skipped.push(`${label}: ${(error as Error).message}`)
          context.log(`  ${label}: FAILED ${(error as Error).message}`)
        }
      }
    }
    return {
      scenario: "fanout",
      title: fanout.title,
      settings: {
        senders: SENDERS,
        warmupMs,
        measureMs,
        runs: context.runs,
        workers: context.workers,
        cases: fanoutCases(context.quick)
      },
      rows: addBaselineRatios(rows, ["deliveriesPerSec", "cpuUsPerDelivery"]),
      notes,
      skipped
    }
  }
}
