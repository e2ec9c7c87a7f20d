import { Effect, Option } from "effect"
import type { RelayConfig } from "./Config.ts"
import { makeTasks, type Tasks } from "./Tasks.ts"
import { makeUdpProxy, type UdpProxyService } from "./UdpProxy.ts"

/** The relay's optional system services; an absent one is answered with its "-unavailable" error. */
export interface RelayFeatures {
  readonly udpProxy: UdpProxyService | undefined
  readonly tasks: Tasks | undefined
}

/** The UDP proxy (9008) and stored tasks (9001-9004) as the config asks, for the lifetime of the Scope. */
export const makeRelayFeatures = (serverName: string, config: RelayConfig) =>
  Effect.gen(function* () {
    const proxy = config.udpProxy
    const udpProxy = proxy.enabled
      ? yield* makeUdpProxy({
          serverName,
          hostname: proxy.hostname,
          publicHost: Option.getOrElse(proxy.publicHost, () => config.publicHost),
          ports: proxy.ports,
          allowFixedPorts: proxy.allowFixedPorts,
          idleTimeout: proxy.idleTimeout,
          stickyGrace: proxy.stickyGrace,
          reapInterval: proxy.reapInterval,
          maxPairs: proxy.maxPairs,
          maxPairsPerAccount: proxy.maxPairsPerAccount,
          packetsPerSecond: proxy.packetsPerSecond,
          bytesPerSecond: proxy.bytesPerSecond,
          peerLock: proxy.peerLock
        })
      : undefined
    if (proxy.enabled && proxy.allowFixedPorts)
      yield* Effect.logInfo("UDP proxy: units may choose their ports (allowFixedPorts)")
    const tasks = config.tasks.enabled
      ? yield* makeTasks({
          maxBodyBytes: config.tasks.maxBodyBytes,
          maxTasksPerAccount: config.tasks.maxTasksPerAccount,
          maxLoadBytes: config.tasks.maxLoadBytes
        })
      : undefined
    return { udpProxy, tasks } satisfies RelayFeatures
  })
