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
