import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { LoadGenerator, planGroup, type RunResult } from "../../bench/loadgen/Coordinator.ts"
import { availableServers, type ServerKind, startServer } from "../../bench/lib/servers.ts"
import { it } from "../support/effect.ts"

/**
 * The benchmark suite in miniature (tiny sizes, ~1 s per server): the load generator drives the
 * baselines and our servers and must count every delivery exactly once. Correctness only, never
 * speed: this keeps the generator and the baselines from rotting between full runs.
 */

const servers = availableServers()

const tinyRun = (kind: ServerKind) =>
  Effect.gen(function* () {
    const server = yield* Effect.acquireRelease(
      Effect.promise(() => startServer(kind)),
      (server) => Effect.promise(() => server.stop())
    )
    const generator = yield* Effect.acquireRelease(
      Effect.promise(() =>
        LoadGenerator.connect({
          target: server.target,
          clients: planGroup({ group: "smoke", units: 12, senders: 3 }),
          workers: 2,
          clockBase: performance.timeOrigin + performance.now()
        })
      ),
      (generator) => Effect.promise(() => generator.close())
    )
    expect(generator.connectFailures).toBe(0)
    const run = () =>
      generator.run({
        plan: { mode: "paced", rate: 200, window: 16, payloadBytes: 64, maxPerSender: 40 },
        warmupMs: 50,
        measureMs: 300,
        // Generous: the drain ends as soon as every delivery is in, and a loaded box can be slow.
        drainMs: 8000,
        serverPids: server.pids
      })
    // Two runs on the same clients: the second must not count stragglers of the first.
    const results: Array<RunResult> = [yield* Effect.promise(run), yield* Effect.promise(run)]
    for (const result of results) {
      expect(result.sent).toBeGreaterThan(0)
      expect(result.lost).toBe(0)
      expect(result.duplicates).toBe(0)
      // Chat and Hydrogen deliver a sender's own messages back to it; DroneEngage never does.
      expect(result.expected).toBe(result.sent * (generator.echoesToSender ? 12 : 11))
      expect(result.closes).toEqual({})
      expect(result.deliveries).toBeGreaterThan(0)
      expect(Number.isFinite(result.latency.p50Ms)).toBe(true)
      expect(Number.isFinite(result.latency.p99Ms)).toBe(true)
      expect(Number.isFinite(result.serverCpuPerDeliveryUs)).toBe(true)
      expect(result.serverRssBytes).toBeGreaterThan(0)
    }
  })

describe("bench smoke", () => {
  for (const kind of servers)
    it.live(`load generator against ${kind}: every delivery counted once`, () => tinyRun(kind), 30_000)
})
