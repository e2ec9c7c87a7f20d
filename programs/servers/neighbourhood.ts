/**
 * Neighbourhood server (seed 003): the OLAF/Neighbourhood protocol v1.2, port 9002.
 * Made of: the Bun transport (clients, neighbours, the page and the file API on one port), Rooms
 * from `cluster.*` (in-process by default; broker-backed, the nodes of one server name share its
 * clients and, through Claims and the cluster bus, one link per neighbour), Federation links to the
 * configured neighbours, the
 * FileStore (a directory by default, with quota and expiry), and the server key from `keyPath`
 * (generated on first start).
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { BunFileSystem } from "@effect/platform-bun"
import { Effect, Layer } from "effect"
import { BrokerFederationLive } from "../../layers/Federation/BrokerFederation.ts"
import { InProcessFederationLive } from "../../layers/Federation/InProcessFederation.ts"
import { loadNeighbourKeys, loadOrCreateServerKey } from "../../src/neighbourhood/Keys.ts"
import { metricsResponse } from "../../layers/Observability/MetricsRoute.ts"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { BrokerRoomsLive } from "../../layers/Rooms/BrokerRooms.ts"
import { BunTransportFromConfig, clusterBroker } from "../../layers/Cluster/ClusterFromConfig.ts"
import { ClusterConfig } from "../../layers/Cluster/ClusterConfig.ts"
import { BrokerReplayCountersLive } from "../../layers/Cluster/ReplayCounters.ts"
import { BrokerClaimsLive } from "../../layers/Cluster/Claims.ts"
import { MemoryFileStore } from "../../layers/Storage/FileStore.ts"
import { FileSystemFileStore } from "../../layers/Storage/FileSystemFileStore.ts"
import {
  type NeighbourhoodConfig,
  NeighbourhoodConfig as NeighbourhoodConfigSchema
} from "../../src/neighbourhood/Config.ts"
import { makeFileRoutes } from "../../src/neighbourhood/Files.ts"
import { serveNeighbourhood } from "../../src/neighbourhood/Server.ts"
import { neighbourhoodPageRoutes } from "../../src/neighbourhood/web/assets.ts"

const fileStoreFor = (files: NeighbourhoodConfig["files"]) => {
  const quota = { quotaBytes: files.quotaBytes, maxAge: files.maxAge }
  return files.backend === "memory"
    ? MemoryFileStore(quota)
    : FileSystemFileStore(files.directory, quota).pipe(Layer.provide(BunFileSystem.layer))
}

// Rooms, replay counters, link claims and the bus cross nodes: one link per neighbour for the server name
// (docs/neighbourhood.md, "One server name on several nodes").
const SharedFromCluster = Layer.unwrapEffect(
  Effect.map(ClusterConfig, (settings) =>
    settings.broker === "memory"
      ? Layer.merge(InProcessRoomsLive, InProcessFederationLive)
      : Layer.mergeAll(
          BrokerRoomsLive({ heartbeat: settings.heartbeat, nodeTtl: settings.nodeTtl }),
          BrokerReplayCountersLive,
          BrokerClaimsLive({ heartbeat: settings.heartbeat, nodeTtl: settings.nodeTtl }),
          BrokerFederationLive
        ).pipe(Layer.provide(clusterBroker(settings)))
  )
)

/** One Neighbourhood server from its config, for the lifetime of the layer. */
export const NeighbourhoodFrom = (config: NeighbourhoodConfig) =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const identity = yield* loadOrCreateServerKey(config.keyPath)
      const neighbours = yield* loadNeighbourKeys(config.neighbours)
      const files = yield* makeFileRoutes({ maxBytes: config.files.maxBytes, publicUrl: config.publicUrl })
      const page = yield* neighbourhoodPageRoutes
      const http = HttpRouter.concatAll(
        page,
        files,
        HttpRouter.empty.pipe(HttpRouter.get("/metrics", metricsResponse))
      ).pipe(
        Effect.catchTag("RouteNotFound", () => HttpServerResponse.unsafeJson({ error: "not found" }, { status: 404 }))
      )
      yield* Effect.logInfo(`neighbourhood server key fingerprint ${identity.fingerprint}`)
      yield* serveNeighbourhood({ config, identity, neighbours, http })
    })
  ).pipe(
    Layer.provide(
      Layer.mergeAll(BunTransportFromConfig, SharedFromCluster, BunFileSystem.layer, fileStoreFor(config.files))
    )
  )

export const NeighbourhoodLive = Layer.unwrapEffect(Effect.map(NeighbourhoodConfigSchema, NeighbourhoodFrom))
