import { type LoadGenerator, planGroup, type RunResult } from "../loadgen/Coordinator.ts"
import type { RunningServer, ServerKind } from "../lib/servers.ts"
import { caseLabel, maxRateRun, SENDERS } from "./fanout.ts"
import {
  type BenchContext,
  formatRate,
  integrityNotes,
  type ResultRow,
  runMetrics,
  type Scenario,
  serverLabel,
  windowFor,
  withClients,
  withEveryServer,
  withServer,
  serversFor
} from "./common.ts"

const LEVELS = [0.25, 0.5, 0.9] as const
const LARGE = { units: 1000, payloadBytes: 64 }
const TARGET_CASE = "100 units × 10 senders × 100 msg/s"
/** Median latency above this means a queue is building up (p99 is too jumpy on a shared 2-core box). */
const SUSTAINED_P50_MS = 25
const MIN_MESSAGES_PER_SENDER = 3
const measureMsOf = (context: BenchContext) => (context.quick ? 1000 : 1500)

interface Measured {
  readonly results: Array<RunResult>
  readonly notes: Array<string>
}

/** Several paced runs on one connected set of clients (`runs`, numbered from `first`, of context.runs). */
const pacedRuns = async (
  context: BenchContext,
  server: RunningServer,
  generator: LoadGenerator,
  label: string,
  ratePerSender: number,
  payloadBytes: number,
  runs: { readonly first: number; readonly count: number } = { first: 0, count: context.runs }
): Promise<Measured> => {
  const results: Array<RunResult> = []
  const notes: Array<string> = []
  for (let i = runs.first; i < runs.first + runs.count; i++) {
    const result = await generator.run({
      plan: {
        mode: "paced",
        rate: ratePerSender,
        window: windowFor(SENDERS, payloadBytes),
        payloadBytes,
        maxPerSender: 10_000_000
      },
      warmupMs: context.quick ? 300 : 500,
      measureMs: measureMsOf(context),
      drainMs: 10_000,
      serverPids: server.pids,
      onTick: (elapsed, delivered) =>
        context.status(
          `${label} run ${i + 1}/${context.runs}: ${formatRate(delivered / (elapsed / 1000))} deliveries/s`
        )
    })
    results.push(result)
    notes.push(...integrityNotes(`${label} run ${i + 1}`, result))
    context.log(
      `  ${label} run ${i + 1}/${context.runs}: ${formatRate(result.deliveriesPerSec)} deliveries/s, ` +
        `p50 ${result.latency.p50Ms.toFixed(2)} ms, p99 ${result.latency.p99Ms.toFixed(2)} ms`
    )
  }
  return { results, notes }
}

/** The closed-loop maximum of the 1000-unit case from scenario 1 of this invocation, or a fresh one. */
const closedLoopMaximum = async (
  context: BenchContext,
  kind: string,
  generator: LoadGenerator,
  server: RunningServer
) => {
  const earlier = context.earlier
    .get("fanout")
    ?.rows.find((row) => row.server === kind && row.case === caseLabel(LARGE))
  if (earlier && Number.isFinite(earlier.metrics.deliveriesPerSec?.median))
    return earlier.metrics.deliveriesPerSec!.median
  const probe = await maxRateRun(generator, server, LARGE, { warmupMs: 300, measureMs: 1000 })
  return probe.deliveriesPerSec
}

/** A paced rate is sustained when almost all of it arrives, nothing is lost and no queue builds up. */
const sustained = (offered: number, result: RunResult) =>
  result.deliveriesPerSec >= 0.97 * offered && result.lost === 0 && result.latency.p50Ms <= SUSTAINED_P50_MS

/**
 * The maximum rate for latency levels: the highest paced rate that is sustained, found by bisection
 * below the closed-loop maximum. Paced traffic arrives a message or two per socket read, so it
 * costs both server and clients more per delivery than the closed loop's batches.
 */
const pacedMaximum = async (context: BenchContext, kind: string, generator: LoadGenerator, server: RunningServer) => {
  const ceiling = await closedLoopMaximum(context, kind, generator, server)
  let low = 0
  let high = ceiling
  for (let step = 0; step < (context.quick ? 3 : 5); step++) {
    const offered = step === 0 ? ceiling / 2 : (low + high) / 2
    const result = await generator.run({
      plan: {
        mode: "paced",
        rate: offered / (SENDERS * (LARGE.units - 1)),
        window: windowFor(SENDERS, LARGE.payloadBytes),
        payloadBytes: LARGE.payloadBytes,
        maxPerSender: 10_000_000
      },
      warmupMs: 300,
      measureMs: 1000,
      drainMs: 10_000,
      serverPids: server.pids
    })
    const ok = sustained(offered, result)
    context.log(
      `  ${serverLabel[kind]} probing ${formatRate(offered)} deliveries/s: ${ok ? "sustained" : "not sustained"} (p50 ${result.latency.p50Ms.toFixed(1)} ms)`
    )
    if (ok) low = offered
    else high = offered
  }
  return { ceiling, sustainedMax: low > 0 ? low : high / 2 }
}

/**
 * The target case, run by run in turn on every server (raw Bun, relay, chat, raw Bun, …): p99 on a shared box
 * swings with the load of the moment, so servers measured minutes apart are not comparable, while neighbouring
 * runs are.
 */
const targetCase = (context: BenchContext, kinds: ReadonlyArray<ServerKind>, skipped: Array<string>) =>
  withEveryServer(
    context,
    kinds,
    planGroup({ group: "latency", units: 100, senders: SENDERS }),
    skipped,
    TARGET_CASE,
    async (connected) => {
      const measured = new Map<ServerKind, Measured>(connected.map(({ kind }) => [kind, { results: [], notes: [] }]))
      for (let run = 0; run < context.runs; run++) {
        for (const { kind, server, generator } of connected) {
          const label = `${serverLabel[kind]} ${TARGET_CASE}`
          const one = await pacedRuns(context, server, generator, label, 100, 64, { first: run, count: 1 })
          measured.get(kind)!.results.push(...one.results)
          measured.get(kind)!.notes.push(...one.notes)
        }
      }
      return measured
    }
  )

/**
 * Scenario 2: latency under paced load. The target case (100 units, 10 senders at 100 msg/s each,
 * ~100k deliveries/s; the servers in turn, run by run), then per server 1000 units at 25, 50 and 90 %
 * of the highest sustained paced rate.
 */
export const latency: Scenario = {
  id: "latency",
  title: "Latency under paced load",
  run: async (context) => {
    const rows: Array<ResultRow> = []
    const notes: Array<string> = []
    const skipped: Array<string> = []
    const maxima: Record<string, { ceiling: number; sustainedMax: number }> = {}
    const kinds = serversFor(context, ["hydrogen", "transport"])
    for (const [kind, small] of await targetCase(context, kinds, skipped)) {
      rows.push({ server: kind, case: TARGET_CASE, metrics: runMetrics(small.results) })
      notes.push(...small.notes)
    }
    for (const kind of kinds) {
      try {
        await withServer(kind, async (server) => {
          await withClients(
            context,
            server,
            planGroup({ group: "latency", units: LARGE.units, senders: SENDERS }),
            async (generator) => {
              maxima[kind] = await pacedMaximum(context, kind, generator, server)
              const max = maxima[kind]!.sustainedMax
              for (const level of LEVELS) {
                const ratePerSender = (level * max) / (SENDERS * (LARGE.units - 1))
                const label = `${serverLabel[kind]} 1000 units at ${level * 100} % (${formatRate(level * max)} deliveries/s)`
                if (ratePerSender * (measureMsOf(context) / 1000) < MIN_MESSAGES_PER_SENDER) {
                  skipped.push(
                    `${label}: under ${MIN_MESSAGES_PER_SENDER} messages per sender in the window; the sustained maximum is too low to measure this level`
                  )
                  continue
                }
                const measured = await pacedRuns(context, server, generator, label, ratePerSender, LARGE.payloadBytes)
                rows.push({
                  server: kind,
                  case: `1000 units at ${level * 100} % of max`,
                  metrics: runMetrics(measured.results)
                })
                notes.push(...measured.notes)
              }
            }
          )
        })
      } catch (error) {
        skipped.push(`${serverLabel[kind]}: ${(error as Error).message}`)
        context.log(`  ${serverLabel[kind]}: FAILED ${(error as Error).message}`)
      }
    }
    return {
      scenario: "latency",
      title: latency.title,
      settings: {
        senders: SENDERS,
        levels: LEVELS,
        maximumDeliveriesPerSec: maxima,
        sustainedMeans: `paced rate delivered at >= 97 %, nothing lost, p50 <= ${SUSTAINED_P50_MS} ms; bisected below the closed-loop maximum`,
        runs: context.runs,
        payloadBytes: 64
      },
      rows,
      notes,
      skipped
    }
  }
}
