import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { type ClusterFanoutRun, clusterFanoutRuns, type Topology, topologies } from "../../bench/lib/cluster-fanout.ts"
import { requireService } from "../support/services.ts"
import { it } from "../support/effect.ts"

/**
 * The cluster bench in miniature: the relay's group fan-out as one process and as three relay
 * processes on Redis and on NATS (real services on loopback; skipped with a reason outside CI),
 * with a handful of clients spread over the relays. Every delivery must be counted exactly once
 * and a message costs at most one broker publish (a turn's publishes to a room share one); speed is
 * never asserted.
 */

const available: Record<Topology["broker"], boolean> = {
  memory: true,
  redis: await requireService("Redis", "127.0.0.1", 6379),
  nats: await requireService("NATS", "127.0.0.1", 4222)
}

const UNITS = 12
const tiny = { units: UNITS, payloadBytes: 64 }

const runTopology = (topology: Topology) =>
  Effect.promise(() =>
    clusterFanoutRuns(topology, tiny, {
      runs: 2,
      workers: 2,
      clockBase: performance.timeOrigin + performance.now(),
      warmupMs: 50,
      measureMs: 300
    })
  )

const assertExactlyOnce = (topology: Topology, runs: ReadonlyArray<ClusterFanoutRun>) => {
  expect(runs).toHaveLength(2)
  for (const { result, brokerOutPerMessage, brokerInPerMessage } of runs) {
    expect(result.sent).toBeGreaterThan(0)
    // DroneEngage never echoes to the sender: every other unit, on whichever relay, gets each message once.
    expect(result.expected).toBe(result.sent * (UNITS - 1))
    expect(result.lost).toBe(0)
    expect(result.duplicates).toBe(0)
    expect(result.closes).toEqual({})
    if (topology.relays === 1) {
      expect(brokerOutPerMessage).toBe(0)
    } else {
      // At most one broker publish per message: a turn's publishes to the group go as one batch (the counter
      // also holds any join announced late, hence the margin); each other relay receives each publish once.
      expect(brokerOutPerMessage).toBeGreaterThan(0)
      expect(brokerOutPerMessage).toBeLessThan(1.5)
      expect(brokerInPerMessage).toBeGreaterThan(0)
      expect(brokerInPerMessage).toBeLessThanOrEqual((topology.relays - 1) * brokerOutPerMessage + 0.5)
    }
  }
}

describe("cluster bench smoke", () => {
  for (const topology of topologies)
    it.skipIf(!available[topology.broker]).live(
      `${topology.label}: every delivery counted once, at most one broker publish per message`,
      () => Effect.map(runTopology(topology), (runs) => assertExactlyOnce(topology, runs)),
      90_000
    )
})
