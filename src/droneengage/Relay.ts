import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { metricsResponse } from "../../layers/Observability/MetricsRoute.ts"
import { Transport } from "../../layers/Transport/Transport.ts"
import { challengeProver, makeAuthLink, type UnitGrant } from "./AuthLink.ts"
import type { RelayConfig } from "./Config.ts"
import { loadPrivateKey } from "./KeyFiles.ts"
import { makeLoginKeys } from "./LoginKeys.ts"
import { makeRelayFeatures } from "./RelayFeatures.ts"
import { makeRelayProtocol } from "./RelayProtocol.ts"
import { type UnitMember, UnitRooms } from "./UnitRooms.ts"
import { droneEngageVersion } from "./Version.ts"

/** Serves clients and keeps the authenticator link up for the lifetime of the Scope. */
export const startRelay = (config: RelayConfig) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const rooms = yield* UnitRooms
    const metrics = yield* Metrics
    const keys = yield* makeLoginKeys<UnitGrant>({ ttl: config.loginKeyTtl })
    // The link needs the bound port and the protocol needs the link: tie the knot after serving.
    const relayed = { notifyLogout: (_member: UnitMember) => {} }
    const features = yield* makeRelayFeatures("relay", config)
    const protocol = yield* makeRelayProtocol({ serverName: "relay", keys, rooms, onLeft: (member) => relayed.notifyLogout(member), ...features })
    let linkUp = () => false
    const health = Effect.sync(() =>
      HttpServerResponse.unsafeJson({ status: "OK", version: droneEngageVersion, server_id: config.serverId, authenticator: linkUp() ? "up" : "down" })
    )
    const http = HttpRouter.empty.pipe(
      HttpRouter.get("/h/health", health),
      HttpRouter.get("/metrics", metricsResponse.pipe(Effect.provideService(Metrics, metrics))),
      Effect.catchTag("RouteNotFound", () => HttpServerResponse.unsafeJson({ error: "not found" }, { status: 404 }))
    )
    const server = yield* transport.serve({
      name: "relay",
      port: config.port,
      hostname: config.hostname,
      tls: config.tls,
      limits: config.limits,
      http,
      websocket: protocol
    })
    const link = yield* makeAuthLink({
      url: config.authenticatorUrl,
      serverId: config.serverId,
      version: droneEngageVersion,
      prove: challengeProver(config.serverId, config.s2sSecret, yield* loadPrivateKey(config.s2sPrivateKeyPath)),
      publicHost: config.publicHost,
      publicPort: () => config.publicPort || server.port,
      redialMax: config.redialMax,
      infoInterval: config.infoInterval,
      keys,
      rooms
    })
    relayed.notifyLogout = link.notifyLogout
    linkUp = link.isUp
    return { server, link, keys, rooms, features }
  })

