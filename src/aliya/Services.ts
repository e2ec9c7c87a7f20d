import type { HttpApp } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect, Option, Runtime } from "effect"
import { migrateSchema } from "../../layers/Storage/SqlDatabase.ts"
import { SqliteDirect } from "../../layers/Storage/SqliteDirect.ts"
import { TcpTransport } from "../../layers/Transport/TcpTransport.ts"
import { Transport } from "../../layers/Transport/Transport.ts"
import { defaultSocketLimits } from "../shared/SocketLimits.ts"
import { accountRoutes } from "./AccountManager.ts"
import { bagRoutes } from "./BagManager.ts"
import { type GatewaySettings, makeCipher, type ManagerSettings, type TokenServerSettings } from "./Config.ts"
import type { ManagerName } from "./Functions.ts"
import { makeGateway } from "./Gateway.ts"
import { InternalHttp } from "./InternalHttp.ts"
import { ColocatedServices, httpServiceCalls, serviceCallsFor } from "./ServiceCalls.ts"
import { makeJwtCodec } from "./Jwt.ts"
import { playerStateRoutes } from "./PlayerStateManager.ts"
import { makeRequestBound } from "./RequestTimeout.ts"
import { answerNow, preferNow, type Route, type RouteNow, serviceApp } from "./ServiceHttp.ts"
import { skillRoutes } from "./SkillManager.ts"
import { AliyaSchema, SessionSchema, tuneSqlite } from "./Tables.ts"
import { makeTokenServer, tokenOfHeader } from "./TokenServer.ts"
import { weaponRoutes, weaponRoutesNow } from "./WeaponManager.ts"

/** Creates or upgrades the managers' tables. */
export const migrateAliya = migrateSchema(AliyaSchema)

/** Serves every manager (one HTTP service per resource) for the lifetime of the Scope; returns their ports. */
export const startManagers = (settings: ManagerSettings) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const sql = yield* SqlClient.SqlClient
    yield* migrateAliya
    yield* tuneSqlite
    if (settings.legacyLoginUnique) {
      yield* Effect.logWarning(
        "aliya managers: legacyLoginUnique is on: INSECURE, anyone who knows an unbound unique_id can log in as it"
      )
    }
    const bounded = yield* makeRequestBound
    const routes: Record<ManagerName, Record<string, Route<SqlClient.SqlClient>>> = {
      account: bounded.routes(
        "account",
        accountRoutes({
          passwordCost: { memoryCost: settings.argon2MemoryKiB, timeCost: settings.argon2TimeCost },
          legacyLoginUnique: settings.legacyLoginUnique
        })
      ),
      playerState: bounded.routes("playerState", playerStateRoutes()),
      bag: bounded.routes("bag", bagRoutes()),
      skill: bounded.routes("skill", skillRoutes()),
      weapon: bounded.routes("weapon", weaponRoutes())
    }
    // On SQLite the hottest weapon requests are answered synchronously when the file is not locked.
    const direct = yield* Effect.serviceOption(SqliteDirect)
    const now: Partial<Record<ManagerName, Record<string, RouteNow>>> = Option.isSome(direct)
      ? { weapon: weaponRoutesNow(direct.value) }
      : {}
    const ports = {} as Record<ManagerName, number>
    const local = yield* Effect.serviceOption(ColocatedServices)
    const run = Runtime.runPromise(yield* Effect.runtime<SqlClient.SqlClient>())
    for (const [name, routesOf] of Object.entries(routes) as Array<
      [ManagerName, Record<string, Route<SqlClient.SqlClient>>]
    >) {
      const fast = now[name] ?? {}
      const post = preferNow(routesOf, fast)
      // Co-located gateways call the same routes in-process (no service token: nothing crosses a socket).
      if (Option.isSome(local))
        local.value.set(name, {
          post: (path, body) => {
            if (!Object.hasOwn(routesOf, path)) return undefined
            const ordinary = () => run(routesOf[path]!(body))
            const answered = answerNow(fast[path], body)
            if (answered instanceof Promise) return answered.then((later) => later ?? ordinary())
            return answered ?? ordinary()
          }
        })
      const app: HttpApp.Default = serviceApp({ serviceToken: settings.serviceToken, post }).pipe(
        Effect.provideService(SqlClient.SqlClient, sql)
      )
      const handle = yield* transport.serve({
        name: `aliya-${name}`,
        port: settings.ports[name],
        hostname: settings.host,
        limits: defaultSocketLimits,
        http: app
      })
      ports[name] = handle.port
    }
    return ports
  })

/** Serves the token server (POST /login, /login_unique; GET /validate); returns its port. */
export const startTokenServer = (settings: TokenServerSettings) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    yield* migrateSchema(SessionSchema)
    yield* tuneSqlite
    const local = yield* Effect.serviceOption(ColocatedServices)
    const run = Runtime.runPromise(yield* Effect.runtime<SqlClient.SqlClient>())
    // The AccountManager in this process is asked in-process (as the gateway asks it), else over HTTP.
    const accounts = serviceCallsFor(
      "auto",
      httpServiceCalls({
        http: yield* InternalHttp,
        urls: { account: settings.accountManagerUrl },
        serviceToken: settings.serviceToken
      }),
      local
    )
    // Co-located gateways subscribe: every token issued here (by any route) drops its player's older ones from their caches.
    const listeners = new Set<(token: string) => void>()
    yield* Effect.addFinalizer(() => Effect.sync(() => listeners.clear()))
    const server = makeTokenServer({
      codec: makeJwtCodec(settings.signing),
      lifetime: settings.lifetime,
      askAccounts: async (path, body) => accounts.post("account", path, body),
      issued: (token) => {
        for (const listener of listeners) listener(token)
      }
    })
    const bounded = yield* makeRequestBound
    const post = bounded.routes("tokens", { "/login": server.login, "/login_unique": server.loginUnique })
    const validateToken = (token: string) => bounded.bound("tokens", "/validate")(server.validateToken(token))
    if (Option.isSome(local)) {
      local.value.set("tokens", {
        post: (path, body) => (Object.hasOwn(post, path) ? run(post[path]!(body)) : undefined),
        validate: (token) => run(validateToken(tokenOfHeader(token))),
        onIssued: (listener) => listeners.add(listener)
      })
    }
    // GET /validate with a bare `Authorization: <token>` header (a "Bearer " prefix is accepted too).
    const validate = (request: Request) => validateToken(tokenOfHeader(request.headers.get("authorization")))
    const app = serviceApp({ serviceToken: undefined, post, get: { "/validate": validate } })
    const handle = yield* transport.serve({
      name: "aliya-tokens",
      port: settings.port,
      hostname: settings.host,
      limits: defaultSocketLimits,
      http: app
    })
    return handle.port
  })

/** Serves the TCP gateway; returns its port. */
export const startGateway = (settings: GatewaySettings) =>
  Effect.gen(function* () {
    const tcp = yield* TcpTransport
    if (settings.cipher.kind === "des-compat") {
      yield* Effect.logWarning(
        "aliya gateway: cipher des-compat: INSECURE (DES with a fixed IV), for the original's clients only"
      )
    }
    const http = httpServiceCalls({
      http: yield* InternalHttp,
      urls: { ...settings.managerUrls, tokens: settings.tokenServerUrl },
      serviceToken: settings.serviceToken
    })
    const gateway = yield* makeGateway({
      cipher: makeCipher(settings.cipher),
      calls: serviceCallsFor(settings.calls, http, yield* Effect.serviceOption(ColocatedServices)),
      dangerousFunctions: settings.dangerousFunctions,
      loginRate: settings.loginRate,
      tokenCacheMillis: settings.tokenCacheMs
    })
    const handle = yield* tcp.serve({
      name: "aliya-gateway",
      port: settings.port,
      hostname: settings.host,
      limits: settings.limits,
      open: gateway.open
    })
    return handle.port
  })
