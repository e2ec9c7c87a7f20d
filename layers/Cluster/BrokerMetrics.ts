import type { Metrics } from "../Observability/Metrics.ts"

/** The counters every broker-backed layer (rooms, the bus) shares, one cell each. */
export const brokerCounters = (metrics: typeof Metrics.Service) => {
  const messages = metrics.counter(
    "switchboard_cluster_broker_messages_total",
    "Messages this node sent to or received from the cluster broker",
    ["direction"]
  )
  return {
    sent: messages.labels({ direction: "out" }),
    received: messages.labels({ direction: "in" }),
    undelivered: metrics
      .counter(
        "switchboard_cluster_undelivered_total",
        "Messages that could not cross to other nodes because the broker was unreachable"
      )
      .labels({})
  }
}

/** What a write that WAITs for the replicas is (`op` label of the unreplicated writes). */
export type ReplicatedOp = "token" | "claim" | "history"

/** Writes a Redis master took whose replicas had not acknowledged them when their WAIT ended, by `op`. */
export const unreplicatedWrites = (metrics: typeof Metrics.Service, op: ReplicatedOp) =>
  metrics
    .counter(
      "switchboard_cluster_unreplicated_writes_total",
      "Writes (token takes/revokes, claims, history appends) not acknowledged by the replicas within cluster.redis.waitTimeoutMs",
      ["op"]
    )
    .labels({ op })
