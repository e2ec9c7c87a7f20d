import { HttpMiddleware, HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Cause, Clock, Effect, Either, Option, Schema } from "effect"
import {
  decodeBody,
  failure,
  HardwareBody,
  LogoutBody,
  type ManagementBody,
  ManagementBody as ManagementSchema,
  parseBody,
  type Reply,
  success
} from "./Api.ts"
import {
  answer,
  type LoginSession,
  loginRoute,
  makeAddressLimits,
  makeLogin,
  sessionStoreDown,
  toHttpResponse
} from "./Login.ts"
import { type ActorType, ErrorCode } from "./Wire.ts"
import { Permission } from "../storage/Account.ts"
import type { CommServers } from "./CommServers.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { metricsResponse } from "../../layers/Observability/MetricsRoute.ts"
import { AccountStore } from "../../layers/Storage/AccountStore.ts"
import { HardwareStore } from "../../layers/Storage/HardwareStore.ts"
import { ClientAddress } from "../../layers/Transport/Transport.ts"
import type { KeyedLimiter } from "../shared/RateLimiter.ts"
import type { Sessions } from "./Sessions.ts"
import type { TokenStoreUnavailable } from "../../layers/Tokens/Tokens.ts"

export interface LoginApiOptions {
  readonly serverName: string
  readonly serverId: string
  readonly version: string
  readonly sessions: Sessions<LoginSession>
  readonly commServers: CommServers
  /** Logins and management calls per address. */
  readonly attempts: KeyedLimiter
  /** Failed credentials per address: the failure past the limit blocks the address (429 meanwhile). */
  readonly failures: KeyedLimiter
}

const reply = (body: Reply, status = 200, headers?: Record<string, string>) =>
  toHttpResponse(answer(body, status, headers))

/** The request body as an object (JSON or form); a 400 reply when it is neither. */
const readBody = <A, I>(command: string, schema: Schema.Schema<A, I>) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const text = yield* request.text.pipe(Effect.orElseSucceed(() => ""))
    const parsed = Either.flatMap(parseBody(request.headers["content-type"] ?? "", text), (body) =>
      decodeBody(schema, body)
    )
    return Either.mapLeft(parsed, (message) => reply(failure(command, ErrorCode.invalidData, message), 400))
  })

/**
 * The authenticator's HTTP API (original paths and reply shapes): logins for GCS and agents,
 * logout, hardware check, account management for admin sessions, health and metrics.
 */
export const makeLoginApi = (options: LoginApiOptions) =>
  Effect.gen(function* () {
    const accounts = yield* AccountStore
    const hardware = yield* HardwareStore
    const metrics = yield* Metrics
    const logins = metrics.counter("switchboard_de_logins_total", "Login attempts by actor type and result", [
      "server",
      "actor",
      "result"
    ])
    const { sessions, commServers, attempts, failures } = options
    // One cell per (actor, result), resolved once: Series.labels sorts and stringifies its labels on every call.
    const cells = new Map<string, { inc(): void }>()
    const count = (actor: ActorType, result: string) => {
      const key = `${actor}:${result}`
      let cell = cells.get(key)
      if (!cell) cells.set(key, (cell = logins.labels({ server: options.serverName, actor, result })))
      cell.inc()
    }

    const address = Effect.map(
      Effect.serviceOption(ClientAddress),
      Option.getOrElse(() => "unknown")
    )
    const limits = makeAddressLimits(attempts, failures)
    const limited = (command: string) =>
      Effect.gen(function* () {
        const refused = limits.limited(command, yield* address, yield* Clock.currentTimeMillis)
        return refused && toHttpResponse(refused)
      })
    const failed = (command: string, own: HttpServerResponse.HttpServerResponse) =>
      Effect.gen(function* () {
        const [from, now] = [yield* address, yield* Clock.currentTimeMillis]
        const blocked = yield* limits.failed(command, from, now)
        return blocked ? toHttpResponse(blocked) : own
      })
    const loginOf = makeLogin({
      accounts,
      sessions,
      commServers,
      limits,
      count,
      runtime: yield* Effect.runtime<never>(),
      clock: yield* Effect.clock
    })
    /** The login through the HTTP app, for transports without native routes (the same answers). */
    const login = (actorType: ActorType, command: string) => {
      const { effect: run, internalError } = loginOf(actorType, command)
      return Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const sent = yield* run({
          address: yield* address,
          contentType: request.headers["content-type"] ?? "",
          text: request.text.pipe(Effect.orElseSucceed(() => ""))
        })
        return toHttpResponse(sent)
      }).pipe(
        // As the native route answers a defect: logged, and a short JSON 500 that keeps the CORS header.
        Effect.catchAllDefect((defect) =>
          Effect.as(Effect.logError("login failed", Cause.die(defect)), toHttpResponse(internalError))
        )
      )
    }

    const logout = Effect.gen(function* () {
      const body = yield* readBody("/wo", LogoutBody)
      if (Either.isLeft(body)) return body.left
      return (yield* sessions.end(body.right.sid))
        ? reply(success("/wo"))
        : reply(failure("/wo", ErrorCode.sessionNotFound, "Session not found or invalid"))
    })

    const hardwareCheck = Effect.gen(function* () {
      const body = yield* readBody("/ah", HardwareBody)
      if (Either.isLeft(body)) return body.left
      const session = yield* sessions.get(body.right.sid)
      if (Option.isNone(session))
        return reply(failure("/ah", ErrorCode.sessionNotFound, "Session not found or invalid"))
      const known = yield* hardware.isRegistered({
        accountId: session.value.accountId,
        hardwareId: body.right.hi,
        hardwareType: body.right.ht
      })
      return known
        ? reply(success("/ah", { scm: "vh" }))
        : reply(failure("/ah", ErrorCode.hardwareNotFound, "No hardware is found."))
    }).pipe(
      Effect.catchTag("StorageError", () =>
        Effect.succeed(reply(failure("/ah", ErrorCode.databaseError, "Database error."), 500))
      )
    )

    const manage = (command: string) =>
      Effect.gen(function* () {
        const refused = yield* limited(command)
        if (refused) return refused
        const body = yield* readBody(command, ManagementSchema)
        if (Either.isLeft(body)) return body.left
        const request = body.right
        const session = request.sid ? yield* sessions.get(request.sid) : Option.none()
        if (Option.isNone(session)) {
          return yield* failed(
            command,
            reply(
              failure(
                command,
                ErrorCode.sessionNotFound,
                "Account management needs the sid of a logged-in admin account."
              ),
              401
            )
          )
        }
        const admin = yield* accounts.findByName(session.value.accountName)
        if (Option.isNone(admin) || !admin.value.isAdmin || !admin.value.enabled) {
          return reply(failure(command, ErrorCode.noPermission, "Account management needs an admin account."), 403)
        }
        yield* Effect.logInfo(`account management ${request.scm} by ${admin.value.name}`)
        return yield* operate(command, request)
      }).pipe(
        Effect.catchTags({
          AccountExists: (error) =>
            Effect.succeed(
              reply(failure(command, ErrorCode.invalidData, `Account ${error.name} already exists.`), 409)
            ),
          AccountNotFound: () =>
            Effect.succeed(reply(failure(command, ErrorCode.accountNotFound, "Account Not Found."), 404)),
          ReadOnlyStore: (error) =>
            Effect.succeed(
              reply(failure(command, ErrorCode.databaseError, `The account store cannot ${error.operation}.`), 409)
            ),
          StorageError: () => Effect.succeed(reply(failure(command, ErrorCode.databaseError, "Database error."), 500))
        })
      )

    const operate = (command: string, request: ManagementBody) =>
      Effect.gen(function* () {
        const needName = () => reply(failure(command, ErrorCode.invalidData, "acc (account name) is required"), 400)
        switch (request.scm) {
          case "c": {
            if (!request.acc) return needName()
            const issued = yield* accounts.create({
              name: request.acc,
              permission: request.prm ?? Permission.all,
              instanceLimit: request.il ?? 0
            })
            // The access code is shown here once; only its hash is stored.
            return reply(
              success(command, {
                scm: "c",
                acc: issued.account.name,
                pwd: issued.accessCode,
                prm: issued.account.permission
              })
            )
          }
          case "r": {
            if (!request.acc) return needName()
            const issued = yield* accounts.regenerateAccessCode(request.acc)
            return reply(success(command, { scm: "r", acc: issued.account.name, pwd: issued.accessCode }))
          }
          case "g": {
            const found = request.acc ? yield* accounts.findByName(request.acc) : yield* findByCode(request.pwd)
            if (Option.isNone(found))
              return reply(failure(command, ErrorCode.accountNotFound, "Account Not Found."), 404)
            const account = found.value
            return reply(
              success(command, {
                scm: "g",
                acc: account.name,
                prm: account.permission,
                en: account.enabled,
                il: account.instanceLimit,
                adm: account.isAdmin
              })
            )
          }
        }
      })

    /** Codes are stored hashed, so finding an account by its code checks every account: admin only, rate limited. */
    const findByCode = (code: string | undefined) =>
      Effect.gen(function* () {
        if (!code) return Option.none()
        for (const account of yield* accounts.list) {
          if (Option.isSome(yield* accounts.authenticate(account.name, code))) return Option.some(account)
        }
        return Option.none()
      })

    const health = Effect.sync(() =>
      HttpServerResponse.unsafeJson({
        status: "OK",
        version: options.version,
        server_id: options.serverId,
        relays: commServers.status()
      })
    )

    const notFound = (request: HttpServerRequest.HttpServerRequest) =>
      request.url.startsWith("/w") || request.url.startsWith("/agent")
        ? reply(failure("error", ErrorCode.notFound, "API endpoint not found"), 404)
        : HttpServerResponse.unsafeJson({ error: "not found" }, { status: 404 })

    /** A call that reads or ends a session: the session store unreachable is answered 503, e 3. */
    const sessionCall = <R>(
      command: string,
      call: Effect.Effect<HttpServerResponse.HttpServerResponse, TokenStoreUnavailable, R>
    ) =>
      Effect.catchTag(call, "TokenStoreUnavailable", (error) =>
        Effect.as(
          Effect.logWarning(`${command}: session store unavailable`, error.reason),
          toHttpResponse(sessionStoreDown(command))
        )
      )

    const loginPaths = [
      ["/w/wl", "g", "/wl"],
      ["/agent/al", "d", "/al"]
    ] as const
    const routes: ReadonlyArray<
      readonly [
        string,
        Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
      ]
    > = [
      ...loginPaths.map(([path, actor, command]) => [path, login(actor, command)] as const),
      ["/w/wo", sessionCall("/wo", logout)],
      ["/agent/ah", sessionCall("/ah", hardwareCheck)],
      ["/w/am", sessionCall("/am", manage("/am"))],
      ["/agent/aam", sessionCall("/aam", manage("/aam"))]
    ]
    // The router ignores a trailing "/", as the original does.
    const router = routes.reduce(
      (router, [path, handler]) => router.pipe(HttpRouter.post(path as "/", handler)),
      HttpRouter.empty.pipe(
        HttpRouter.get("/h/health", health),
        HttpRouter.get("/metrics", metricsResponse.pipe(Effect.provideService(Metrics, metrics)))
      )
    )
    // Browser GCS pages live on another origin; like the original (express cors()), allow any:
    // the API authenticates by body fields, never by cookies.
    const http = router.pipe(
      Effect.catchTag("RouteNotFound", (error) => Effect.succeed(notFound(error.request))),
      HttpMiddleware.cors()
    )
    // The logins, the hot path, also as the transport's native routes: the same answers without the HTTP app.
    const nativeRoutes = loginPaths.map(([path, actor, command]) => loginRoute(path, loginOf(actor, command)))
    return { http, routes: nativeRoutes }
  })
