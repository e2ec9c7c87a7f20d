import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Clock, Deferred, Duration, Effect, Either, Option, Schema, Stream } from "effect"
import { BatchRequest, PublishRequest, TokenRequest } from "./Commands.ts"
import type { HydrogenSettings } from "./Config.ts"
import { issuesOf } from "./Envelope.ts"
import { parseJson } from "./Json.ts"
import { authenticationError, errorBody, ErrorCodes, HydrogenError, protocolError } from "./Errors.ts"
import { allows, grantable, type Identity, Permission } from "./Permissions.ts"
import { metricsResponse } from "../../layers/Observability/MetricsRoute.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import type { SignedTokens } from "../../layers/Tokens/SignedTokens.ts"
import { ClientAddress } from "../../layers/Transport/Transport.ts"
import { type RateLimits, tooManyFailures } from "./RateLimits.ts"
import type { Channels } from "./Channels.ts"
import { toPublication } from "./Handlers.ts"
import type { Status } from "./Status.ts"

const statusFor = (error: HydrogenError): number =>
  error.code === ErrorCodes.rateLimited
    ? 429
    : error.category === "authentication"
      ? error.code === ErrorCodes.forbidden
        ? 403
        : 401
      : error.category === "protocol"
        ? error.code === ErrorCodes.messageTooLarge
          ? 413
          : 400
        : error.code === ErrorCodes.storageUnavailable
          ? 503
          : 500

const failure = (error: HydrogenError) =>
  HttpServerResponse.unsafeJson(
    { error: errorBody(error) },
    {
      status: statusFor(error),
      ...(error.retryAfter === undefined ? {} : { headers: { "retry-after": String(error.retryAfter) } })
    }
  )

const throttled = (seconds: number) =>
  new HydrogenError({
    category: "protocol",
    code: ErrorCodes.rateLimited,
    message: tooManyFailures,
    retryAfter: seconds
  })

interface Answer {
  readonly status: number
  readonly body: unknown
}

/** Remembers answers by idempotency key for a while, so a retried POST is not published twice. */
const makeIdempotency = (window: Duration.Duration) => {
  const answers = new Map<string, { readonly at: number; readonly answer: Deferred.Deferred<Answer, HydrogenError> }>()
  const windowMillis = Duration.toMillis(window)
  return (key: string | undefined, work: Effect.Effect<Answer, HydrogenError>): Effect.Effect<Answer, HydrogenError> =>
    key === undefined
      ? work
      : Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          for (const [k, entry] of answers) {
            if (entry.at + windowMillis > now && answers.size < 100_000) break
            answers.delete(k)
          }
          const known = answers.get(key)
          if (known) return yield* Deferred.await(known.answer)
          const answer = yield* Deferred.make<Answer, HydrogenError>()
          answers.set(key, { at: now, answer })
          const result = yield* Effect.either(work)
          if (Either.isLeft(result)) answers.delete(key)
          yield* Deferred.complete(answer, result)
          return yield* result
        })
}

/**
 * HTTP on the WebSocket's port: GET /health, GET /metrics, GET /status, and the server API for
 * application services (like Centrifugo's): POST /api/publish, /api/batch, /api/tokens, all with
 * `Authorization: Key <api key>` and a JSON body validated by Schema (4xx with the reasons).
 */
export const makeHttpApp = (deps: {
  readonly settings: HydrogenSettings
  readonly authenticate: (credential: string) => Effect.Effect<Identity, HydrogenError>
  readonly channels: Channels
  readonly status: Status
  readonly tokens: typeof SignedTokens.Service
  readonly metrics: typeof Metrics.Service
  readonly sessionCount: () => number
  readonly rateLimits: RateLimits
}) => {
  const { settings, channels, status, rateLimits } = deps
  const idempotent = makeIdempotency(settings.idempotencyWindow)

  /** The caller's identity; wrong credentials count toward the address's limit (429 + Retry-After once it is spent). */
  const caller = (permission: string) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const match = /^(?:Key|Bearer)\s+(\S+)\s*$/i.exec(request.headers["authorization"] ?? "")
      if (!match)
        return yield* authenticationError(ErrorCodes.invalidToken, "credentials required: Authorization: Key <api key>")
      const address = Option.getOrUndefined(yield* Effect.serviceOption(ClientAddress))
      const now = yield* Clock.currentTimeMillis
      const blockedFor = address === undefined ? 0 : rateLimits.credentialsBlocked(address, now)
      if (blockedFor > 0) return yield* throttled(blockedFor)
      const identity = yield* deps.authenticate(match[1]!).pipe(
        Effect.catchAll((error) => {
          const wait = address === undefined ? 0 : rateLimits.credentialFailed(address, now)
          return Effect.fail(wait > 0 ? throttled(wait) : error)
        })
      )
      if (!allows(identity, permission))
        return yield* authenticationError(ErrorCodes.forbidden, `${identity.name} lacks the "${permission}" permission`)
      return identity
    })

  const limit = settings.limits.maxPayloadBytes
  const tooLarge = protocolError(ErrorCodes.messageTooLarge, `bodies are limited to ${limit} bytes`)

  /** The body as text, read only up to the limit: a chunked body that runs past it is refused without reading the rest. */
  const boundedText = (request: HttpServerRequest.HttpServerRequest) =>
    Stream.runFoldEffect(request.stream, { size: 0, chunks: [] as Array<Uint8Array> }, (read, chunk) => {
      if (read.size + chunk.byteLength > limit) return Effect.fail(tooLarge)
      read.chunks.push(chunk)
      return Effect.succeed({ size: read.size + chunk.byteLength, chunks: read.chunks })
    }).pipe(
      Effect.catchTag("RequestError", () => Effect.succeed({ size: 0, chunks: [] as Array<Uint8Array> })),
      Effect.map((read) => Buffer.concat(read.chunks, read.size).toString("utf8"))
    )

  const body = <A, I>(schema: Schema.Schema<A, I>) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      if (Number(request.headers["content-length"] ?? 0) > limit) return yield* tooLarge
      const json = parseJson(yield* boundedText(request))
      if (Either.isLeft(json)) return yield* json.left
      const decoded = Schema.decodeUnknownEither(schema, { errors: "all" })(json.right)
      if (Either.isLeft(decoded))
        return yield* protocolError(ErrorCodes.invalidData, "the body is not valid", issuesOf(decoded.left))
      return decoded.right
    })

  const respond = (work: Effect.Effect<Answer, HydrogenError, HttpServerRequest.HttpServerRequest>) =>
    work.pipe(
      Effect.map((answer) => HttpServerResponse.unsafeJson(answer.body, { status: answer.status })),
      Effect.catchAll((error) => Effect.succeed(failure(error)))
    )
  const ok = (body: unknown): Answer => ({ status: 200, body })

  /** Publishes and answers: one publication answers with its result or error, a batch with a list. */
  const publishAll = (
    identity: Identity,
    publications: ReadonlyArray<typeof PublishRequest.Type>,
    idempotencyKey: string | undefined,
    single: boolean
  ) =>
    idempotent(
      idempotencyKey === undefined ? undefined : `${identity.name}\u0000${idempotencyKey}`,
      channels.publish(publications.map(toPublication)).pipe(
        Effect.map((results): Answer => {
          if (single)
            return Either.match(results[0]!, {
              onLeft: (error) => ({ status: statusFor(error), body: { error: errorBody(error) } }),
              onRight: ok
            })
          return ok({
            results: results.map(
              Either.match({ onLeft: (error) => ({ error: errorBody(error) }), onRight: (published) => published })
            )
          })
        })
      )
    )

  return HttpRouter.empty.pipe(
    HttpRouter.get(
      "/health",
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        return HttpServerResponse.unsafeJson({
          status: "ok",
          uptime: Math.floor((now - status.counters.startedAt) / 1000),
          connections: status.counters.activeConnections,
          sessions: deps.sessionCount()
        })
      })
    ),
    HttpRouter.get("/metrics", Effect.provideService(metricsResponse, Metrics, deps.metrics)),
    HttpRouter.get(
      "/status",
      Effect.map(status.snapshot(undefined), (snapshot) => HttpServerResponse.unsafeJson(snapshot))
    ),
    HttpRouter.post(
      "/api/publish",
      respond(
        Effect.gen(function* () {
          const identity = yield* caller(Permission.api)
          const request = yield* body(PublishRequest)
          return yield* publishAll(identity, [request], request.idempotencyKey, true)
        })
      )
    ),
    HttpRouter.post(
      "/api/batch",
      respond(
        Effect.gen(function* () {
          const identity = yield* caller(Permission.api)
          const request = yield* body(BatchRequest)
          return yield* publishAll(identity, request.publications, request.idempotencyKey, false)
        })
      )
    ),
    HttpRouter.post(
      "/api/tokens",
      respond(
        Effect.gen(function* () {
          const identity = yield* caller(Permission.tokens)
          const request = yield* body(TokenRequest)
          const permissions = grantable(identity, request.permissions)
          const issued = yield* deps.tokens.issue(
            request.subject,
            permissions,
            Duration.seconds(request.ttlSeconds ?? 3600)
          )
          return ok({
            token: issued.token,
            subject: issued.claims.sub,
            permissions: issued.claims.perms,
            expiresAt: new Date(issued.claims.exp * 1000).toISOString()
          })
        })
      )
    ),
    Effect.catchTag("RouteNotFound", () => HttpServerResponse.unsafeJson({ error: "not found" }, { status: 404 }))
  )
}
