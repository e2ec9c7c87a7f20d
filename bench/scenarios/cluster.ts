import { type BenchNats, benchNats } from "../lib/cluster-nats.ts"
import { capacityRun, type CapacityRun, processesFor } from "../lib/cluster-capacity.ts"
import { type ClusterFanoutRun, clusterFanoutRuns, topologies } from "../lib/cluster-fanout.ts"
import { spreadOf } from "../lib/stats.ts"
import { type BenchContext, formatRate, integrityNotes, type ResultRow, ratio, type Scenario } from "./common.ts"
import { caseLabel, type FanoutCase, fanoutCases } from "./fanout.ts"

/** Default size of the capacity case (the target), and the quick mode's. */
export const CLUSTER_IDLE_FULL = 100_000
export const CLUSTER_IDLE_QUICK = 1500

const reachable = async (port: number): Promise<boolean> => {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } })
    socket.end()
    return true
  } catch {
    return false
  }
}

const brokerPort = { memory: 0, redis: 6379, nats: 4222 } as const

const fanoutRow = (label: string, caseName: string, runs: ReadonlyArray<ClusterFanoutRun>): ResultRow => {
  const spread = (pick: (run: ClusterFanoutRun) => number) => spreadOf(runs.map(pick))
  return {
    server: label,
    case: caseName,
    metrics: {
      deliveriesPerSec: spread((r) => r.result.deliveriesPerSec),
      deliveriesPerCore: spread((r) => r.deliveriesPerCore),
      cpuUsPerDelivery: spread((r) => r.cpuUsPerDelivery),
      relayCores: spread((r) => r.relayCores),
      brokerCores: spread((r) => r.brokerCores),
      clientCores: spread((r) => r.result.clientCores),
      p50Ms: spread((r) => r.result.latency.p50Ms),
      p99Ms: spread((r) => r.result.latency.p99Ms),
      brokerOutPerMessage: spread((r) => r.brokerOutPerMessage),
      brokerInPerMessage: spread((r) => r.brokerInPerMessage),
      brokerMessagesPerDelivery: spread((r) => r.brokerMessagesPerDelivery),
      redisPublishesPerMessage: spread((r) => r.redisPublishesPerMessage),
      sent: spread((r) => r.result.sent),
      lost: spread((r) => r.result.lost),
      duplicates: spread((r) => r.result.duplicates)
    }
  }
}

/** Ratios of each cluster row to the one-process row of the same case. */
const withOneProcessRatios = (rows: Array<ResultRow>): Array<ResultRow> =>
  rows.map((row) => {
    const one = rows.find((other) => other.server === topologies[0]!.label && other.case === row.case)
    if (!one || one === row || row.metrics.deliveriesPerCore === undefined) return row
    return {
      ...row,
      ratios: {
        "deliveriesPerSec vs one process": ratio(
          row.metrics.deliveriesPerSec?.median,
          one.metrics.deliveriesPerSec?.median
        ),
        "deliveriesPerCore vs one process": ratio(
          row.metrics.deliveriesPerCore?.median,
          one.metrics.deliveriesPerCore?.median
        )
      }
    }
  })

export const capacityRow = (run: CapacityRun): ResultRow => {
  const one = (value: number) => spreadOf([value])
  const notes = [
    `${run.relays} relays on one port (SO_REUSEPORT), ${run.workers} load-generator workers`,
    `sockets per relay ${run.relayFds.join("/")} open files (limit ${run.openFilesLimit})`
  ]
  if (run.connected < run.size)
    notes.push(
      `${run.connected} of ${run.size} connected: ${run.failed} failed, ${run.notAttempted} not attempted by the deadline` +
        (run.errors.length > 0 ? `; first errors: ${run.errors.slice(0, 3).join("; ")}` : "")
    )
  if (run.closedWhileIdle > 0) notes.push(`${run.closedWhileIdle} connections closed while idle`)
  return {
    server: `relay ×${run.relays} on Redis, one port`,
    case: `${run.size} idle units`,
    metrics: {
      connected: one(run.connected),
      failed: one(run.failed + run.notAttempted),
      connectSeconds: one(run.connectSeconds),
      connectsPerSec: one(run.connectsPerSec),
      rssKbPerConnection: one(run.rssKbPerConnection),
      rssKbPerConnectionAt2s: one(run.rssKbPerConnectionAt2s),
      brokerKbPerConnection: one(run.brokerKbPerConnection),
      authRssGrowthMb: one(run.authRssGrowthMb),
      idleCpuPercent: one(run.idleCpuPercent),
      authIdleCpuPercent: one(run.authIdleCpuPercent),
      idleCpuUsPerConnectionSecond: one(run.idleCpuUsPerConnectionSecond),
      closedWhileIdle: one(run.closedWhileIdle)
    },
    notes
  }
}

/** What the scenario collects: rows, notes and skipped cases. */
interface Collected {
  readonly rows: Array<ResultRow>
  readonly notes: Array<string>
  readonly skipped: Array<string>
}

/** Every fan-out case on every topology reachable here, in turn. */
const measureFanout = async (
  context: BenchContext,
  cases: ReadonlyArray<FanoutCase>,
  available: ReadonlyMap<string, boolean>,
  nats: BenchNats | undefined,
  { rows, notes, skipped }: Collected
) => {
  const warmupMs = context.quick ? 300 : 500
  const measureMs = context.quick ? 1000 : 1500
  for (const c of cases) {
    for (const topology of topologies) {
      const label = `${topology.label} ${caseLabel(c)}`
      if (!available.get(topology.broker)) {
        skipped.push(`${label}: ${topology.broker} is not reachable on 127.0.0.1:${brokerPort[topology.broker]}`)
        continue
      }
      try {
        const runs = await clusterFanoutRuns(topology, c, {
          runs: context.runs,
          workers: context.workers,
          clockBase: context.clockBase,
          warmupMs,
          measureMs,
          ...(topology.broker === "nats" && nats ? { nats } : {}),
          onTick: (elapsed, delivered) =>
            context.status(`${label}: ${formatRate(delivered / (elapsed / 1000))} deliveries/s`)
        })
        runs.forEach((run, i) => {
          notes.push(...integrityNotes(`${label} run ${i + 1}`, run.result))
          context.log(
            `  ${label} run ${i + 1}/${runs.length}: ${formatRate(run.result.deliveriesPerSec)} deliveries/s, ` +
              `relays ${run.relayCores.toFixed(2)} + broker ${run.brokerCores.toFixed(2)} cores, ` +
              `${formatRate(run.deliveriesPerCore)} deliveries/s per core, broker out/in per message ` +
              `${run.brokerOutPerMessage.toFixed(3)}/${run.brokerInPerMessage.toFixed(3)}` +
              // Batching per turn: under load one broker publish carries many group messages (≤ 1 publish each).
              (run.brokerOutPerMessage > 0
                ? ` (${(1 / run.brokerOutPerMessage).toFixed(0)} messages per publish)`
                : "") +
              ", " +
              `lost ${run.result.lost}, dup ${run.result.duplicates}`
          )
        })
        rows.push(fanoutRow(topology.label, caseLabel(c), runs))
      } catch (error) {
        skipped.push(`${label}: ${(error as Error).message}`)
        context.log(`  ${label}: FAILED ${(error as Error).message}`)
      }
    }
  }
}

/**
 * Issue 11's bench: the relay's group fan-out as one process and as three processes on Redis and
 * on NATS in the same invocation (deliveries/s per core used, the ratio to one process, broker
 * messages per delivery: below one per message under load, as a turn's publishes to a room share one
 * broker message; exactly-once accounting), then N idle authenticated units held over
 * several relay processes sharing one port (`--cluster-idle N`, 0 skips it).
 */
export const cluster: Scenario = {
  id: "cluster",
  title: "Relay cluster: fan-out over processes and idle capacity",
  run: async (context) => {
    const rows: Array<ResultRow> = []
    const notes: Array<string> = []
    const skipped: Array<string> = []
    const available = new Map<string, boolean>()
    for (const topology of topologies)
      available.set(topology.broker, topology.broker === "memory" || (await reachable(brokerPort[topology.broker])))
    // BENCH_CLUSTER_CASES="100x1024,1000x64" runs only these fan-out cases (units x payload bytes).
    const only = process.env.BENCH_CLUSTER_CASES?.split(",").map((name) => name.trim())
    const cases = fanoutCases(context.quick).filter((c) => !only || only.includes(`${c.units}x${c.payloadBytes}`))
    let nats: BenchNats | undefined
    if (cases.length > 0 && available.get("nats")) {
      nats = await benchNats()
      notes.push(
        nats.kind === "private"
          ? 'NATS rows: a private nats-server started for the run with GOMAXPROCS=1 (docs/cluster.md, "Running NATS"); BENCH_CLUSTER_NATS=shared measures the machine\'s server on 4222 instead'
          : "NATS rows: the machine's shared nats-server on 4222, Go runtime defaults"
      )
    }
    try {
      await measureFanout(context, cases, available, nats, { rows, notes, skipped })
    } finally {
      await nats?.stop()
    }
    const size = context.clusterIdle ?? (context.quick ? CLUSTER_IDLE_QUICK : CLUSTER_IDLE_FULL)
    const relays = processesFor(size, 3)
    const workers = processesFor(size, context.workers)
    const idleMs = context.quick ? 3000 : 10_000
    const connectDeadlineMs = Math.max(60_000, size * 5)
    if (size > 0 && available.get("redis")) {
      try {
        const run = await capacityRun({
          size,
          broker: "redis",
          relays,
          workers,
          idleMs,
          connectDeadlineMs,
          clockBase: context.clockBase,
          status: context.status
        })
        context.log(
          `  capacity: ${run.connected} of ${size} units connected in ${run.connectSeconds.toFixed(1)} s ` +
            `(${run.connectsPerSec.toFixed(0)}/s) over ${relays} relays [${run.relayFds.join(", ")} open files]; ` +
            `${run.rssKbPerConnection.toFixed(2)} KB RSS per connection, idle CPU ${run.idleCpuPercent.toFixed(2)} % ` +
            `(authenticator ${run.authIdleCpuPercent.toFixed(2)} %); failed ${run.failed}, not attempted ${run.notAttempted}` +
            `, closed while idle ${run.closedWhileIdle}`
        )
        rows.push(capacityRow(run))
      } catch (error) {
        skipped.push(`${size} idle units: ${(error as Error).message}`)
        context.log(`  capacity: FAILED ${(error as Error).message}`)
      }
    } else if (size > 0) skipped.push(`${size} idle units: Redis is not reachable on 127.0.0.1:6379`)
    return {
      scenario: "cluster",
      title: cluster.title,
      settings: {
        topologies,
        cases: fanoutCases(context.quick),
        warmupMs: context.quick ? 300 : 500,
        measureMs: context.quick ? 1000 : 1500,
        nats: nats?.kind ?? "none",
        runs: context.runs,
        workers: context.workers,
        capacity: { size, relays, workers, idleMs, connectDeadlineMs, broker: "redis", reusePort: true }
      },
      rows: withOneProcessRatios(rows),
      notes,
      skipped
    }
  }
}
