import { mkdirSync, readdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { LoadGenerator, planGroup, type RunResult } from "../loadgen/Coordinator.ts"
import { renderSvg } from "../lib/output.ts"
import { machine, rssBytes } from "../lib/proc.ts"
import { HYDROGEN_RELIABLE_PREFIX, killAllChildren, type ServerKind, startServer } from "../lib/servers.ts"
import { windowFor } from "../scenarios/common.ts"
import { describeHeld, type Held, heapAfterGc, heldBack, hydrogenGauges, SOAK_RECOVERY_WINDOW_S } from "./hydrogen.ts"
import { flatOverSecondHalf } from "./trend.ts"

/**
 * `npm run soak`: each server at half of its measured maximum load, with connection churn, for
 * --minutes (10); RSS and open fds of the server processes sampled every --sample-s (10) seconds.
 * Pass = RSS and fds flat over the second half (fitted growth under a noise threshold) and fds
 * back to their baseline once the churn and then the clients are gone. --servers relay,chat,hydrogen
 * (add hydrogen-reliable: a reliable channel, every event acked, history bounded by its config, and
 * RecoveryWindow --recovery-window-s (10), after which its sessions must be back to the clients'
 * count once the churn stops, to none once the clients are gone, and its JS heap after a full GC
 * to its level before the soak: see bench/soak/hydrogen.ts);
 * --sequential runs them one after another (default: all at once). Writes results/soak-<date>.json
 * and results/soak-<date>.svg.
 */

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    servers: { type: "string", default: "relay,chat,hydrogen" },
    sequential: { type: "boolean", default: false },
    "sample-s": { type: "string", default: "10" },
    "max-s": { type: "string", default: "6" },
    units: { type: "string", default: "40" },
    senders: { type: "string", default: "8" },
    "churn-lanes": { type: "string", default: "4" },
    "payload-bytes": { type: "string", default: "256" },
    "recovery-window-s": { type: "string", default: String(SOAK_RECOVERY_WINDOW_S) },
    "no-write": { type: "boolean", default: false }
  }
})

const minutes = Number(values.minutes)
const sampleMs = Number(values["sample-s"]) * 1000
/** What a soak runs: a server, or Hydrogen with its clients on a reliable (sequenced, acked) channel. */
type SoakKind = ServerKind | "hydrogen-reliable"
const kinds = values.servers.split(",") as Array<SoakKind>
const units = Number(values.units)
const senders = Number(values.senders)
const payloadBytes = Number(values["payload-bytes"])
const clockBase = performance.timeOrigin + performance.now()
const recoveryWindowS = Number(values["recovery-window-s"])

/** RSS may grow by this much over the second half (GC and allocator noise) before it counts as a trend. */
const RSS_NOISE_BYTES = (rss: number) => Math.max(16 * 2 ** 20, rss * 0.05)
/** Open fds may differ by this many from the baseline (a churn connection in flight, a log file). */
const FD_NOISE = 4

const openFds = (pids: ReadonlyArray<number>) =>
  pids.reduce((sum, pid) => {
    try {
      return sum + readdirSync(`/proc/${pid}/fd`).length
    } catch {
      return Number.NaN
    }
  }, 0)
const rssOf = (pids: ReadonlyArray<number>) => pids.reduce((sum, pid) => sum + rssBytes(pid), 0)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Sample {
  readonly atS: number
  readonly rssBytes: number
  readonly fds: number
}

interface Soaked {
  readonly server: SoakKind
  readonly maxDeliveriesPerSec: number
  readonly targetDeliveriesPerSec: number
  readonly ratePerSender: number
  readonly samples: Array<Sample>
  /** Open fds of the measured process (the relay, not its authenticator, whose login keep-alives come and go). */
  readonly fds: { idle: number; withClients: number; afterChurn: number; afterClients: number }
  run?: RunResult
  churn?: { completed: number; failed: number; errors: Array<string> }
  /** hydrogen-reliable: what the server holds before the soak, once the window has passed after the churn, after the clients. */
  held?: Held
}

/** Phase 1, per server alone: start it, connect the clients, measure the maximum delivery rate. */
const prepare = async (kind: SoakKind) => {
  const reliable = kind === "hydrogen-reliable"
  const server = await startServer(reliable ? "hydrogen" : kind, {
    env: { LOG_LEVEL: "error", ...(reliable ? { HYDROGEN_RECOVERY_WINDOW: String(recoveryWindowS) } : {}) }
  })
  // Reliable: every event sequenced, kept in history and acked by every subscriber, as in the hydrogen scenario.
  const wire = reliable
    ? ({ ...server.target, reliable: true, batchAcks: false } as typeof server.target)
    : server.target
  const idleFds = openFds(server.pids)
  const generator = await LoadGenerator.connect({
    target: wire,
    clients: planGroup({ group: reliable ? `${HYDROGEN_RELIABLE_PREFIX}-soak` : "soak", units, senders }),
    workers: 1,
    clockBase
  })
  if (generator.connectFailures > 0)
    throw new Error(`${kind}: ${generator.connectFailures} clients failed: ${generator.connectErrors.join("; ")}`)
  const max = await generator.run({
    plan: { mode: "max", rate: 0, window: windowFor(senders, payloadBytes), payloadBytes, maxPerSender: 100_000_000 },
    warmupMs: 1000,
    measureMs: Number(values["max-s"]) * 1000,
    drainMs: 5000,
    serverPids: server.pids
  })
  const receivers = generator.echoesToSender ? units : units - 1
  const target = max.deliveriesPerSec / 2
  const ratePerSender = target / (senders * receivers)
  console.log(
    `${kind}: max ${Math.round(max.deliveriesPerSec)} deliveries/s; soaking at ${Math.round(target)}/s (${ratePerSender.toFixed(1)} msg/s per sender)`
  )
  await sleep(2000)
  const soaked: Soaked = {
    server: kind,
    maxDeliveriesPerSec: Math.round(max.deliveriesPerSec),
    targetDeliveriesPerSec: Math.round(target),
    ratePerSender,
    samples: [],
    fds: { idle: idleFds, withClients: openFds(server.pids), afterChurn: Number.NaN, afterClients: Number.NaN },
    ...(reliable ? { held: { heapBefore: await heapAfterGc(server.pids) } } : {})
  }
  return { server, wire, reliable, generator, soaked }
}

/** Phase 2: the paced load and the churn for `minutes`, sampling RSS and fds; then the fds after churn and after the clients. */
const soak = async ({ server, wire, reliable, generator, soaked }: Awaited<ReturnType<typeof prepare>>) => {
  const durationMs = minutes * 60_000
  const started = performance.now()
  const sample = () =>
    soaked.samples.push({
      atS: (performance.now() - started) / 1000,
      rssBytes: rssOf(server.allPids),
      fds: openFds(server.allPids)
    })
  sample()
  const sampler = setInterval(sample, sampleMs)
  const [run, churn] = await Promise.all([
    generator.run({
      // The same window as the maximum: senders never run further ahead of the receivers than they did there.
      plan: {
        mode: "paced",
        rate: soaked.ratePerSender,
        window: windowFor(senders, payloadBytes),
        payloadBytes,
        maxPerSender: 100_000_000
      },
      warmupMs: 0,
      measureMs: durationMs,
      drainMs: 5000,
      serverPids: server.pids
    }),
    LoadGenerator.churn({
      target: wire,
      workers: 1,
      concurrency: Number(values["churn-lanes"]),
      durationMs: durationMs - 2 * sampleMs,
      clockBase,
      group: reliable ? `${HYDROGEN_RELIABLE_PREFIX}-churn` : "churn"
    })
  ])
  clearInterval(sampler)
  sample()
  soaked.run = run
  soaked.churn = churn
  // Reliable: past the recovery window (swept every second), so every churned session has ended.
  const settle = reliable ? recoveryWindowS * 1000 + 3000 : 3000
  await sleep(settle)
  soaked.fds.afterChurn = openFds(server.pids)
  if (soaked.held) {
    soaked.held.afterChurn = await hydrogenGauges(wire)
    soaked.held.heapAfterChurn = await heapAfterGc(server.pids)
  }
  await generator.close()
  await sleep(settle)
  soaked.fds.afterClients = openFds(server.pids)
  if (soaked.held) soaked.held.afterClients = await hydrogenGauges(wire)
  await server.stop()
}

const verdict = (soaked: Soaked) => {
  const rssPoints = soaked.samples.map((s) => [s.atS / 60, s.rssBytes] as const)
  const fdPoints = soaked.samples.map((s) => [s.atS / 60, s.fds] as const)
  const meanRss = soaked.samples.reduce((sum, s) => sum + s.rssBytes, 0) / Math.max(1, soaked.samples.length)
  const rss = flatOverSecondHalf(rssPoints, RSS_NOISE_BYTES(meanRss))
  const fds = flatOverSecondHalf(fdPoints, FD_NOISE)
  const fdsBackAfterChurn = Math.abs(soaked.fds.afterChurn - soaked.fds.withClients) <= FD_NOISE
  const fdsBackAfterClients = Math.abs(soaked.fds.afterClients - soaked.fds.idle) <= FD_NOISE
  const heldBackAfterWindow = !soaked.held || heldBack(soaked.held, units)
  const delivered = soaked.run
    ? { lost: soaked.run.lost, duplicates: soaked.run.duplicates, closes: soaked.run.closes }
    : undefined
  return {
    rss,
    fds,
    fdsBackAfterChurn,
    fdsBackAfterClients,
    delivered,
    heldBackAfterWindow,
    pass: rss.flat && fds.flat && fdsBackAfterChurn && fdsBackAfterClients && heldBackAfterWindow
  }
}

const chart = (all: ReadonlyArray<Soaked>) =>
  renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: `Soak: ${minutes} min at half of the maximum load with connection churn`,
    background: "white",
    data: {
      values: all.flatMap((s) =>
        s.samples.flatMap((p) => [
          { server: s.server, minute: p.atS / 60, measure: "RSS (MiB)", value: p.rssBytes / 2 ** 20 },
          { server: s.server, minute: p.atS / 60, measure: "open fds", value: p.fds }
        ])
      )
    },
    facet: { row: { field: "measure", type: "nominal", title: null } },
    spec: {
      width: 520,
      height: 180,
      mark: { type: "line", point: true },
      encoding: {
        x: { field: "minute", type: "quantitative", title: "minutes" },
        y: { field: "value", type: "quantitative", title: null, scale: { zero: false } },
        color: { field: "server", type: "nominal" }
      }
    },
    resolve: { scale: { y: "independent" } }
  })

process.on("SIGINT", () => {
  killAllChildren()
  process.exit(130)
})

const all: Array<Soaked> = []
try {
  if (values.sequential) {
    for (const kind of kinds) {
      const prepared = await prepare(kind)
      all.push(prepared.soaked)
      await soak(prepared)
    }
  } else {
    const prepared: Array<Awaited<ReturnType<typeof prepare>>> = []
    for (const kind of kinds) prepared.push(await prepare(kind))
    all.push(...prepared.map((p) => p.soaked))
    await Promise.all(prepared.map(soak))
  }
} finally {
  killAllChildren()
}

const results = all.map((soaked) => ({ ...soaked, verdict: verdict(soaked) }))
for (const r of results) {
  const v = r.verdict
  console.log(
    `${r.server}: ${v.pass ? "PASS" : "FAIL"}  RSS growth over the 2nd half ${(v.rss.growthOverSecondHalf / 2 ** 20).toFixed(1)} MiB ` +
      `(allowed ${(v.rss.allowed / 2 ** 20).toFixed(0)}), fds growth ${v.fds.growthOverSecondHalf.toFixed(1)}; fds idle ${r.fds.idle}, ` +
      `with clients ${r.fds.withClients}, after churn ${r.fds.afterChurn}, after clients ${r.fds.afterClients}; ` +
      `churn ${r.churn?.completed ?? 0} cycles (${r.churn?.failed ?? 0} failed); lost ${v.delivered?.lost ?? "–"}, closes ${JSON.stringify(v.delivered?.closes ?? {})}`
  )
  if (r.held) console.log(describeHeld(r.held, recoveryWindowS, units))
  if (r.churn?.errors.length) console.log(`  churn errors: ${r.churn.errors.join("; ")}`)
}
if (!values["no-write"]) {
  const dir = join(import.meta.dir, "..", "..", "results")
  mkdirSync(dir, { recursive: true })
  const date = new Date().toISOString().slice(0, 10)
  const settings = {
    minutes,
    sampleS: sampleMs / 1000,
    sequential: values.sequential,
    units,
    senders,
    payloadBytes,
    churnLanes: Number(values["churn-lanes"]),
    recoveryWindowS
  }
  writeFileSync(
    join(dir, `soak-${date}.json`),
    JSON.stringify({ date: new Date().toISOString(), settings, machine: machine(), results }, null, 2) + "\n"
  )
  writeFileSync(join(dir, `soak-${date}.svg`), await chart(all))
  console.log(`wrote results/soak-${date}.json and results/soak-${date}.svg`)
}
process.exit(results.every((r) => r.verdict.pass) ? 0 : 1)
