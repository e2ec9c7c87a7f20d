import { parseArgs } from "node:util"
import { LoadGenerator, planGroup } from "../loadgen/Coordinator.ts"
import { collectGarbage, type GcReport } from "../lib/gc.ts"
import { HYDROGEN_RELIABLE_PREFIX, killAllChildren, startServer } from "../lib/servers.ts"
import { windowFor } from "../scenarios/common.ts"
import { type HydrogenGauges, hydrogenGauges } from "./hydrogen.ts"

/**
 * Is Hydrogen's memory under the reliable soak a leak or a plateau? Runs the server with a short
 * RecoveryWindow (--window-s) and compares its heap after full GCs (bench/lib/gc-hook.mjs): after N
 * and 2N churn cycles once the window has passed, and after equal stretches of the event load alone.
 * A leak shows object counts that grow with each stretch; a plateau returns to the same counts.
 * `npx bun run bench/soak/heap-probe.ts [--window-s 10] [--stretch-s 30] [--rate 40]`
 */
const { values } = parseArgs({
  options: {
    "window-s": { type: "string", default: "10" },
    "stretch-s": { type: "string", default: "30" },
    rate: { type: "string", default: "40" },
    units: { type: "string", default: "40" },
    senders: { type: "string", default: "8" },
    "churn-lanes": { type: "string", default: "4" },
    rounds: { type: "string", default: "2" }
  }
})
const windowS = Number(values["window-s"])
const stretchMs = Number(values["stretch-s"]) * 1000
const units = Number(values.units)
const senders = Number(values.senders)
const payloadBytes = 256
const clockBase = performance.timeOrigin + performance.now()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const server = await startServer("hydrogen", {
  env: { LOG_LEVEL: "error", HYDROGEN_RECOVERY_WINDOW: String(windowS) }
})
const wire = { ...server.target, reliable: true, batchAcks: false } as typeof server.target
interface Checkpoint {
  readonly label: string
  readonly churnCycles: number
  readonly report: GcReport
  readonly gauges: HydrogenGauges
}
const checkpoints: Array<Checkpoint> = []
let churnCycles = 0
const checkpoint = async (label: string) => {
  const [report] = await collectGarbage(server.pids)
  const point = { label, churnCycles, report: report!, gauges: await hydrogenGauges(wire) }
  checkpoints.push(point)
  const mib = (n: number) => (n / 2 ** 20).toFixed(1)
  const counts = point.report.objectTypeCounts ?? {}
  const watched = ["Object", "string", "Array", "Map", "Set", "Function", "Uint8Array"]
  console.log(
    `${label.padEnd(34)} ${watched.map((type) => `${type} ${counts[type] ?? 0}`).join(" ")}\n${"".padEnd(34)} churn ${String(churnCycles).padStart(7)}  rss ${mib(point.report.rss)} MiB  heap ${mib(point.report.heapUsed)} MiB  ` +
      `extra ${mib(point.report.extraMemory)} MiB  sessions ${point.gauges.sessions}  pending ${point.gauges.pendingAcks}`
  )
}

/** Object types whose counts differ by at least `min` between two checkpoints, most first. */
const diff = (from: Checkpoint, to: Checkpoint, min = 200) => {
  const a = from.report.objectTypeCounts ?? {}
  const b = to.report.objectTypeCounts ?? {}
  return [...new Set([...Object.keys(a), ...Object.keys(b)])]
    .map((type) => [type, (b[type] ?? 0) - (a[type] ?? 0)] as const)
    .filter(([, n]) => Math.abs(n) >= min)
    .sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]))
    .slice(0, 12)
    .map(([type, n]) => `${type} ${n > 0 ? "+" : ""}${n}`)
    .join(", ")
}

const generator = await LoadGenerator.connect({
  target: wire,
  clients: planGroup({ group: `${HYDROGEN_RELIABLE_PREFIX}-soak`, units, senders }),
  workers: 1,
  clockBase
})
const events = (ms: number) =>
  generator.run({
    plan: {
      mode: "paced",
      rate: Number(values.rate),
      window: windowFor(senders, payloadBytes),
      payloadBytes,
      maxPerSender: 100_000_000
    },
    warmupMs: 0,
    measureMs: ms,
    drainMs: 3000,
    serverPids: server.pids
  })
const churn = async (ms: number) => {
  const result = await LoadGenerator.churn({
    target: wire,
    workers: 1,
    concurrency: Number(values["churn-lanes"]),
    durationMs: ms,
    clockBase,
    group: `${HYDROGEN_RELIABLE_PREFIX}-churn`
  })
  churnCycles += result.completed
}
/** Past the recovery window plus two sweeps, so every detached session has ended. */
const pastWindow = () => sleep(windowS * 1000 + 3000)

try {
  await checkpoint("connected")
  await events(stretchMs)
  await checkpoint("events 1x")
  await events(stretchMs)
  await checkpoint("events 2x")
  await churn(stretchMs)
  await checkpoint("churn 1x, inside the window")
  await pastWindow()
  await checkpoint("churn 1x, past the window")
  await churn(stretchMs)
  await pastWindow()
  await checkpoint("churn 2x, past the window")
  for (let round = 1; round <= Number(values.rounds); round++) {
    await Promise.all([events(stretchMs), churn(stretchMs)])
    await pastWindow()
    await checkpoint(`both ${round}x, past the window`)
  }
  const at = (label: string) => checkpoints.find((c) => c.label === label)!
  console.log(`events 1x → 2x: ${diff(at("events 1x"), at("events 2x")) || "no type moved by 200+"}`)
  console.log(`churn held in the window: ${diff(at("events 2x"), at("churn 1x, inside the window"))}`)
  console.log(
    `churn 1x → 2x past the window: ${diff(at("churn 1x, past the window"), at("churn 2x, past the window")) || "no type moved by 200+"}`
  )
  const last = checkpoints.at(-1)!
  console.log(`both 1x → ${last.label}: ${diff(at("both 1x, past the window"), last) || "no type moved by 200+"}`)
  await generator.close()
} finally {
  await server.stop()
  killAllChildren()
}
