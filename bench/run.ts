/**
 * `npm run bench`: starts the baselines and our servers, drives them with the load generator and
 * writes results/<date>-<scenario>.json, results/summary.md and results/*.svg.
 *
 *   npm run bench                         full suite (bounded, ~15 minutes)
 *   npm run bench -- --quick              short runs, tiny sizes, results to a temp dir
 *   npm run bench -- fanout latency       only these scenarios
 *   npm run bench -- --summary            rewrite summary.md and the charts from the saved results, measure nothing
 *   npm run bench -- fanout neighbourhood --servers bun-raw,relay,neighbourhood   ratios to the relay from one run
 *   options: --runs N  --workers N  --servers bun-raw,node-ws,transport,relay,chat,hydrogen  --idle-sizes 10000,19000  --out DIR
 *            --cluster-idle N (idle units of the cluster scenario's capacity case; 0 skips it)
 */
import { existsSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { liveWorkers } from "./loadgen/Coordinator.ts"
import { latestResults, type ResultFile, summaryMarkdown, today, writeCharts, writeResult } from "./lib/output.ts"
import { machine } from "./lib/proc.ts"
import { availableServers, killAllChildren, type ServerKind } from "./lib/servers.ts"
import type { BenchContext, Scenario, ScenarioResult } from "./scenarios/common.ts"
import { fanout } from "./scenarios/fanout.ts"
import { latency } from "./scenarios/latency.ts"
import { idle } from "./scenarios/idle.ts"
import { churn } from "./scenarios/churn.ts"
import { hydrogen } from "./scenarios/hydrogen.ts"
import { slow } from "./scenarios/slow.ts"
import { aliya } from "./scenarios/aliya.ts"
import { udp } from "./scenarios/udp.ts"
import { neighbourhood } from "./scenarios/neighbourhood.ts"
import { cluster } from "./scenarios/cluster.ts"

const root = join(import.meta.dir, "..")
export const scenarios: ReadonlyArray<Scenario> = [
  fanout,
  latency,
  idle,
  churn,
  hydrogen,
  slow,
  neighbourhood,
  udp,
  aliya,
  cluster
]
const order = scenarios.map((scenario) => scenario.id)

interface Options {
  readonly quick: boolean
  readonly runs: number
  readonly workers: number
  readonly servers: Array<ServerKind>
  readonly idleSizes: Array<number>
  readonly clusterIdle: number | undefined
  readonly out: string
  readonly only: Array<string>
  readonly summaryOnly: boolean
}

const parseArgs = (argv: ReadonlyArray<string>): Options => {
  const value = (name: string) => {
    const i = argv.indexOf(name)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const quick = argv.includes("--quick")
  const numbers = (text: string | undefined) =>
    text
      ?.split(",")
      .map(Number)
      .filter((n) => Number.isInteger(n) && n > 0)
  const valued = new Set(["--runs", "--workers", "--servers", "--idle-sizes", "--out", "--cluster-idle"])
  const only = argv.filter((arg, i) => !arg.startsWith("--") && !valued.has(argv[i - 1] ?? ""))
  const unknown = only.filter((id) => !order.includes(id))
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(", ")}; choose from ${order.join(", ")}`)
  const available = availableServers()
  const requested = value("--servers")?.split(",") as Array<ServerKind> | undefined
  // Servers only their own scenario starts (neighbourhood): accepted here, measured by that scenario.
  const ownScenario = (kind: string) => order.includes(kind)
  const missing = requested?.filter((kind) => !available.includes(kind) && !ownScenario(kind)) ?? []
  if (missing.length > 0)
    throw new Error(`server ${missing.join(", ")} is not available; available: ${available.join(", ")}`)
  return {
    quick,
    runs: Number(value("--runs") ?? (quick ? 1 : 3)),
    workers: Number(value("--workers") ?? 2),
    servers: requested?.filter((kind) => available.includes(kind)) ?? available,
    idleSizes: numbers(value("--idle-sizes")) ?? (quick ? [1000] : [10_000]),
    clusterIdle: value("--cluster-idle") === undefined ? undefined : Number(value("--cluster-idle")),
    out: value("--out") ?? (quick ? join(tmpdir(), "switchboard-bench") : join(root, "results")),
    only,
    summaryOnly: argv.includes("--summary")
  }
}

const cleanup = () => {
  for (const worker of liveWorkers) worker.kill(9)
  killAllChildren()
}

const main = async () => {
  const options = parseArgs(process.argv.slice(2))
  const tty = process.stderr.isTTY
  let statusShown = false
  const log = (line: string) => {
    if (statusShown) process.stderr.write("\r\x1b[K")
    statusShown = false
    process.stderr.write(`${line}\n`)
  }
  const status = (line: string) => {
    if (!tty) return
    process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`)
    statusShown = true
  }
  const context: BenchContext = {
    quick: options.quick,
    runs: options.runs,
    workers: options.workers,
    servers: options.servers,
    idleSizes: options.idleSizes,
    ...(options.clusterIdle === undefined ? {} : { clusterIdle: options.clusterIdle }),
    clockBase: performance.timeOrigin + performance.now(),
    log,
    status,
    // Scenarios that compare with others (2 with 1, 5 with 1) fall back on the last saved results.
    earlier: new Map<string, ScenarioResult>(
      existsSync(options.out) ? latestResults(options.out).map((r) => [r.scenario, r]) : []
    )
  }
  const selected = options.summaryOnly
    ? []
    : scenarios.filter((s) => options.only.length === 0 || options.only.includes(s.id))
  const host = machine()
  log(
    `switchboard bench: ${selected.map((s) => s.id).join(", ")} on ${options.servers.join(", ")}; ${options.runs} run(s) each; results to ${options.out}`
  )
  const started = performance.now()
  for (const [i, scenario] of selected.entries()) {
    log(`[${i + 1}/${selected.length}] ${scenario.title}`)
    const scenarioStarted = performance.now()
    const result = await scenario.run(context)
    context.earlier.set(scenario.id, result)
    const file: ResultFile = {
      ...result,
      date: today(),
      finishedAt: new Date().toISOString(),
      quick: options.quick,
      machine: host
    }
    const path = writeResult(options.out, file)
    log(
      `[${i + 1}/${selected.length}] ${scenario.id} done in ${((performance.now() - scenarioStarted) / 1000).toFixed(0)} s → ${path}`
    )
  }
  const latest = latestResults(options.out)
  await Bun.write(join(options.out, "summary.md"), summaryMarkdown(latest, order))
  const charts = await writeCharts(options.out, latest)
  log(
    `summary: ${join(options.out, "summary.md")}; charts: ${charts.join(", ") || "none"}; total ${((performance.now() - started) / 1000).toFixed(0)} s`
  )
}

if (import.meta.main) {
  process.on("SIGINT", () => {
    cleanup()
    process.exit(130)
  })
  process.on("SIGTERM", () => {
    cleanup()
    process.exit(143)
  })
  main()
    .then(() => cleanup())
    .catch((error) => {
      console.error(`bench failed: ${(error as Error).stack ?? error}`)
      cleanup()
      process.exitCode = 1
    })
}
