import { Clock, Deferred, Effect, Layer, Option } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { StreamStore } from "../../layers/Storage/StreamStore.ts"
import { makeSignedTokens, randomSecret } from "../../layers/Tokens/SignedTokens.ts"
import { Tokens } from "../../layers/Tokens/Tokens.ts"
import { Rooms } from "../../layers/Rooms/Rooms.ts"
import { Transport } from "../../layers/Transport/Transport.ts"
import { makeAckTracker } from "./Acks.ts"
import { makeApiKeys } from "./ApiKeys.ts"
import { makeAuthenticator } from "./Auth.ts"
import { makeChannels } from "./Channels.ts"
import { HydrogenCluster } from "./Cluster.ts"
import { bindAddress, HydrogenConfig, type HydrogenSettings } from "./Config.ts"
import { makeConnectionStates } from "./ConnectionStates.ts"
import { type ExtraHandlers, makeHandlers } from "./Handlers.ts"
import { makeHttpApp } from "./HttpApi.ts"
import { makeRateLimits } from "./RateLimits.ts"
import { makeSessions } from "./Sessions.ts"
import { makeHydrogenProtocol } from "./Socket.ts"
import { makeStatus } from "./Status.ts"

/** The API keys of the settings, with the original's single `Key` as one with every permission. */
const configuredKeys = (settings: HydrogenSettings) =>
  Option.isSome(settings.legacyKey)
    ? [...settings.apiKeys, { name: "legacy-key", key: settings.legacyKey, hash: Option.none(), permissions: ["*"] }]
    : settings.apiKeys

/** Starts Hydrogen for the lifetime of the Scope and returns its server handle; `handlers` adds command channels. */
export const startHydrogen = (settings: HydrogenSettings, options: { readonly handlers?: ExtraHandlers } = {}) =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    const transport = yield* Transport
    const store = yield* StreamStore
    const rooms = yield* Rooms
    if (settings.threadPoolSize !== undefined) {
      yield* Effect.logInfo(
        "hydrogen: ThreadPoolSize is accepted but not applicable (one event loop serves every socket)"
      )
    }
    const signedTokens = makeSignedTokens(Option.getOrElse(settings.tokenSecret, randomSecret))
    const authenticate = makeAuthenticator(makeApiKeys(configuredKeys(settings)), signedTokens)
    const port = yield* Deferred.make<number>()
    const acks = yield* makeAckTracker(settings, metrics)
    const cluster = Option.getOrUndefined(yield* Effect.serviceOption(HydrogenCluster))
    const channels = yield* makeChannels({ settings, store, metrics, acks, rooms, cluster })
    const sessions = yield* makeSessions({ settings, channels, acks, metrics, tokens: yield* Tokens })
    const status = makeStatus(settings, yield* Clock.currentTimeMillis, port)
    const rateLimits = yield* makeRateLimits(settings, metrics)
    const states = makeConnectionStates(metrics)
    const handlers = makeHandlers({ channels, sessions, status, authenticate, extra: options.handlers ?? {} })
    const websocket = yield* makeHydrogenProtocol({
      settings,
      authenticate,
      rateLimits,
      sessions,
      acks,
      handlers,
      status,
      states,
      metrics
    })
    const http = makeHttpApp({
      settings,
      authenticate,
      channels,
      status,
      tokens: signedTokens,
      metrics,
      sessionCount: sessions.count,
      rateLimits
    })
    const server = yield* transport.serve({
      name: "hydrogen",
      port: settings.port,
      hostname: bindAddress(settings),
      tls:
        settings.secureMode === "tls" ? { certPath: settings.certificatePath!, keyPath: settings.keyPath! } : undefined,
      limits: settings.limits,
      http,
      websocket
    })
    yield* Deferred.succeed(port, server.port)
    // Registered after serve, so it runs first on shutdown: status replies during the drain say so.
    yield* Effect.addFinalizer(() => Effect.sync(() => void (status.counters.shuttingDown = true)))
    yield* status.broadcastPeriodically(channels)
    return { ...server, sessionsHandedOver: sessions.handedOver }
  })

/** Hydrogen from HydrogenConfig for the lifetime of the layer; needs a Transport, Rooms, Tokens, a StreamStore and Metrics. */
export const HydrogenServer = Layer.scopedDiscard(
  Effect.gen(function* () {
    const settings = yield* HydrogenConfig
    if (!settings.enabled) return yield* Effect.logInfo("hydrogen: disabled (hydrogen.Enabled is false)")
    yield* startHydrogen(settings)
  })
)
