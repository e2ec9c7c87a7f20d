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
import { ClusterConfig, type ClusterSettings, safeUrl } from "./ClusterConfig.ts"
import { makeNatsBroker } from "./NatsBroker.ts"
import { makeRedisBroker } from "./RedisBroker.ts"

/** This node's broker connection for redis/nats settings; it says at start which cluster it joined. */
export const clusterBroker = (settings: ClusterSettings) => {
  const url = settings.broker === "nats" ? settings.natsUrl : settings.redisUrl
  const connect =
    settings.broker === "nats"
      ? makeNatsBroker({ url: Redacted.value(url), prefix: settings.prefix, nodeId: settings.nodeId })
      : makeRedisBroker({ url: Redacted.value(url), prefix: `${settings.prefix}:`, nodeId: settings.nodeId })
  return Layer.scoped(
    ClusterBroker,
    Effect.tap(connect, () =>
      Effect.logInfo(
        `cluster node ${settings.nodeId} joined "${settings.prefix}" on ${settings.broker} at ${safeUrl(url)}`
      )
    )
  )
}

/** Tokens every node of a redis/nats cluster shares, in its broker. */
export const sharedTokens = (settings: ClusterSettings) =>
  settings.broker === "nats"
    ? NatsTokensLive({ url: Redacted.value(settings.natsUrl), prefix: settings.prefix })
    : RedisTokensLive({ url: Redacted.value(settings.redisUrl), prefix: `${settings.prefix}:` })

/**
 * Rooms, Tokens and Federation for `cluster.broker`: memory = this process alone (in-process rooms,
 * memory tokens, in-process bus); redis or nats = one broker connection shared by broker-backed
 * rooms and bus, and tokens shared in the same broker. Federation links dial real WebSockets.
 */
export const clusterLayers = (settings: ClusterSettings) => {
  if (settings.broker === "memory") return Layer.mergeAll(InProcessRoomsLive, MemoryTokensLive, InProcessFederationLive)
  const broker = clusterBroker(settings)
  const tokens = sharedTokens(settings)
  return Layer.mergeAll(
    BrokerRoomsLive({ heartbeat: settings.heartbeat, nodeTtl: settings.nodeTtl }),
    BrokerFederationLive,
    tokens
  ).pipe(Layer.provide(broker))
}

/** Rooms + Tokens + Federation chosen by the `cluster.*` config keys (default: one process). Needs Metrics. */
export const ClusterFromConfig = Layer.unwrapEffect(Effect.map(ClusterConfig, clusterLayers))

/** Bun's transport, listening with SO_REUSEPORT when `cluster.reusePort` is true. Needs Metrics. */
export const BunTransportFromConfig = Layer.unwrapEffect(
  Effect.map(ClusterConfig, (settings) => BunTransportWith({ reusePort: settings.reusePort }))
)
