import { HttpServerResponse } from "@effect/platform"
import { Clock, type Context, Effect, Either, Option, Runtime, Schema } from "effect"
import type { AccountStore } from "../../layers/Storage/AccountStore.ts"
import type { NativeRoute } from "../../layers/Transport/Transport.ts"
import type { KeyedLimiter } from "../shared/RateLimiter.ts"
import { type Account, Permission } from "../storage/Account.ts"
import { decodeLoginBody, failure, type LoginBody, parseBody, permissionString, type Reply, success } from "./Api.ts"
import type { CommServers, NoCommServer, Reservation } from "./CommServers.ts"
import type { Sessions } from "./Sessions.ts"
import { ActorType, ErrorCode } from "./Wire.ts"

/**
 * The login endpoints (/w/wl, /agent/al) as plain values: a request in, an answer out. The HTTP app and the
 * transport's native route both serve them, so the two give the same status, headers and body.
 */

/** What a session (sid) proves: who logged in, as what, through which relay login. */
export const LoginSession = Schema.Struct({
  accountId: Schema.String,
  accountName: Schema.String,
  actorType: ActorType,
  group: Schema.String,
  requestId: Schema.String
})
export type LoginSession = typeof LoginSession.Type

/** Finds a session by the login that created it (LOGOUT names the account and request id): one map lookup. */
export const loginSessionKey = (accountId: string, requestId: string) => `${accountId}\n${requestId}`
export const indexOfLoginSession = (session: LoginSession) => loginSessionKey(session.accountId, session.requestId)

const encodeLoginSessionBySchema = Schema.encodeSync(Schema.parseJson(LoginSession))
const actorTypes: ReadonlyArray<unknown> = ActorType.literals

/** A session as Schema.parseJson(LoginSession) encodes it (how it is stored), without Schema for a valid one. */
export const encodeLoginSession = (session: LoginSession): string => {
  const { accountId, accountName, actorType, group, requestId } = session
  const plain = [accountId, accountName, group, requestId].every((field) => typeof field === "string")
  if (!plain || !actorTypes.includes(actorType)) return encodeLoginSessionBySchema(session)
  const quoted = JSON.stringify
  return `{"accountId":${quoted(accountId)},"accountName":${quoted(accountName)},"actorType":${quoted(actorType)},"group":${quoted(group)},"requestId":${quoted(requestId)}}`
}

/** What the login reads of a request, however it arrived. */
export interface LoginRequest {
  readonly address: string
  readonly contentType: string
  /** The body; "" when it cannot be read. */
  readonly text: Effect.Effect<string>
}

/** An API answer: reply body, status and headers of its own (CORS and content headers are added when sent). */
export interface Answer {
  readonly body: Reply
  readonly status: number
  readonly headers?: Record<string, string>
}

export const answer = (body: Reply, status = 200, headers?: Record<string, string>): Answer =>
  headers === undefined ? { body, status } : { body, status, headers }

/** The answer for the HTTP app (its CORS middleware adds the CORS header). */
export const toHttpResponse = (sent: Answer) =>
  HttpServerResponse.unsafeJson(sent.body, sent.headers === undefined ? { status: sent.status } : sent)

const utf8 = new TextEncoder()

/**
 * The answer as the HTTP app sends it, header for header and in the same order: its own headers, the JSON
 * content type and length, then the CORS header of HttpMiddleware.cors() (any origin).
 */
export const toWebResponse = (sent: Answer): Response => {
  const bytes = utf8.encode(JSON.stringify(sent.body))
  const headers: Record<string, string> = {
    ...sent.headers,
    "content-type": "application/json",
    "content-length": String(bytes.byteLength),
    "access-control-allow-origin": "*"
  }
  return new Response(bytes, { status: sent.status, headers })
}

/** Per-address limits on logins and management calls, as answers. */
export const makeAddressLimits = (attempts: KeyedLimiter, failures: KeyedLimiter) => {
  const tooMany = (command: string, retryAfter: number) =>
    answer(failure(command, ErrorCode.unknown, "Too many requests. Please try again later."), 429, {
      "retry-after": String(Math.max(1, retryAfter))
    })
  return {
    /** 429 when the address is blocked for failed credentials or out of attempts; otherwise takes one attempt. */
    limited: (command: string, from: string, now: number): Answer | undefined => {
      if (failures.isBlocked(from, now)) return tooMany(command, failures.retryAfter(from, now))
      return attempts.admit(from, now) ? undefined : tooMany(command, attempts.retryAfter(from, now))
    },
    /**
     * Wrong credentials spend one of the address's failures; the one past the limit blocks the address and
     * is answered 429 (returned), else undefined: the request's own answer stands.
     */
    failed: (command: string, from: string, now: number): Effect.Effect<Answer | undefined> =>
      failures.admit(from, now)
        ? Effect.succeed(undefined)
        : Effect.as(
            Effect.logWarning(`blocking ${from}: too many failed credentials`),
            tooMany(command, failures.retryAfter(from, now))
          )
  }
}
export type AddressLimits = ReturnType<typeof makeAddressLimits>

export interface LoginOptions {
  readonly accounts: Context.Tag.Service<AccountStore>
  readonly sessions: Sessions<LoginSession>
  readonly commServers: CommServers
  readonly limits: AddressLimits
  /** Counts one login by actor and result (metrics). */
  readonly count: (actor: ActorType, result: string) => void
  /** Runs what the login on the spot hands to Effects (a credential check that misses the cache, logging). */
  readonly runtime: Runtime.Runtime<never>
  /** The clock of the login on the spot (the server's; TestClock in tests). */
  readonly clock: Clock.Clock
}

/** A login both ways: as an Effect (the HTTP app) and on the spot with no fiber unless a step needs one (native route). */
export interface Login {
  readonly effect: (request: LoginRequest) => Effect.Effect<Answer>
  readonly now: (request: Request, address: string) => Answer | Promise<Answer>
  /** The answer to a request this login failed on inside. */
  readonly internalError: Answer
}

/** The login of one actor type: rate limits, body, credentials, permission, a relay's key, a session. */
export const makeLogin = (options: LoginOptions) => {
  const { accounts, sessions, commServers, limits, count, clock } = options
  const runPromise = Runtime.runPromise(options.runtime)
  const runFork = Runtime.runFork(options.runtime)
  return (actorType: ActorType, command: string): Login => {
    const counted = (result: string, sent: Answer) => (count(actorType, result), sent)

    /** The body's login fields, or the 400 that ends the login. */
    const read = (contentType: string, text: string): Either.Either<LoginBody, Answer> =>
      Either.mapLeft(Either.flatMap(parseBody(contentType, text), decodeLoginBody), (reason) =>
        counted("invalid", answer(failure(command, ErrorCode.invalidData, reason), 400))
      )

    /** A found account's refusal (disabled, no permission for this actor type), or undefined: place it. */
    const refusalOf = (account: Account): Answer | undefined => {
      if (!account.enabled)
        return counted("disabled", answer(failure(command, ErrorCode.accountDisabled, "Account is disabled.")))
      if (account.has(actorType === "g" ? Permission.gcs : Permission.agent)) return undefined
      const what = actorType === "g" ? "a GCS" : "an agent"
      return counted(
        "no-permission",
        answer(
          failure(command, ErrorCode.noPermission, `No enough permission. This account may not log in as ${what}.`)
        )
      )
    }

    const loginRequest = (account: Account, group: string) => ({
      a: account.id,
      b: group,
      at: actorType,
      il: account.instanceLimit,
      prm: account.permission,
      an: account.name
    })
    const sessionOf = (account: Account, group: string, requestId: string): LoginSession => ({
      accountId: account.id,
      accountName: account.name,
      actorType,
      group,
      requestId
    })
    const notPlaced = (acc: string, reason: NoCommServer) => ({
      log: Effect.logWarning(`login of ${acc} not placed: ${reason.reason}`),
      sent: counted("no-server", answer(failure(command, ErrorCode.noServer, "No available Server")))
    })
    const granted = (account: Account, reservation: Reservation, sid: string) =>
      counted(
        "ok",
        answer(
          success(command, {
            sid,
            per: permissionString,
            prm: account.permission,
            cs: { f: reservation.key, g: reservation.host, h: reservation.port }
          })
        )
      )

    /** After the rate limit and the body: credentials, permission, a relay's key, a session. */
    const place = (address: string, body: LoginBody): Effect.Effect<Answer> =>
      Effect.gen(function* () {
        const { acc, pwd, gr } = body
        const found = yield* accounts.authenticate(acc, pwd)
        if (Option.isNone(found)) {
          count(actorType, "not-found")
          const blocked = yield* limits.failed(command, address, yield* Clock.currentTimeMillis)
          return blocked ?? answer(failure(command, ErrorCode.accountNotFound, "Account Not Found."))
        }
        const account = found.value
        const refused = refusalOf(account)
        if (refused) return refused
        const reserved = yield* Effect.either(commServers.reserve(loginRequest(account, gr)))
        if (Either.isLeft(reserved)) {
          const { log, sent } = notPlaced(acc, reserved.left)
          return yield* Effect.as(log, sent)
        }
        const sid = yield* sessions.create(sessionOf(account, gr, reserved.right.requestId))
        return granted(account, reserved.right, sid)
      }).pipe(
        Effect.catchTag("StorageError", (error) =>
          Effect.logError("account store failed during login", error.message).pipe(
            Effect.as(answer(failure(command, ErrorCode.databaseError, "Database error."), 500))
          )
        ),
        Effect.catchTag("TokenStoreUnavailable", (error) =>
          Effect.as(Effect.logError("session store failed during login", error.reason), sessionStoreDown(command))
        )
      )

    /**
     * `place` without a fiber when the credentials are in the cache and sessions are issued on the spot: LOGIN goes
     * out now and the answer is finished by the relay's reply (or the sweep, or the relay's disconnect).
     */
    const placeNow = (address: string, body: LoginBody): Answer | Promise<Answer> => {
      const { acc, pwd, gr } = body
      const found = accounts.authenticateNow?.(acc, pwd)
      const createNow = sessions.createNow
      if (found === undefined || Option.isNone(found) || createNow === undefined)
        return runPromise(place(address, body))
      const account = found.value
      const refused = refusalOf(account)
      if (refused) return refused
      return new Promise((resolve, reject) =>
        commServers.reserveNow(loginRequest(account, gr), (reserved) => {
          try {
            if (Either.isRight(reserved))
              return resolve(
                granted(account, reserved.right, createNow(sessionOf(account, gr, reserved.right.requestId)))
              )
            const { log, sent } = notPlaced(acc, reserved.left)
            runFork(log)
            resolve(sent)
          } catch (defect) {
            reject(defect)
          }
        })
      )
    }

    const effect = (request: LoginRequest): Effect.Effect<Answer> =>
      Effect.gen(function* () {
        const refused = limits.limited(command, request.address, yield* Clock.currentTimeMillis)
        if (refused) return counted("rate-limited", refused)
        const body = read(request.contentType, yield* request.text)
        return Either.isLeft(body) ? body.left : yield* place(request.address, body.right)
      })

    const now = (request: Request, address: string): Answer | Promise<Answer> => {
      const refused = limits.limited(command, address, clock.unsafeCurrentTimeMillis())
      if (refused) return counted("rate-limited", refused)
      const contentType = request.headers.get("content-type") ?? ""
      const afterBody = (text: string) => {
        const body = read(contentType, text)
        return Either.isLeft(body) ? body.left : placeNow(address, body.right)
      }
      return request.text().then(afterBody, () => afterBody(""))
    }
    return { effect, now, internalError: internalErrorAnswer(command) }
  }
}

/** A login endpoint served by the transport itself (ServeOptions.routes), on the spot. */
export const loginRoute = (path: string, login: Login): NativeRoute => ({
  method: "POST",
  path,
  handle: (request, address) => {
    const sent = login.now(request, address)
    return sent instanceof Promise ? sent.then(toWebResponse) : toWebResponse(sent)
  },
  onDefect: () => toWebResponse(login.internalError)
})

/** What a call answers when the session store (a shared Tokens store) cannot be reached: retry later. */
export const sessionStoreDown = (command: string): Answer =>
  answer(failure(command, ErrorCode.databaseError, "Session store unavailable."), 503)

/** What a login answers when it fails inside (a defect): a short JSON error a browser page can read (CORS). */
export const internalErrorAnswer = (command: string): Answer =>
  answer(failure(command, ErrorCode.unknown, "Internal error."), 500)
