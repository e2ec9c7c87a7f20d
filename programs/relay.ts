/**
 * DroneEngage relay (the original's communication server, seed 000): client WebSocket on 9966.
 * Made of: the Bun transport, single-use login keys, in-process unit rooms on native topics, the
 * client protocol (Rooms/RelayProtocol) and the link to the authenticator (Federation/AuthLink).
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Layer } from "effect"
import { challengeProver, makeAuthLink, type UnitGrant } from "../layers/Federation/AuthLink.ts"
import { loadPrivateKey } from "../layers/Federation/KeyFiles.ts"
import { Metrics } from "../layers/Observability/Metrics.ts"
import { metricsResponse } from "../layers/Observability/MetricsRoute.ts"
import { runProgram } from "../layers/Program/runProgram.ts"
import { makeRelayProtocol } from "../layers/Rooms/RelayProtocol.ts"
import { InProcessUnitRooms, type UnitMember, UnitRooms } from "../layers/Rooms/UnitRooms.ts"
import { makeLoginKeys } from "../layers/Tokens/LoginKeys.ts"
import { BunTransportLive } from "../layers/Transport/BunTransport.ts"
import { Transport } from "../layers/Transport/Transport.ts"
import { RelayConfig } from "../src/droneengage/Config.ts"
import { droneEngageVersion } from "./authenticator.ts"

/** Serves clients and keeps the authenticator link up for the lifetime of the Scope. */
export const startRelay = (config: RelayConfig) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const rooms = yield* UnitRooms
    const metrics = yield* Metrics
    const keys = yield* makeLoginKeys<UnitGrant>({ ttl: config.loginKeyTtl })
    // The link needs the bound port and the protocol needs the link: tie the knot after serving.
    const relayed = { notifyLogout: (_member: UnitMember) => {} }
    const protocol = yield* makeRelayProtocol({ serverName: "relay", keys, rooms, onLeft: (member) => relayed.notifyLogout(member) })
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
    return { server, link, keys, rooms }
  })

/** The relay from an explicit config (the stack uses it to share one S2S secret with its authenticator). */
export const RelayFrom = (config: RelayConfig) =>
  Layer.scopedDiscard(startRelay(config)).pipe(Layer.provide(Layer.merge(BunTransportLive, InProcessUnitRooms("relay"))))

export const RelayLive = Layer.unwrapEffect(Effect.map(RelayConfig, RelayFrom))

if (import.meta.main) runProgram(RelayLive)
