import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Deferred, Effect, Layer } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { metricsResponse } from "../../layers/Observability/MetricsRoute.ts"
import { Transport } from "../../layers/Transport/Transport.ts"
import { challengeProver, makeAuthLink } from "./AuthLink.ts"
import type { RelayConfig } from "./Config.ts"
import { loadPrivateKey } from "./KeyFiles.ts"
import { makeLoginKeys } from "./LoginKeys.ts"
import { encodeLoginRequest } from "./S2SFast.ts"
import { makeRelayFeatures } from "./RelayFeatures.ts"
import { makeRelayProtocol } from "./RelayProtocol.ts"
import { LoginRequestData } from "./S2S.ts"
import { UnitRooms } from "./UnitRooms.ts"
import { droneEngageVersion } from "./Version.ts"

/** Token kind of the relay's single-use login keys. */
export const loginKeyKind = "droneengage/login-key"

/**
 * The relay: serves units and keeps the authenticator link up for the lifetime of the Scope.
 * The link is made first and learns the bound port through a Deferred once the server listens,
 * so the protocol can tell the link about logouts without any mutable wiring.
 */
export const startRelay = (config: RelayConfig) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const rooms = yield* UnitRooms
    const metrics = yield* Metrics
    const keys = yield* makeLoginKeys(LoginRequestData, {
      kind: loginKeyKind,
      ttl: config.loginKeyTtl,
      encode: encodeLoginRequest
    })
    const boundPort = yield* Deferred.make<number>()
    const link = yield* makeAuthLink({
      url: config.authenticatorUrl,
      serverId: config.serverId,
      version: droneEngageVersion,
      prove: challengeProver(config.serverId, config.s2sSecret, yield* loadPrivateKey(config.s2sPrivateKeyPath)),
      publicHost: config.publicHost,
      publicPort: Deferred.await(boundPort),
      redialMax: config.redialMax,
      infoInterval: config.infoInterval,
      keys,
      rooms
    })
    const features = yield* makeRelayFeatures("relay", config)
    const protocol = yield* makeRelayProtocol({
      serverName: "relay",
      keys,
      rooms,
      onLeft: link.notifyLogout,
      ...features
    })
    const health = Effect.sync(() =>
      HttpServerResponse.unsafeJson({
        status: "OK",
        version: droneEngageVersion,
        server_id: config.serverId,
        authenticator: link.isUp() ? "up" : "down"
      })
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
    yield* Deferred.succeed(boundPort, config.publicPort || server.port)
    return { server, link, keys, rooms, features }
  })

/** The relay as a layer: needs Transport, UnitRooms, Tokens, Federation, FileSystem and Metrics. */
export const RelayServer = (config: RelayConfig) => Layer.scopedDiscard(startRelay(config))
