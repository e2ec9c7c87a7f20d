import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as vega from "vega"
import * as vl from "vega-lite"
import type { ResultRow, ScenarioResult } from "../scenarios/common.ts"
import { isPacedCase, serverLabel } from "../scenarios/common.ts"
import type { Spread } from "./stats.ts"
import { clusterFanoutChart } from "./cluster-chart.ts"

/** A result file: one scenario of one invocation, with the machine it ran on. */
export interface ResultFile extends ScenarioResult {
  readonly date: string
  readonly finishedAt: string
  readonly quick: boolean
  readonly machine: Record<string, unknown>
}

export const today = () => new Date().toISOString().slice(0, 10)

export const writeResult = (dir: string, result: ResultFile): string => {
  mkdirSync(dir, { recursive: true })
  const path = join(dir, `${result.date}-${result.scenario}.json`)
  writeFileSync(
    path,
    JSON.stringify(result, (_, value) => (typeof value === "number" && !Number.isFinite(value) ? null : value), 2) +
      "\n"
  )
  return path
}

/** The newest result file of every scenario in `dir`. */
export const latestResults = (dir: string): Array<ResultFile> => {
  const newest = new Map<string, ResultFile>()
  for (const name of readdirSync(dir)
    .filter((n) => /^\d{4}-\d{2}-\d{2}-[a-z]+\.json$/.test(n))
    .sort()) {
    const file = JSON.parse(readFileSync(join(dir, name), "utf8")) as ResultFile
    const current = newest.get(file.scenario)
    if (!current || current.finishedAt <= file.finishedAt) newest.set(file.scenario, file)
  }
  return [...newest.values()]
}

// ---------------------------------------------------------------- Markdown

interface Column {
  readonly label: string
  readonly cell: (row: ResultRow) => string
}

const num = (value: number | null | undefined, digits = 2) =>
  value === null || value === undefined || !Number.isFinite(value) ? "–" : value.toFixed(digits)

const rate = (value: number | null | undefined) => {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–"
  return value >= 1e6
    ? `${(value / 1e6).toFixed(2)}M`
    : value >= 1e3
      ? `${(value / 1e3).toFixed(1)}k`
      : value.toFixed(0)
}

/** "median ±half-range %" so a reader sees how much repeated runs moved. */
const withSpread = (spread: Spread | undefined, format: (v: number) => string) => {
  if (!spread || spread.median === null || !Number.isFinite(spread.median)) return "–"
  const half =
    spread.runs > 1 && Number.isFinite(spread.relativeSpread)
      ? ` ±${Math.round((spread.relativeSpread * 100) / 2)}%`
      : ""
  return `${format(spread.median)}${half}`
}

const metric = (label: string, key: string, format: (v: number) => string = (v) => num(v)): Column => ({
  label,
  cell: (row) => withSpread(row.metrics[key], format)
})

const ratioColumn = (label: string, key: string): Column => ({
  label,
  cell: (row) => (row.ratios && key in row.ratios ? `${num(row.ratios[key], 2)}×` : "")
})

const columns: Record<string, Array<Column>> = {
  fanout: [
    metric("deliveries/s", "deliveriesPerSec", rate),
    metric("p50 ms", "p50Ms"),
    metric("p99 ms", "p99Ms"),
    metric("max ms", "maxMs"),
    metric("server CPU µs/delivery", "cpuUsPerDelivery", (v) => num(v, 3)),
    ratioColumn("rate vs raw Bun", "deliveriesPerSec vs bun-raw"),
    ratioColumn("CPU vs raw Bun", "cpuUsPerDelivery vs bun-raw"),
    ratioColumn("rate vs Node ws", "deliveriesPerSec vs node-ws"),
    ratioColumn("CPU vs Node ws", "cpuUsPerDelivery vs node-ws"),
    metric("not delivered by drain end", "lost", (v) => v.toFixed(0)),
    metric("dup", "duplicates", (v) => v.toFixed(0))
  ],
  latency: [
    metric("deliveries/s", "deliveriesPerSec", rate),
    metric("p50 ms", "p50Ms"),
    metric("p99 ms", "p99Ms"),
    metric("max ms", "maxMs"),
    metric("server CPU µs/delivery", "cpuUsPerDelivery", (v) => num(v, 3)),
    metric("not delivered by drain end", "lost", (v) => v.toFixed(0))
  ],
  idle: [
    metric("connect s", "connectSeconds"),
    metric("connects/s", "connectsPerSec", rate),
    metric("RSS KB/conn", "rssKbPerConnection", (v) => num(v, 2)),
    metric("RSS KB/conn 2 s after connecting", "rssKbPerConnectionAt2s", (v) => num(v, 2)),
    metric("RSS KB/conn before GC", "rssKbPerConnectionBeforeGc", (v) => num(v, 2)),
    metric("JS heap KB/conn live", "heapKbPerConnection", (v) => num(v, 2)),
    metric("JS heap KB/conn kept", "heapCapacityKbPerConnection", (v) => num(v, 2)),
    metric("idle CPU %", "idleCpuPercent", (v) => num(v, 2)),
    metric("CPU µs/conn/s", "idleCpuUsPerConnectionSecond", (v) => num(v, 3)),
    { label: "note", cell: (row) => (row.notes ?? []).join("; ") }
  ],
  churn: [
    metric("logins+connects/s", "perSecond", rate),
    metric("p50 ms", "p50Ms"),
    metric("p99 ms", "p99Ms"),
    metric("server CPU µs/churn", "cpuUsPerChurn", (v) => num(v, 1)),
    metric("failed", "failed", (v) => v.toFixed(0))
  ],
  hydrogen: [
    metric("acked events/s", "ackedPerSec", rate),
    metric("p50 ms", "p50Ms"),
    metric("p99 ms", "p99Ms"),
    metric("server CPU µs/event", "cpuUsPerDelivery", (v) => num(v, 3)),
    ratioColumn("vs relay fan-out", "ackedPerSec vs relay"),
    ratioColumn("vs raw reliable floor", "ackedPerSec vs hydrogen-raw"),
    ratioColumn("CPU vs raw floor", "cpuUsPerDelivery vs hydrogen-raw"),
    metric("server RSS MB", "serverRssMb", (v) => num(v, 0)),
    metric("not delivered by drain end", "lost", (v) => v.toFixed(0))
  ],
  neighbourhood: [
    metric("messages/s", "messagesPerSec", rate),
    metric("deliveries/s", "deliveriesPerSec", rate),
    metric("p50 ms", "p50Ms"),
    metric("p99 ms", "p99Ms"),
    metric("server CPU µs/delivery", "cpuUsPerDelivery", (v) => num(v, 3)),
    metric("server CPU µs/message", "cpuUsPerMessage", (v) => num(v, 1)),
    metric("messages (verifications) per core-second", "messagesPerCoreSecond", rate),
    metric("raw verify/s", "verificationsPerSec", rate),
    metric("server cores", "serverCores", (v) => num(v, 2)),
    metric("client cores", "clientCores", (v) => num(v, 2)),
    ratioColumn("rate vs relay", "deliveriesPerSec vs relay"),
    ratioColumn("CPU vs relay", "cpuUsPerDelivery vs relay"),
    ratioColumn("rate vs relay, same frame size", "deliveriesPerSec vs relay, same frame size"),
    ratioColumn("CPU vs relay, same frame size", "cpuUsPerDelivery vs relay, same frame size"),
    ratioColumn("mesh vs 1 server", "deliveriesPerSec vs 1 server"),
    ratioColumn("rate vs raw verify", "deliveriesPerSec vs raw verify"),
    ratioColumn("CPU vs raw verify", "cpuUsPerDelivery vs raw verify"),
    metric("lost", "lost", (v) => v.toFixed(0))
  ],
  slow: [
    metric("deliveries/s (others)", "deliveriesPerSec", rate),
    metric("p99 ms (others)", "p99Ms"),
    metric("not delivered by drain end (others)", "lost", (v) => v.toFixed(0)),
    metric("RSS growth MB", "rssGrowthMb", (v) => num(v, 1)),
    { label: "slow one's close code", cell: (row) => (row.notes ?? []).join("; ") }
  ],
  cluster: [
    metric("deliveries/s", "deliveriesPerSec", rate),
    metric("deliveries/s per core", "deliveriesPerCore", rate),
    ratioColumn("rate vs one process", "deliveriesPerSec vs one process"),
    ratioColumn("per core vs one process", "deliveriesPerCore vs one process"),
    metric("relay cores", "relayCores"),
    metric("broker cores", "brokerCores"),
    metric("p99 ms", "p99Ms"),
    metric("broker out per message", "brokerOutPerMessage"),
    metric("broker in per message", "brokerInPerMessage"),
    metric("broker msgs per delivery", "brokerMessagesPerDelivery", (v) => num(v, 4)),
    metric("lost", "lost", (v) => v.toFixed(0)),
    metric("dup", "duplicates", (v) => v.toFixed(0))
  ],
  "cluster-capacity": [
    metric("connected", "connected", (v) => v.toFixed(0)),
    metric("failed", "failed", (v) => v.toFixed(0)),
    metric("connect s", "connectSeconds", (v) => num(v, 1)),
    metric("logins+connects/s", "connectsPerSec", rate),
    metric("relay RSS KB/conn", "rssKbPerConnection"),
    metric("Redis KB/conn", "brokerKbPerConnection"),
    metric("idle CPU % (relays)", "idleCpuPercent"),
    metric("idle CPU % (authenticator)", "authIdleCpuPercent"),
    metric("closed while idle", "closedWhileIdle", (v) => v.toFixed(0)),
    { label: "note", cell: (row) => (row.notes ?? []).join("; ") }
  ],
  aliya: [
    metric("requests/s", "requestsPerSec", rate),
    metric("p50 ms", "p50Ms"),
    metric("p99 ms", "p99Ms"),
    metric("server CPU µs/request", "serverCpuUsPerRequest", (v) => num(v, 1)),
    ratioColumn("rate vs ceiling", "requestsPerSec vs aliya-raw"),
    ratioColumn("CPU efficiency vs ceiling", "cpu efficiency vs aliya-raw")
  ],
  udp: [
    metric("packets/s observed", "packetsPerSec", rate),
    metric("server CPU µs/packet", "cpuUsPerPacket", (v) => num(v, 2)),
    metric("packets per server core-second", "packetsPerCoreSecond", rate),
    ratioColumn("vs raw forwarder (per core)", "packetsPerCoreSecond vs raw"),
    metric("lost", "lost", (v) => v.toFixed(0))
  ]
}

/** Scenarios with a second table: rows that have `metric` take the columns of `columns`. */
const secondTables: Record<string, { readonly metric: string; readonly columns: string }> = {
  cluster: { metric: "connected", columns: "cluster-capacity" }
}

const tables = (result: ResultFile): string => {
  const second = secondTables[result.scenario]
  if (!second) return table(columns[result.scenario] ?? [], result.rows)
  const split = result.rows.filter((row) => second.metric in row.metrics)
  const first = result.rows.filter((row) => !(second.metric in row.metrics))
  return [table(columns[result.scenario] ?? [], first), table(columns[second.columns] ?? [], split)]
    .filter((text) => text.split("\n").length > 2)
    .join("\n\n")
}

const table = (cols: ReadonlyArray<Column>, rows: ReadonlyArray<ResultRow>): string => {
  const header = `| server | case | ${cols.map((c) => c.label).join(" | ")} |`
  const rule = `|---|---|${cols.map(() => "---").join("|")}|`
  const lines = rows.map(
    (row) => `| ${serverLabel[row.server] ?? row.server} | ${row.case} | ${cols.map((c) => c.cell(row)).join(" | ")} |`
  )
  return [header, rule, ...lines].join("\n")
}

export const summaryMarkdown = (results: ReadonlyArray<ResultFile>, order: ReadonlyArray<string>): string => {
  const sorted = [...results].sort((a, b) => order.indexOf(a.scenario) - order.indexOf(b.scenario))
  const machine = sorted[0]?.machine ?? {}
  const parts = [
    "# Benchmark results",
    "",
    `Measured with \`npm run bench\` on ${describeMachine(machine)}. Each figure is the median of the runs;`,
    "±N% is half the range between the fastest and the slowest run. Server CPU is the server process's own",
    "user+system time from /proc divided by the deliveries it made, so it holds even where the load",
    "generator (on the same 2 cores) is the bottleneck. See docs/benchmarks.md for the method.",
    ""
  ]
  for (const result of sorted) {
    parts.push(`## ${result.title} (${result.scenario}, ${result.date}${result.quick ? ", quick" : ""})`, "")
    parts.push(tables(result), "")
    if (result.skipped.length > 0) parts.push("Not measured:", ...result.skipped.map((s) => `- ${s}`), "")
    const notes = result.notes.slice(0, 12)
    if (notes.length > 0) parts.push("Notes:", ...notes.map((n) => `- ${n}`), "")
    if (result.notes.length > notes.length)
      parts.push(`- … ${result.notes.length - notes.length} more in the JSON file`, "")
  }
  return parts.join("\n")
}

export const describeMachine = (machine: Record<string, unknown>) =>
  `${machine.nproc} × ${machine.cpuModel}, ${machine.memoryGiB} GiB RAM, Linux ${machine.kernel}, Bun ${machine.bun}, Node ${machine.node}` +
  `, open files limit ${machine.openFilesSoftHard}`

// ---------------------------------------------------------------- Charts

const serverOrder = ["bun-raw", "node-ws", "transport", "relay", "chat", "hydrogen"].map((k) => serverLabel[k]!)

/** Renders a vega-lite spec to SVG without a browser. */
export const renderSvg = async (spec: vl.TopLevelSpec): Promise<string> => {
  const compiled = vl.compile(spec).spec
  const view = new vega.View(vega.parse(compiled), { renderer: "none" })
  return view.toSVG()
}

const groupedBars = (
  title: string,
  yTitle: string,
  values: Array<Record<string, unknown>>,
  logScale = false
): vl.TopLevelSpec => ({
  $schema: "https://vega.github.io/schema/vega-lite/v6.json",
  title,
  width: { step: 28 },
  height: 260,
  background: "white",
  data: { values },
  encoding: {
    x: { field: "case", type: "nominal", title: null, sort: null, axis: { labelAngle: 0 } },
    xOffset: { field: "server", type: "nominal", sort: serverOrder },
    color: {
      field: "server",
      type: "nominal",
      sort: serverOrder,
      title: "server",
      scale: { domain: serverOrder },
      legend: { labelLimit: 260 }
    }
  },
  layer: [
    {
      mark: { type: "bar" },
      // Bars on a log scale must not stack from zero (log 0 breaks the scale).
      encoding: {
        y: {
          field: "median",
          type: "quantitative",
          title: yTitle,
          ...(logScale ? { scale: { type: "log" }, stack: null } : {})
        }
      }
    },
    {
      mark: { type: "rule", color: "black" },
      encoding: { y: { field: "min", type: "quantitative" }, y2: { field: "max" } }
    }
  ]
})

const points = (result: ResultFile | undefined, key: string) =>
  (result?.rows ?? [])
    // Fan-out's paced rows run at a fixed rate, not a measured maximum: tables only.
    .filter((row) => !isPacedCase(row.case))
    .filter((row) => row.metrics[key] && Number.isFinite(row.metrics[key]!.median))
    .map((row) => ({
      server: serverLabel[row.server] ?? row.server,
      case: row.case,
      median: row.metrics[key]!.median,
      min: row.metrics[key]!.min,
      max: row.metrics[key]!.max
    }))

/** Writes the SVG charts that the current results support; returns the file names. */
export const writeCharts = async (dir: string, results: ReadonlyArray<ResultFile>): Promise<Array<string>> => {
  const byId = new Map(results.map((r) => [r.scenario, r]))
  const charts: Array<[string, vl.TopLevelSpec | undefined]> = []
  const fan = byId.get("fanout")
  if (fan) {
    charts.push([
      "fanout-throughput.svg",
      groupedBars(
        "Group fan-out: deliveries per second (higher is better)",
        "deliveries/s",
        points(fan, "deliveriesPerSec")
      )
    ])
    charts.push([
      "fanout-cpu.svg",
      groupedBars(
        "Group fan-out: server CPU per delivery (lower is better)",
        "µs per delivery",
        points(fan, "cpuUsPerDelivery"),
        true
      )
    ])
  }
  const lat = byId.get("latency")
  if (lat) {
    const values = [
      ...points(lat, "p50Ms").map((p) => ({ ...p, percentile: "p50" })),
      ...points(lat, "p99Ms").map((p) => ({ ...p, percentile: "p99" }))
    ]
    charts.push([
      "latency.svg",
      {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        title: "Latency percentiles under paced load (lower is better)",
        background: "white",
        data: { values },
        facet: { row: { field: "percentile", type: "nominal", title: null } },
        spec: {
          width: { step: 22 },
          height: 180,
          encoding: {
            x: { field: "case", type: "nominal", title: null, sort: null, axis: { labelAngle: -15, labelLimit: 260 } },
            xOffset: { field: "server", type: "nominal", sort: serverOrder },
            color: {
              field: "server",
              type: "nominal",
              sort: serverOrder,
              scale: { domain: serverOrder },
              legend: { labelLimit: 260 }
            }
          },
          layer: [
            {
              mark: "bar",
              encoding: {
                y: { field: "median", type: "quantitative", title: "ms", scale: { type: "log" }, stack: null }
              }
            },
            {
              mark: { type: "rule", color: "black" },
              encoding: { y: { field: "min", type: "quantitative" }, y2: { field: "max" } }
            }
          ]
        },
        resolve: { scale: { y: "independent" } }
      }
    ])
  }
  const idle = byId.get("idle")
  if (idle)
    charts.push([
      "idle-memory.svg",
      groupedBars(
        "Idle connections: server RSS per connection (lower is better)",
        "KB per connection",
        points(idle, "rssKbPerConnection")
      )
    ])
  const clusterResult = byId.get("cluster")
  if (clusterResult) charts.push(["cluster-fanout.svg", clusterFanoutChart(clusterResult)])
  const written: Array<string> = []
  for (const [name, spec] of charts) {
    if (!spec) continue
    writeFileSync(join(dir, name), await renderSvg(spec))
    written.push(name)
  }
  return written
}
