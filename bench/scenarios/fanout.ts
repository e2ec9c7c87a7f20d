import { type LoadGenerator, planGroup, type RunResult } from "../loadgen/Coordinator.ts"
import { cpuBetween, sampleCpu } from "../lib/proc.ts"
import type { RunningServer, ServerKind } from "../lib/servers.ts"
import {
  addBaselineRatios,
  formatRate,
  integrityNotes,
  type ResultRow,
  runMetrics,
  type Scenario,
  serverLabel,
  windowFor,
  pacedCaseSuffix,
  withEveryServer,
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

/**
 * The relay at the size of a Neighbourhood public chat's frame as its clients receive it (signed_data
 * with a 64-character message and an RSA-2048 signature: ~570 B), raw Bun beside it: the same-size
 * reference for issue 9's ratio (the neighbourhood scenario reads it). Full runs only.
 */
export const NEIGHBOURHOOD_FRAME_CASE: FanoutCase = { units: 100, payloadBytes: 570 }
const neighbourhoodFrameServers: ReadonlyArray<ServerKind> = ["bun-raw", "relay"]

/** The scenario's cases, each with the servers it measures. */
const scenarioCases = (quick: boolean, kinds: ReadonlyArray<ServerKind>) => {
  const cases = fanoutCases(quick).map((c) => ({ c, kinds }))
  if (quick || process.env.FANOUT_CASES) return cases
  const reference = kinds.filter((kind) => neighbourhoodFrameServers.includes(kind))
  return reference.length > 0 ? [...cases, { c: NEIGHBOURHOOD_FRAME_CASE, kinds: reference }] : cases
}

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

/** Offered deliveries/s of the paced row: far below every Bun server's saturation (~0.2-0.3 of a core). */
export const PACED_DELIVERIES_PER_SEC = 200_000

/** The paced row's case label (kept apart from the saturated rows in charts: its rate is fixed, not measured). */
export const pacedCaseLabel = (c: FanoutCase) =>
  `${caseLabel(c)}${pacedCaseSuffix}${formatRate(PACED_DELIVERIES_PER_SEC)}/s`

/** One open-loop run at PACED_DELIVERIES_PER_SEC (every sender at the same rate). */
const pacedRun = (
  generator: LoadGenerator,
  server: RunningServer,
  c: FanoutCase,
  timing: { warmupMs: number; measureMs: number }
) =>
  generator.run({
    plan: {
      mode: "paced",
      rate: PACED_DELIVERIES_PER_SEC / (SENDERS * (c.units - 1)),
      window: windowFor(SENDERS, c.payloadBytes),
      payloadBytes: c.payloadBytes,
      maxPerSender: 10_000_000
    },
    ...timing,
    drainMs: 10_000,
    serverPids: server.pids
  })

/** Waits (at most 3 s) until the server uses under 5 % of a core, so that what it still does is not in the next run. */
const untilQuiet = async (pids: ReadonlyArray<number>) => {
  const deadline = performance.now() + 3000
  while (performance.now() < deadline) {
    const before = sampleCpu(pids)
    await Bun.sleep(100)
    if (cpuBetween(before, sampleCpu(pids)) < 5_000) return
  }
}

/** Servers whose paced row is measured: Node ws cannot sustain the offered rate at 1000 units (~120k/s at most). */
const pacedServers = (kind: ServerKind) => kind !== "node-ws"

/**
 * Scenario 1: one group, 10 senders sending as fast as the slowest receiver allows (closed loop,
 * bounded window), everyone else receiving. Deliveries/s, latency, and the server's own CPU time
 * per delivery read from /proc (valid even when the load generator saturates the machine). The Bun
 * servers of a case are up at once with their own clients and the runs go in turn, the order rotated
 * each round, so that neighbouring runs compare (the box swings run to run). Next to each saturated run
 * a paced run at a fixed rate far below saturation: CPU per delivery at the same offered load for all.
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
    const measured = scenarioCases(context.quick, serversFor(context, ["hydrogen"]))
    for (const { c, kinds } of measured) {
      const saturated = new Map<ServerKind, Array<RunResult>>(kinds.map((kind) => [kind, []]))
      const paced = new Map<ServerKind, Array<RunResult>>(kinds.map((kind) => [kind, []]))
      const failed = new Set<ServerKind>()
      const clients = planGroup({ group: "fanout", units: c.units, senders: SENDERS })
      // Node ws on its own: at 1000 units its drain outlasts the run, and its backlog would load the next server's run.
      const turns = [kinds.filter((kind) => kind !== "node-ws"), kinds.filter((kind) => kind === "node-ws")]
      for (const inTurn of turns.filter((group) => group.length > 0)) {
        await withEveryServer(context, inTurn, clients, skipped, caseLabel(c), async (connected) => {
          for (let round = 0; round < context.runs; round++) {
            for (let turn = 0; turn < connected.length; turn++) {
              // Rotated: no server always runs right after the same neighbour.
              const { kind, server, generator } = connected[(turn + round) % connected.length]!
              if (failed.has(kind)) continue
              const label = `${serverLabel[kind]} ${caseLabel(c)}`
              const run = `run ${round + 1}/${context.runs}`
              try {
                const result = await maxRateRun(generator, server, c, { warmupMs, measureMs }, (elapsed, delivered) =>
                  context.status(`${label} ${run}: ${formatRate(delivered / (elapsed / 1000))} deliveries/s`)
                )
                saturated.get(kind)!.push(result)
                notes.push(...integrityNotes(`${label} ${run}`, result))
                let line =
                  `  ${label} ${run}: ${formatRate(result.deliveriesPerSec)} deliveries/s, ` +
                  `p99 ${result.latency.p99Ms.toFixed(1)} ms, ${result.serverCpuPerDeliveryUs.toFixed(3)} µs CPU/delivery, ` +
                  `lost ${result.lost}, dup ${result.duplicates}`
                if (pacedServers(kind)) {
                  context.status(`${label} ${run}: paced ${formatRate(PACED_DELIVERIES_PER_SEC)}/s`)
                  const slow = await pacedRun(generator, server, c, { warmupMs, measureMs })
                  paced.get(kind)!.push(slow)
                  notes.push(...integrityNotes(`${serverLabel[kind]} ${pacedCaseLabel(c)} ${run}`, slow))
                  line += `; paced ${formatRate(slow.deliveriesPerSec)}/s: ${slow.serverCpuPerDeliveryUs.toFixed(3)} µs CPU/delivery`
                }
                context.log(line)
                await untilQuiet(server.pids)
              } catch (error) {
                failed.add(kind)
                skipped.push(`${label}: ${(error as Error).message}`)
                context.log(`  ${label}: FAILED ${(error as Error).message}`)
              }
            }
          }
        })
      }
      for (const kind of kinds) {
        if (failed.has(kind) || saturated.get(kind)!.length === 0) continue
        rows.push({ server: kind, case: caseLabel(c), metrics: runMetrics(saturated.get(kind)!) })
      }
      for (const kind of kinds) {
        if (failed.has(kind) || paced.get(kind)!.length === 0) continue
        rows.push({ server: kind, case: pacedCaseLabel(c), metrics: runMetrics(paced.get(kind)!) })
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
        cases: measured.map(({ c, kinds }) => ({ ...c, servers: kinds })),
        order: "the Bun servers of a case up at once, runs in turn, order rotated each round; Node ws on its own",
        pacedDeliveriesPerSec: PACED_DELIVERIES_PER_SEC,
        pacedServers: serversFor(context, ["hydrogen"]).filter(pacedServers)
      },
      rows: addBaselineRatios(rows, ["deliveriesPerSec", "cpuUsPerDelivery"]),
      notes,
      skipped
    }
  }
}
