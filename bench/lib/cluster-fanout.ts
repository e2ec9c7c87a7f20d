import { LoadGenerator, planGroup, type RunResult } from "../loadgen/Coordinator.ts"
import { windowFor } from "../scenarios/common.ts"
import { type FanoutCase, SENDERS } from "../scenarios/fanout.ts"
import {
  awaitSeated,
  brokerCounts,
  type ClusterBrokerKind,
  type ClusterStack,
  LOGINS_IN_FLIGHT_PER_WORKER,
  type NatsServerRef,
  redisPublishCalls,
  withClusterStack
} from "./cluster-stack.ts"
import { cpuMicros } from "./proc.ts"

/** One way to run the relay: how many processes, on which broker. */
export interface Topology {
  readonly id: string
  readonly label: string
  readonly broker: ClusterBrokerKind
  readonly relays: number
}

export const topologies: ReadonlyArray<Topology> = [
  { id: "relay-1", label: "relay ×1 (one process)", broker: "memory", relays: 1 },
  { id: "relay-3-redis", label: "relay ×3 on Redis", broker: "redis", relays: 3 },
  { id: "relay-3-nats", label: "relay ×3 on NATS", broker: "nats", relays: 3 }
]

/** One measured fan-out run over a cluster, with what crossed the broker during it. */
export interface ClusterFanoutRun {
  readonly result: RunResult
  /** Cores the relays used in the measured window. */
  readonly relayCores: number
  /** Cores the broker process used in (most of) the measured window; 0 on the in-process broker. */
  readonly brokerCores: number
  /** Deliveries/s per core used by the relays and the broker together. */
  readonly deliveriesPerCore: number
  /** Relay + broker CPU per delivery, µs. */
  readonly cpuUsPerDelivery: number
  /** Broker publishes by the relays per message a sender sent (1 = one publish per message). */
  readonly brokerOutPerMessage: number
  /** Broker messages the relays received per message sent (= nodes hosting the group besides the sender's). */
  readonly brokerInPerMessage: number
  /** (publishes + receipts) / deliveries to clients. */
  readonly brokerMessagesPerDelivery: number
  /** Redis's own PUBLISH + SPUBLISH count per message sent (shared Redis: other users' traffic included). */
  readonly redisPublishesPerMessage: number
}

export interface ClusterFanoutOptions {
  readonly runs: number
  readonly workers: number
  readonly clockBase: number
  readonly warmupMs: number
  readonly measureMs: number
  readonly onTick?: (elapsedMs: number, delivered: number) => void
  /** The NATS server of the NATS topology (default: the shared one on 4222). */
  readonly nats?: NatsServerRef
}

/**
 * `runs` closed-loop max-rate fan-out runs (the fanout scenario's shape: one group, 10 senders)
 * over one topology, clients spread over the relays by index. The relays' CPU comes from the load
 * generator's measured window; the broker's from /proc samples taken on the window's ticks.
 */
export const clusterFanoutRuns = (
  topology: Topology,
  c: FanoutCase,
  options: ClusterFanoutOptions
): Promise<Array<ClusterFanoutRun>> =>
  withClusterStack(
    {
      broker: topology.broker,
      relays: topology.relays,
      reusePort: false,
      ...(options.nats ? { nats: options.nats } : {})
    },
    async (stack) => {
      const generator = await LoadGenerator.connect({
        target: stack.target,
        clients: planGroup({ group: "cluster", units: c.units, senders: SENDERS }),
        workers: options.workers,
        clockBase: options.clockBase,
        connectConcurrency: LOGINS_IN_FLIGHT_PER_WORKER
      })
      try {
        if (generator.connectFailures > 0)
          throw new Error(
            `${generator.connectFailures} clients failed to connect: ${generator.connectErrors.join("; ")}`
          )
        await awaitSeated(stack, c.units)
        const runs: Array<ClusterFanoutRun> = []
        for (let i = 0; i < options.runs; i++) runs.push(await oneRun(generator, stack, c, options))
        return runs
      } finally {
        await generator.close()
      }
    }
  )

const redisCalls = (stack: ClusterStack) =>
  stack.broker === "redis" ? redisPublishCalls().catch(() => Number.NaN) : Promise.resolve(Number.NaN)

const oneRun = async (
  generator: LoadGenerator,
  stack: ClusterStack,
  c: FanoutCase,
  options: ClusterFanoutOptions
): Promise<ClusterFanoutRun> => {
  const brokerBefore = await brokerCounts(stack)
  const redisBefore = await redisCalls(stack)
  const brokerSamples: Array<{ at: number; micros: number }> = []
  const result = await generator.run({
    plan: {
      mode: "max",
      rate: 0,
      window: windowFor(SENDERS, c.payloadBytes),
      payloadBytes: c.payloadBytes,
      maxPerSender: 10_000_000
    },
    warmupMs: options.warmupMs,
    measureMs: options.measureMs,
    drainMs: 10_000,
    serverPids: stack.relayPids,
    onTick: (elapsed, delivered) => {
      if (stack.brokerPid !== undefined)
        brokerSamples.push({ at: performance.now(), micros: cpuMicros(stack.brokerPid) })
      options.onTick?.(elapsed, delivered)
    }
  })
  const brokerAfter = await brokerCounts(stack)
  const redisAfter = await redisCalls(stack)
  const first = brokerSamples[0]
  const last = brokerSamples[brokerSamples.length - 1]
  const brokerCores =
    stack.brokerPid === undefined
      ? 0
      : first && last && last.at > first.at
        ? (last.micros - first.micros) / 1000 / (last.at - first.at)
        : Number.NaN
  const cores = result.serverCores + brokerCores
  const delivered = result.expected - result.lost
  const out = brokerAfter.out - brokerBefore.out
  const received = brokerAfter.in - brokerBefore.in
  return {
    result,
    relayCores: result.serverCores,
    brokerCores,
    deliveriesPerCore: result.deliveriesPerSec / cores,
    cpuUsPerDelivery: result.deliveriesPerSec > 0 ? (cores * 1e6) / result.deliveriesPerSec : Number.NaN,
    brokerOutPerMessage: result.sent > 0 ? out / result.sent : Number.NaN,
    brokerInPerMessage: result.sent > 0 ? received / result.sent : Number.NaN,
    brokerMessagesPerDelivery: delivered > 0 ? (out + received) / delivered : Number.NaN,
    redisPublishesPerMessage: result.sent > 0 ? (redisAfter - redisBefore) / result.sent : Number.NaN
  }
}
