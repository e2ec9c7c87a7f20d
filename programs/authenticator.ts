/**
 * DroneEngage authenticator (seed 000): the original's HTTP login API on 19408 and the
 * server-to-server listener for relays on 19001.
 * Made of: the Bun transport (two listeners), an AccountStore and a HardwareStore, sessions,
 * a per-IP login rate limiter, the relay registry (Federation/CommServers) and the login API.
 */
import { Effect, Layer, Option } from "effect"
import { makeCommServers } from "../layers/Federation/CommServers.ts"
import { runProgram } from "../layers/Program/runProgram.ts"
import { AccessCodeHasher } from "../layers/Storage/AccessCodeHasher.ts"
import { AccountStore } from "../layers/Storage/AccountStore.ts"
import { MemoryHardwareStore } from "../layers/Storage/HardwareStore.ts"
import { MemoryAccountStore } from "../layers/Storage/MemoryAccountStore.ts"
import { type LoginSession, makeLoginApi } from "../layers/Tokens/LoginApi.ts"
import { makeRateLimiter } from "../layers/Tokens/LoginRateLimiter.ts"
import { makeSessions } from "../layers/Tokens/Sessions.ts"
import { BunTransportLive } from "../layers/Transport/BunTransport.ts"
import { Transport } from "../layers/Transport/Transport.ts"
import { AuthenticatorConfig } from "../src/droneengage/Config.ts"
import { Permission } from "../src/storage/Account.ts"
import packageJson from "../package.json" with { type: "json" }

export const droneEngageVersion = packageJson.version

/** Starts both listeners for the lifetime of the Scope; returns them (tests read the bound ports). */
export const startAuthenticator = (config: AuthenticatorConfig) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const sessions = yield* makeSessions<LoginSession>({ ttl: config.sessionTtl, sliding: config.sessionSliding })
    const rateLimiter = yield* makeRateLimiter({ max: config.loginRateLimit, window: config.loginRateWindow })
    if (Option.isNone(config.s2sSecret)) {
      yield* Effect.logWarning("INSECURE: authenticator.s2sSecret is not set and allowUnauthenticatedServers is on; any relay may link")
    }
    const commServers = yield* makeCommServers({
      serverName: "authenticator",
      secret: config.s2sSecret,
      allowUnauthenticated: config.allowUnauthenticatedServers,
      handshakeTimeout: config.s2sHandshakeTimeout,
      replyTimeout: config.loginReplyTimeout,
      // The relay names the login request that admitted the unit: end exactly that session.
      onLogout: (logout) => Effect.asVoid(sessions.endWhere((s) => s.requestId === logout.r && s.accountId === logout.a))
    })
    const s2s = yield* transport.serve({
      name: "authenticator-s2s",
      port: config.s2sPort,
      hostname: config.s2sHostname,
      tls: config.s2sTls,
      limits: config.s2sLimits,
      websocket: commServers.protocol
    })
    const api = yield* makeLoginApi({
      serverName: "authenticator",
      serverId: config.serverId,
      version: droneEngageVersion,
      sessions,
      commServers,
      rateLimiter
    })
    const http = yield* transport.serve<never, never>({
      name: "authenticator",
      port: config.port,
      hostname: config.hostname,
      tls: config.tls,
      limits: config.s2sLimits,
      http: api
    })
    return { http, s2s, sessions, commServers }
  })

/**
 * Creates the admin account "dev" (all permissions) when the store has no account yet and returns
 * its access code, once; None when accounts already exist.
 */
export const ensureDevAccount = Effect.gen(function* () {
  const accounts = yield* AccountStore
  if ((yield* accounts.list).length > 0) return Option.none<{ readonly name: string; readonly accessCode: string }>()
  const issued = yield* accounts.create({ name: "dev", permission: Permission.all, isAdmin: true })
  return Option.some({ name: issued.account.name, accessCode: issued.accessCode })
})

/** Accounts and hardware for the program; swapped for the config-selected stores once layers/Storage offers them. */
export const AuthenticatorStorage = Layer.merge(MemoryAccountStore.pipe(Layer.provide(AccessCodeHasher.Default)), MemoryHardwareStore)

/** The authenticator with its own stores; the stack may provide shared ones with `AuthenticatorWith`. */
export const AuthenticatorWith = Layer.scopedDiscard(Effect.flatMap(AuthenticatorConfig, startAuthenticator)).pipe(Layer.provide(BunTransportLive))

export const AuthenticatorLive = AuthenticatorWith.pipe(Layer.provide(AuthenticatorStorage))

if (import.meta.main) runProgram(AuthenticatorLive)
