import { Effect, Layer, Redacted } from "effect"
import { BrokerFederationLive } from "../Federation/BrokerFederation.ts"
import { InProcessFederationLive } from "../Federation/InProcessFederation.ts"
import { BrokerRoomsLive } from "../Rooms/BrokerRooms.ts"
import { InProcessRoomsLive } from "../Rooms/InProcessRooms.ts"
import { MemoryTokensLive } from "../Tokens/MemoryTokens.ts"
import { NatsTokensLive } from "../Tokens/NatsTokens.ts"
import { RedisTokensLive } from "../Tokens/RedisTokens.ts"
import { BunTransportWith } from "../Transport/BunTransport.ts"
import { ClusterBroker } from "./Broker.ts"
import { BrokerClaimsLive, LocalClaimsLive } from "./Claims.ts"
import { BrokerCountersLive, MemoryCountersLive, SharedLimitsLive } from "./Counters.ts"
import { ClusterConfig, type ClusterSettings, safeUrl } from "./ClusterConfig.ts"
import { makeNatsBroker } from "./NatsBroker.ts"
import { makeRedisBroker } from "./RedisBroker.ts"

/** This node's broker connection for redis/nats settings; it says at start which cluster it joined. */
export const clusterBroker = (settings: ClusterSettings) => {
  const url = settings.broker === "nats" ? settings.natsUrl : settings.redisUrl
  const connect =
    settings.broker === "nats"
      ? makeNatsBroker({ url: Redacted.value(url), prefix: settings.prefix, nodeId: settings.nodeId })
      : makeRedisBroker({
          url: Redacted.value(url),
          prefix: `${settings.prefix}:`,
          nodeId: settings.nodeId,
          redis: settings.redis
        })
  return Layer.scoped(
    ClusterBroker,
    Effect.tap(connect, () =>
      Effect.logInfo(
        `cluster node ${settings.nodeId} joined "${settings.prefix}" on ${settings.broker} at ${safeUrl(url)}`
      )
    )
  )
}

/** Rooms, Claims and Counters on one broker connection: what a node shares besides tokens and the bus. */
const brokerSharedState = (settings: ClusterSettings) =>
  Layer.mergeAll(
    BrokerRoomsLive({ heartbeat: settings.heartbeat, nodeTtl: settings.nodeTtl }),
    BrokerClaimsLive({ heartbeat: settings.heartbeat, nodeTtl: settings.nodeTtl }),
    BrokerCountersLive
  )

const localSharedState = Layer.mergeAll(InProcessRoomsLive, LocalClaimsLive, MemoryCountersLive)

/** Tokens every node of a redis/nats cluster shares, in its broker. */
export const sharedTokens = (settings: ClusterSettings) =>
  settings.broker === "nats"
    ? NatsTokensLive({ url: Redacted.value(settings.natsUrl), prefix: settings.prefix })
    : RedisTokensLive({ url: Redacted.value(settings.redisUrl), prefix: `${settings.prefix}:`, redis: settings.redis })

/** Tokens from `cluster.*`: in memory alone, in the broker on a redis/nats node (every node sees every token). */
export const TokensFromConfig = Layer.unwrapEffect(
  Effect.map(ClusterConfig, (settings) => (settings.broker === "memory" ? MemoryTokensLive : sharedTokens(settings)))
)

/**
 * Rooms, Tokens, Federation, Claims and Counters for `cluster.broker`: memory = this process alone
 * (in-process rooms, memory tokens, in-process bus, local claims and counts); redis or nats = one
 * broker connection shared by broker-backed rooms, bus, claims and counters, and tokens shared in
 * the same broker. Federation links dial real WebSockets.
 */
export const clusterLayers = (settings: ClusterSettings) => {
  if (settings.broker === "memory") return Layer.mergeAll(localSharedState, MemoryTokensLive, InProcessFederationLive)
  const broker = clusterBroker(settings)
  return Layer.mergeAll(brokerSharedState(settings), BrokerFederationLive, sharedTokens(settings)).pipe(
    Layer.provide(broker)
  )
}

/** Rooms, Claims and Counters only (a server with no tokens or bus to share, like chat), from `cluster.*`. */
export const clusterRoomsLayers = (settings: ClusterSettings) =>
  settings.broker === "memory"
    ? localSharedState
    : brokerSharedState(settings).pipe(Layer.provide(clusterBroker(settings)))

/** Rooms + Claims + Counters chosen by the `cluster.*` config keys (default: one process). Needs Metrics. */
export const ClusterRoomsFromConfig = Layer.unwrapEffect(Effect.map(ClusterConfig, clusterRoomsLayers))

/** Rooms + Tokens + Federation + Claims + Counters chosen by the `cluster.*` config keys (default: one process). Needs Metrics. */
export const ClusterFromConfig = Layer.unwrapEffect(Effect.map(ClusterConfig, clusterLayers))

/** Bun's transport, listening with SO_REUSEPORT when `cluster.reusePort` is true. Needs Metrics. */
export const BunTransportFromConfig = Layer.unwrapEffect(
  Effect.map(ClusterConfig, (settings) => BunTransportWith({ reusePort: settings.reusePort }))
)

/** Per-client limits that hold across nodes (needs a ClusterBroker): what `makeKeyedLimiter` consults on a node. */
export const brokerSharedLimits = SharedLimitsLive.pipe(Layer.provide(BrokerCountersLive))

/**
 * `layer` with per-client limits shared over `cluster.*`'s broker (its own connection) on a redis/nats
 * node; unchanged alone (local limits, no broker).
 */
export const withSharedLimitsFromConfig = <A, E, R>(layer: Layer.Layer<A, E, R>) =>
  Layer.unwrapEffect(
    Effect.map(ClusterConfig, (settings) =>
      settings.broker === "memory"
        ? layer
        : layer.pipe(Layer.provide(brokerSharedLimits.pipe(Layer.provide(clusterBroker(settings)))))
    )
  )
