import { type ClientSpec } from "../loadgen/Protocols.ts"
import { LoadGenerator, type RunResult } from "../loadgen/Coordinator.ts"
import { type RunningServer, type ServerKind, type ServerOptions, startServer } from "../lib/servers.ts"
import { type Spread, spreadOf } from "../lib/stats.ts"

/** Settings shared by every scenario of one `npm run bench` invocation. */
export interface BenchContext {
  readonly quick: boolean
  /** Repetitions per measured case (median and spread are taken over them). */
  readonly runs: number
  /** Load-generator worker processes. */
  readonly workers: number
  /** Servers to measure, in table order. */
  readonly servers: ReadonlyArray<ServerKind>
  /** Idle-capacity sizes (scenario 3). */
  readonly idleSizes: ReadonlyArray<number>
  /** Idle units of the cluster scenario's capacity case (`--cluster-idle`; 0 skips it). */
  readonly clusterIdle?: number
  readonly clockBase: number
  readonly log: (line: string) => void
  readonly status: (line: string) => void
  /** Results of earlier scenarios in this invocation (scenario 2 reads scenario 1's maxima). */
  readonly earlier: Map<string, ScenarioResult>
}

export interface ResultRow {
  readonly server: ServerKind | string
  /** What was measured, e.g. "100 units, 64 B". */
  readonly case: string
  readonly metrics: Record<string, Spread>
  /** Ratios of medians to the baselines (e.g. deliveriesPerSec vs bun-raw). */
  readonly ratios?: Record<string, number>
  readonly notes?: ReadonlyArray<string>
}

export interface ScenarioResult {
  readonly scenario: string
  readonly title: string
  readonly settings: Record<string, unknown>
  readonly rows: Array<ResultRow>
  readonly notes: Array<string>
  /** Servers or sizes that were not measured, and why. */
  readonly skipped: Array<string>
}

export interface Scenario {
  readonly id: string
  readonly title: string
  readonly run: (context: BenchContext) => Promise<ScenarioResult>
}

export const serverLabel: Record<string, string> = {
  "bun-raw": "raw Bun.serve",
  "node-ws": "Node ws",
  transport: "our Transport, forwarding only",
  relay: "DroneEngage relay",
  chat: "tPacket chat",
  hydrogen: "Hydrogen",
  "hydrogen-raw": "raw Bun.serve, same reliable work",
  neighbourhood: "Neighbourhood",
  webcrypto: "WebCrypto (raw)"
}

/**
 * The servers of this run that a scenario measures: `not` leaves out those it says nothing about
 * (Hydrogen has its own scenario; the Transport baseline is a diagnostic for fan-out, memory, churn).
 */
export const serversFor = (context: BenchContext, not: ReadonlyArray<ServerKind>): Array<ServerKind> =>
  context.servers.filter((kind) => !not.includes(kind))

/** Starts a server, runs `body`, always stops it. */
export const withServer = async <A>(
  kind: ServerKind,
  body: (server: RunningServer) => Promise<A>,
  options: ServerOptions = {}
): Promise<A> => {
  const server = await startServer(kind, options)
  try {
    return await body(server)
  } finally {
    await server.stop()
  }
}

/** Connects a planned set of clients to a server, runs `body`, always closes the workers. */
export const withClients = async <A>(
  context: BenchContext,
  server: RunningServer,
  clients: ReadonlyArray<ClientSpec>,
  body: (generator: LoadGenerator) => Promise<A>,
  connectDeadlineMs?: number
): Promise<A> => {
  const generator = await LoadGenerator.connect({
    target: server.target,
    clients,
    workers: context.workers,
    clockBase: context.clockBase,
    ...(connectDeadlineMs ? { connectDeadlineMs } : {})
  })
  try {
    if (generator.connectFailures > 0) {
      throw new Error(
        `${generator.connectFailures} of ${clients.length} clients failed to connect: ${generator.connectErrors.join("; ")}`
      )
    }
    return await body(generator)
  } finally {
    await generator.close()
  }
}

/** Marks fan-out's rows at a fixed offered rate ("100 units, 64 B, paced 200.0k/s"). */
export const pacedCaseSuffix = ", paced "
export const isPacedCase = (label: string) => label.includes(pacedCaseSuffix)

export interface Connected {
  readonly kind: ServerKind
  readonly server: RunningServer
  readonly generator: LoadGenerator
}

/**
 * Every server up at once with its own clients (a server that fails to start is skipped with the reason, under
 * `caseLabel`), then `body`; everything is stopped afterwards. For runs that go server by server in turn: on a
 * shared box a figure swings with the load of the moment, so servers measured minutes apart are not comparable,
 * while neighbouring runs are.
 */
export const withEveryServer = async <A>(
  context: BenchContext,
  kinds: ReadonlyArray<ServerKind>,
  clients: ReadonlyArray<ClientSpec>,
  skipped: Array<string>,
  caseLabel: string,
  body: (connected: ReadonlyArray<Connected>) => Promise<A>,
  connected: ReadonlyArray<Connected> = []
): Promise<A> => {
  const [kind, ...rest] = kinds
  if (kind === undefined) return body(connected)
  let started = false
  try {
    return await withServer(kind, (server) =>
      withClients(context, server, clients, (generator) => {
        started = true
        return withEveryServer(context, rest, clients, skipped, caseLabel, body, [
          ...connected,
          { kind, server, generator }
        ])
      })
    )
  } catch (error) {
    if (started) throw error
    skipped.push(`${serverLabel[kind]} ${caseLabel}: ${(error as Error).message}`)
    context.log(`  ${serverLabel[kind]} ${caseLabel}: FAILED ${(error as Error).message}`)
    return withEveryServer(context, rest, clients, skipped, caseLabel, body, connected)
  }
}

/** Messages a sender may be ahead of the slowest receiver: ~256 KiB per receiver, 4..128 messages (enough to saturate the box). */
export const windowFor = (senders: number, payloadBytes: number) =>
  Math.max(4, Math.min(128, Math.floor((256 * 1024) / (senders * payloadBytes))))

export const runMetrics = (results: ReadonlyArray<RunResult>): Record<string, Spread> => ({
  deliveriesPerSec: spreadOf(results.map((r) => r.deliveriesPerSec)),
  p50Ms: spreadOf(results.map((r) => r.latency.p50Ms)),
  p99Ms: spreadOf(results.map((r) => r.latency.p99Ms)),
  maxMs: spreadOf(results.map((r) => r.latency.maxMs)),
  cpuUsPerDelivery: spreadOf(results.map((r) => r.serverCpuPerDeliveryUs)),
  serverCores: spreadOf(results.map((r) => r.serverCores)),
  clientCores: spreadOf(results.map((r) => r.clientCores)),
  lost: spreadOf(results.map((r) => r.lost)),
  duplicates: spreadOf(results.map((r) => r.duplicates))
})

/** Loss, duplicates and unexpected closes of one run, as notes (empty when the run was clean). */
export const integrityNotes = (label: string, result: RunResult): Array<string> => {
  const notes: Array<string> = []
  // Not arrived by the end of the drain is "not finished", not proof of loss: say what was delivered.
  if (result.lost > 0) {
    const delivered = result.expected - result.lost
    notes.push(`${label}: not finished: ${delivered} of ${result.expected} deliveries had arrived when the drain ended`)
  }
  if (result.duplicates > 0) notes.push(`${label}: ${result.duplicates} duplicate deliveries`)
  const closes = Object.entries(result.closes)
  if (closes.length > 0)
    notes.push(`${label}: receivers closed during the run: ${closes.map(([code, n]) => `${n}×${code}`).join(", ")}`)
  return notes
}

export const formatRate = (perSecond: number) =>
  perSecond >= 1e6
    ? `${(perSecond / 1e6).toFixed(2)}M`
    : perSecond >= 1e3
      ? `${(perSecond / 1e3).toFixed(1)}k`
      : perSecond.toFixed(0)

export const ratio = (ours: number | undefined, theirs: number | undefined) =>
  ours !== undefined && theirs !== undefined && Number.isFinite(ours) && Number.isFinite(theirs) && theirs !== 0
    ? ours / theirs
    : Number.NaN

/** Adds ratios to the two baselines for each non-baseline row of the same case. */
export const addBaselineRatios = (rows: Array<ResultRow>, metrics: ReadonlyArray<string>): Array<ResultRow> =>
  rows.map((row) => {
    if (row.server === "bun-raw" || row.server === "node-ws") return row
    const ratios: Record<string, number> = {}
    for (const baseline of ["bun-raw", "node-ws"]) {
      const base = rows.find((other) => other.server === baseline && other.case === row.case)
      if (!base) continue
      for (const metric of metrics)
        ratios[`${metric} vs ${baseline}`] = ratio(row.metrics[metric]?.median, base.metrics[metric]?.median)
    }
    return { ...row, ratios }
  })
