import { type LoadGenerator, planGroup, type RunResult } from "../loadgen/Coordinator.ts"
import type { RunningServer } from "../lib/servers.ts"
import { rssBytes } from "../lib/proc.ts"
import { spreadOf } from "../lib/stats.ts"
import { SENDERS } from "./fanout.ts"
import {
  type BenchContext,
  formatRate,
  type ResultRow,
  type Scenario,
  serverLabel,
  windowFor,
  withClients,
  withServer,
  serversFor
} from "./common.ts"

const UNITS = 100
const PAYLOAD_BYTES = 4096
/** 10 senders × 50 msg/s × 4 KiB: 2 MB/s towards every receiver; the slow one reads one chunk a second. */
const RATE_PER_SENDER = 50

interface SlowRun {
  readonly result: RunResult
  readonly rssGrowthMb: number
  readonly slowCloses: Record<string, number>
  readonly slowDelivered: number
}

const sum = (values: ReadonlyArray<number>) => values.reduce((a, b) => a + b, 0)

const slowRun = async (
  context: BenchContext,
  server: RunningServer,
  generator: LoadGenerator,
  withSlowReader: boolean,
  measureMs: number,
  label: string
): Promise<SlowRun> => {
  const rssStart = sum(server.pids.map(rssBytes))
  let rssMax = rssStart
  const result = await generator.run({
    plan: {
      mode: "paced",
      rate: RATE_PER_SENDER,
      window: windowFor(SENDERS, PAYLOAD_BYTES),
      payloadBytes: PAYLOAD_BYTES,
      maxPerSender: 10_000_000
    },
    warmupMs: 300,
    measureMs,
    drainMs: 10_000,
    serverPids: server.pids,
    onTick: (elapsed, delivered) => {
      rssMax = Math.max(rssMax, sum(server.pids.map(rssBytes)))
      context.status(
        `${label}: ${formatRate(delivered / (elapsed / 1000))} deliveries/s, RSS +${((rssMax - rssStart) / 1e6).toFixed(1)} MB`
      )
    }
  })
  const released = withSlowReader ? await generator.release(1500) : { slowCloses: {}, slowDelivered: 0 }
  const run: SlowRun = {
    result,
    rssGrowthMb: (rssMax - rssStart) / 1e6,
    slowCloses: released.slowCloses,
    slowDelivered: released.slowDelivered
  }
  context.log(
    `  ${label}: others ${formatRate(result.deliveriesPerSec)} deliveries/s, p99 ${result.latency.p99Ms.toFixed(1)} ms, ` +
      `lost ${result.lost}; RSS +${run.rssGrowthMb.toFixed(1)} MB` +
      (withSlowReader ? `; slow reader got ${run.slowDelivered}, closed ${JSON.stringify(run.slowCloses)}` : "")
  )
  return run
}

/**
 * Scenario 6: one receiver that reads slowly. The others must keep their rate and latency (compared
 * with the same run without the slow one) and the server's memory must stay bounded (RSS sampled
 * every 250 ms); how the server ended the slow reader is recorded.
 */
export const slow: Scenario = {
  id: "slow",
  title: "Slow consumer",
  run: async (context) => {
    const rows: Array<ResultRow> = []
    const notes: Array<string> = []
    const skipped: Array<string> = []
    const measureMs = context.quick ? 3000 : 6000
    const runs = context.quick ? 1 : Math.min(2, context.runs)
    for (const kind of serversFor(context, ["transport"])) {
      for (const slowReaders of [0, 1]) {
        const label = `${serverLabel[kind]} ${slowReaders ? "with one slow reader" : "control"}`
        try {
          // Every run on a fresh server: RSS growth starts from the same place and a released reader is gone.
          const results: Array<SlowRun> = []
          for (let i = 0; i < runs; i++) {
            const clients = planGroup({ group: "slow", units: UNITS, senders: SENDERS, slowReceivers: slowReaders })
            const runLabel = `${label} run ${i + 1}/${runs}`
            results.push(
              await withServer(kind, (server) =>
                withClients(context, server, clients, (generator) =>
                  slowRun(context, server, generator, slowReaders > 0, measureMs, runLabel)
                )
              )
            )
            const run = results[results.length - 1]!
            if (run.result.lost > 0 || Object.keys(run.result.closes).length > 0) {
              notes.push(`${runLabel}: others lost ${run.result.lost}, closes ${JSON.stringify(run.result.closes)}`)
            }
          }
          const closeCodes = [...new Set(results.flatMap((r) => Object.keys(r.slowCloses)))]
          rows.push({
            server: kind,
            case: slowReaders ? "with one slow reader" : "control (no slow reader)",
            metrics: {
              deliveriesPerSec: spreadOf(results.map((r) => r.result.deliveriesPerSec)),
              p99Ms: spreadOf(results.map((r) => r.result.latency.p99Ms)),
              lost: spreadOf(results.map((r) => r.result.lost)),
              rssGrowthMb: spreadOf(results.map((r) => r.rssGrowthMb))
            },
            notes: slowReaders
              ? [closeCodes.length > 0 ? `closed with ${closeCodes.join(", ")}` : "still connected at the end"]
              : []
          })
        } catch (error) {
          skipped.push(`${label}: ${(error as Error).message}`)
          context.log(`  ${label}: FAILED ${(error as Error).message}`)
        }
      }
    }
    return {
      scenario: "slow",
      title: slow.title,
      settings: {
        units: UNITS,
        senders: SENDERS,
        payloadBytes: PAYLOAD_BYTES,
        ratePerSender: RATE_PER_SENDER,
        measureMs,
        runs,
        slowReaderReads: "one TCP chunk every 1000 ms"
      },
      rows,
      notes,
      skipped
    }
  }
}
