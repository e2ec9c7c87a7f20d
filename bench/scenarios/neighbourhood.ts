import { NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import { spreadOf } from "../lib/stats.ts"
import { formatRate, type ResultRow, type Scenario } from "./common.ts"
import { caseLabel, NEIGHBOURHOOD_FRAME_CASE } from "./fanout.ts"
import { payloadBytes, privateRouting, publicChatFrameBytes, publicFanout, rawVerify } from "./neighbourhood-cases.ts"
import { type RunFigures, SENDERS } from "./neighbourhood-replay.ts"

/**
 * Neighbourhood (OLAF v1.2) cases. Every client message carries an RSA-PSS signature the home
 * server verifies, so messages are signed before the clock starts (signing costs ~1 ms each) and
 * the senders replay them closed-loop: each sender keeps a window of messages in flight, counted done
 * when a probe receiver has them. Senders and the probe are in this process; the other receivers
 * are in receiver processes (as many as the load generator's workers), as the relay's are in the
 * fanout scenario. Server CPU per delivery is read from /proc. Files: neighbourhood-servers.ts
 * (the servers), -replay.ts (the closed loop), -receivers.ts (receiver processes), -cases.ts.
 */

const row = (
  server: string,
  c: string,
  runs: ReadonlyArray<RunFigures>,
  ratios?: Record<string, number>
): ResultRow => ({
  server,
  case: c,
  metrics: {
    messagesPerSec: spreadOf(runs.map((r) => r.messagesPerSec)),
    deliveriesPerSec: spreadOf(runs.map((r) => r.deliveriesPerSec)),
    p50Ms: spreadOf(runs.map((r) => r.p50Ms)),
    p99Ms: spreadOf(runs.map((r) => r.p99Ms)),
    cpuUsPerDelivery: spreadOf(runs.map((r) => r.cpuUsPerDelivery)),
    cpuUsPerMessage: spreadOf(runs.map((r) => r.cpuUsPerMessage)),
    messagesPerCoreSecond: spreadOf(runs.map((r) => 1e6 / r.cpuUsPerMessage)),
    verificationsPerCoreSecond: spreadOf(runs.map((r) => r.verificationsPerCoreSecond)),
    serverCores: spreadOf(runs.map((r) => r.serverCores)),
    clientCores: spreadOf(runs.map((r) => r.clientCores)),
    lost: spreadOf(runs.map((r) => r.lost))
  },
  ...(ratios ? { ratios } : {})
})

const oneServer = "public chat, 100 clients, 1 server"
const mesh = "public chat, 100 clients over 3 servers"
const private_ = "private chat, 10 senders on s0 → 10 clients on s1"
const rawPublish = "same frames, 1 raw Bun server: forward only"
const rawVerify_ = "same frames, 1 raw Bun server: parse, verify, forward"

export const neighbourhood: Scenario = {
  id: "neighbourhood",
  title: "Neighbourhood: signed public-chat fan-out, private-chat routing, RSA-PSS verification",
  run: async (context) => {
    const rows: Array<ResultRow> = []
    const notes: Array<string> = []
    const skipped: Array<string> = []
    const perSender = context.quick ? 150 : 600
    context.log(
      `  generating 100 client keys and signing ${SENDERS * perSender} messages per case (RSA-2048, ~1 ms each)…`
    )
    const keys = await Promise.all(Array.from({ length: 100 }, () => NeighbourhoodClient.generate()))
    const fanoutResult = context.earlier.get("fanout")
    const relay = fanoutResult?.rows.find((r) => r.server === "relay" && r.case === "100 units, 64 B")
    const relayRate = relay?.metrics.deliveriesPerSec?.median
    const relayCpu = relay?.metrics.cpuUsPerDelivery?.median
    // The relay carrying frames of a public chat's size: the like-for-like reference (wire bytes equal).
    const sameSize = fanoutResult?.rows.find(
      (r) => r.server === "relay" && r.case === caseLabel(NEIGHBOURHOOD_FRAME_CASE)
    )
    const sameSizeRate = sameSize?.metrics.deliveriesPerSec?.median
    const sameSizeCpu = sameSize?.metrics.cpuUsPerDelivery?.median
    const frameBytes = await publicChatFrameBytes(keys[0]!)
    notes.push(
      sameSize
        ? `"vs relay, same frame size": against the relay's ${caseLabel(NEIGHBOURHOOD_FRAME_CASE)} case of the fanout scenario; a public chat frame here is ${frameBytes} B`
        : `no relay row at ${caseLabel(NEIGHBOURHOOD_FRAME_CASE)} (a full fanout run measures it): only the 64 B ratio is given`
    )
    // A saved result carries finishedAt; one measured earlier in this invocation does not.
    const savedAt = (fanoutResult as { finishedAt?: string } | undefined)?.finishedAt
    if (relay) {
      notes.push(
        savedAt
          ? `relay figures from the saved fanout result of ${savedAt}, not this invocation (run "fanout neighbourhood" together for one-run ratios)`
          : "relay figures from this invocation's fanout scenario (100 units, 64 B)"
      )
    }
    const median = (runs: ReadonlyArray<RunFigures>, pick: (r: RunFigures) => number) => spreadOf(runs.map(pick)).median
    const cases: Array<[string, () => Promise<RunFigures>]> = [
      [oneServer, () => publicFanout(keys, { count: 1 }, perSender, context.workers)],
      [mesh, () => publicFanout(keys, { count: 3 }, perSender, context.workers)],
      [private_, () => privateRouting(keys, perSender, context.workers)],
      // The floor on this wire (570 B signed frames): what Bun's publish and the one RSA check cost without us.
      [rawPublish, () => publicFanout(keys, { raw: "publish" }, perSender, context.workers)],
      [rawVerify_, () => publicFanout(keys, { raw: "verify" }, perSender, context.workers)]
    ]
    // Runs interleave the cases (1 server, mesh, private, then again), so a busy spell on the box hits all alike.
    const runsOf = new Map<string, Array<RunFigures>>(cases.map(([label]) => [label, []]))
    const failed = new Set<string>()
    for (let i = 0; i < context.runs; i++) {
      for (const [label, measure] of cases) {
        if (failed.has(label)) continue
        try {
          const figures = await measure()
          runsOf.get(label)!.push(figures)
          if (figures.lost !== 0) notes.push(`${label} run ${i + 1}: ${figures.lost} deliveries missing`)
          context.log(
            `  ${label} run ${i + 1}/${context.runs}: ${formatRate(figures.messagesPerSec)} messages/s, ${formatRate(figures.deliveriesPerSec)} deliveries/s, ` +
              `${figures.cpuUsPerDelivery.toFixed(2)} µs CPU/delivery, ${figures.cpuUsPerMessage.toFixed(1)} µs CPU/message, ` +
              `${formatRate(figures.verificationsPerCoreSecond)} verifications/core-s, p99 ${figures.p99Ms.toFixed(1)} ms, ` +
              `servers ${figures.serverCores.toFixed(2)} cores, clients ${figures.clientCores.toFixed(2)} cores`
          )
        } catch (error) {
          failed.add(label)
          skipped.push(`${label}: ${(error as Error).message}`)
          context.log(`  ${label}: FAILED ${(error as Error).message}`)
        }
      }
    }
    const single = runsOf.get(oneServer)!
    const floor = runsOf.get(rawVerify_)!
    for (const [label, runs] of runsOf) {
      if (runs.length === 0) continue
      const ratios: Record<string, number> = {}
      if (label !== private_ && relayRate != null && relayCpu != null) {
        ratios["deliveriesPerSec vs relay"] = median(runs, (r) => r.deliveriesPerSec) / relayRate
        ratios["cpuUsPerDelivery vs relay"] = median(runs, (r) => r.cpuUsPerDelivery) / relayCpu
      }
      if (label !== private_ && sameSizeRate != null && sameSizeCpu != null) {
        ratios["deliveriesPerSec vs relay, same frame size"] = median(runs, (r) => r.deliveriesPerSec) / sameSizeRate
        ratios["cpuUsPerDelivery vs relay, same frame size"] = median(runs, (r) => r.cpuUsPerDelivery) / sameSizeCpu
      }
      if (label === oneServer && floor.length > 0) {
        ratios["deliveriesPerSec vs raw verify"] =
          median(runs, (r) => r.deliveriesPerSec) / median(floor, (r) => r.deliveriesPerSec)
        ratios["cpuUsPerDelivery vs raw verify"] =
          median(runs, (r) => r.cpuUsPerDelivery) / median(floor, (r) => r.cpuUsPerDelivery)
      }
      if (label === mesh && single.length > 0)
        ratios["deliveriesPerSec vs 1 server"] =
          median(runs, (r) => r.deliveriesPerSec) / median(single, (r) => r.deliveriesPerSec)
      const server = label === rawPublish || label === rawVerify_ ? "neighbourhood-raw" : "neighbourhood"
      rows.push(row(server, label, runs, Object.keys(ratios).length > 0 ? ratios : undefined))
    }
    const verifyRuns = []
    for (let i = 0; i < context.runs; i++) verifyRuns.push(await rawVerify(context.quick ? 2000 : 10_000))
    rows.push({
      server: "webcrypto",
      case: "raw RSA-PSS verify in the bench process",
      metrics: {
        verificationsPerSec: spreadOf(verifyRuns.map((v) => v.parallel.perSec)),
        sequentialPerSec: spreadOf(verifyRuns.map((v) => v.sequential.perSec)),
        verificationsPerCoreSecond: spreadOf(verifyRuns.map((v) => v.parallel.perCoreSecond)),
        // Shown in the summary's "messages (verifications) per core-second" column, beside the servers'.
        messagesPerCoreSecond: spreadOf(verifyRuns.map((v) => v.parallel.perCoreSecond))
      }
    })
    rows.push({
      server: "node:crypto",
      case: "raw RSA-PSS verify in the bench process (the server's verifier)",
      metrics: {
        verificationsPerSec: spreadOf(verifyRuns.map((v) => v.node.perSec)),
        verificationsPerCoreSecond: spreadOf(verifyRuns.map((v) => v.node.perCoreSecond)),
        messagesPerCoreSecond: spreadOf(verifyRuns.map((v) => v.node.perCoreSecond))
      }
    })
    for (const v of verifyRuns) {
      context.log(
        `  raw RSA-PSS verify: WebCrypto ${formatRate(v.sequential.perSec)}/s one at a time, ${formatRate(v.parallel.perSec)}/s in flight ` +
          `(${formatRate(v.parallel.perCoreSecond)} per CPU-second); node:crypto ${formatRate(v.node.perSec)}/s (${formatRate(v.node.perCoreSecond)} per CPU-second)`
      )
    }
    if (relayRate === undefined) notes.push("no relay fan-out result to compare with (run the fanout scenario first)")
    notes.push(
      "neighbourhood-raw rows: bench/baselines/neighbourhood-raw.ts on the same clients and frames, forwarding each frame as received; 'parse, verify, forward' is the least a v1.2 home server does (no counters, schemas, limits or metrics), the floor of the 1-server case"
    )
    notes.push(
      "messagesPerCoreSecond: client messages per server CPU-second; verificationsPerCoreSecond: RSA-PSS checks made (one per message at its home server, one more per neighbour for public chats) per server CPU-second, beside the raw verifiers' rows",
      "clients speak the load generator's WebSocket wire; senders and the probe run in the bench process, the other receivers in receiver processes (as many as the load generator's workers, like the relay's); serverCores and clientCores show which side was busy: compare CPU per delivery first"
    )
    return {
      scenario: "neighbourhood",
      title: neighbourhood.title,
      settings: {
        senders: SENDERS,
        window: "the fanout rule: ~256 KiB per receiver (46 public chats of ~570 B)",
        payloadBytes,
        frameBytes,
        receiverProcesses: context.workers,
        perSender,
        runs: context.runs,
        clients: 100
      },
      rows,
      notes,
      skipped
    }
  }
}
