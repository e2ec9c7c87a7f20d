import { Duration, Effect, Layer, Option } from "effect"
import { AccountStore } from "../../layers/Storage/AccountStore.ts"
import { Transport } from "../../layers/Transport/Transport.ts"
import { makeKeyedLimiter } from "../shared/RateLimiter.ts"
import { Permission } from "../storage/Account.ts"
import { makeCommServers } from "./CommServers.ts"
import type { AuthenticatorConfig } from "./Config.ts"
import { loadTrustedKeys } from "./KeyFiles.ts"
import { encodeLoginSession, indexOfLoginSession, LoginSession, loginSessionKey } from "./Login.ts"
import { makeLoginApi } from "./LoginApi.ts"
import { makeSessions } from "./Sessions.ts"
import { droneEngageVersion } from "./Version.ts"

/** Token kind of login sessions (sid). */
export const sessionKind = "droneengage/session"

/** `limit` per `window` as a token bucket: a full burst of `limit`, refilled evenly over the window. */
const perWindow = (limit: number, window: Duration.Duration) => ({
  ratePerSecond: limit / Duration.toSeconds(window),
  burst: limit
})

/** Starts both listeners for the lifetime of the Scope; returns them (tests read the bound ports). */
export const startAuthenticator = (config: AuthenticatorConfig) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const sessions = yield* makeSessions(LoginSession, {
      kind: sessionKind,
      ttl: config.sessionTtl,
      sliding: config.sessionSliding,
      index: indexOfLoginSession,
      encode: encodeLoginSession
    })
    const attempts = yield* makeKeyedLimiter("login attempts", perWindow(config.loginRateLimit, config.loginRateWindow))
    const failures = yield* makeKeyedLimiter("failed credentials", {
      ...perWindow(config.loginFailureLimit, config.loginFailureWindow),
      blockFor: config.loginFailureBlock,
      strikes: 1
    })
    const { endIndexedNow } = sessions
    const trustedKeys = yield* loadTrustedKeys(config.s2sTrustedKeys)
    if (config.allowUnauthenticatedServers) {
      yield* Effect.logWarning("INSECURE: allowUnauthenticatedServers is on; relays that skip the challenge may link")
    }
    const commServers = yield* makeCommServers({
      serverName: "authenticator",
      secret: config.s2sSecret,
      trustedKeys,
      allowUnauthenticated: config.allowUnauthenticatedServers,
      handshakeTimeout: config.s2sHandshakeTimeout,
      replyTimeout: config.loginReplyTimeout,
      // The relay names the login request that admitted the unit: end exactly that session, by index.
      // A session the store could not end now runs out at its TTL (sliding: that long after its last use).
      onLogout: (logout) =>
        sessions.endIndexed(loginSessionKey(logout.a, logout.r)).pipe(
          Effect.asVoid,
          Effect.catchTag("TokenStoreUnavailable", (error) =>
            Effect.logWarning("a LOGOUT's session was not ended: session store unavailable", error.reason)
          )
        ),
      onLogoutNow: endIndexedNow && ((logout) => (endIndexedNow(loginSessionKey(logout.a, logout.r)), true))
    })
    const s2s = yield* transport.serve({
      name: "authenticator-s2s",
      port: config.s2sPort,
      hostname: config.s2sHostname,
      tls: config.s2sTls,
      limits: config.s2sLimits,
      websocket: commServers.protocol
    })
    const { http: api, routes } = yield* makeLoginApi({
      serverName: "authenticator",
      serverId: config.serverId,
      version: droneEngageVersion,
      sessions,
      commServers,
      attempts,
      failures
    })
    const http = yield* transport.serve<never, never>({
      name: "authenticator",
      port: config.port,
      hostname: config.hostname,
      tls: config.tls,
      limits: config.apiLimits,
      http: api,
      routes
    })
    if ((yield* (yield* AccountStore).list).length === 0) {
      yield* Effect.logWarning(
        'no accounts yet: run `npm start` once (creates "dev") or configure authenticator.storage (single or json backend)'
      )
    }
    return { http, s2s, sessions, commServers }
  })

/** The authenticator as a layer: needs Transport, the account and hardware stores, Tokens, FileSystem and Metrics. */
export const AuthenticatorServer = (config: AuthenticatorConfig) => Layer.scopedDiscard(startAuthenticator(config))

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
