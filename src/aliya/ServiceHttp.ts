import { type HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { createHash, timingSafeEqual } from "node:crypto"
import { Effect, Either, Redacted, Schema } from "effect"
import { fastFunctionBody } from "./FastDecode.ts"
import { type FunctionName, FunctionData } from "./Functions.ts"
import { budgetOfHeader, type CallBudget, WAIT_HEADER } from "./HashQueue.ts"
import { Messages, type Reply, reply, Status } from "./Wire.ts"

/** Internal request bodies are small JSON or form data; anything larger is refused before parsing. */
export const MAX_INTERNAL_BODY = 16 * 1024

/** The header that carries the service token between the gateway, the token server and the managers. */
export const SERVICE_HEADER = "x-aliya-service-token"

const digest = (text: string) => createHash("sha256").update(text).digest()

/** Constant-time check of a presented service token. */
export const serviceTokenMatches = (expected: Redacted.Redacted<string>) => {
  const want = digest(Redacted.value(expected))
  return (presented: string | null | undefined) => presented != null && timingSafeEqual(digest(presented), want)
}

/** A plain answer of an internal route: HTTP status and JSON body. */
export interface Answer {
  readonly httpStatus: number
  readonly body: unknown
}
export const answer = (body: unknown, httpStatus = 200): Answer => ({ httpStatus, body })

/** Reads a JSON or form body (bounded); undefined when unreadable or too large. */
export const readBody = (request: Request): Effect.Effect<unknown> =>
  Effect.promise(async () => {
    const length = Number(request.headers.get("content-length") ?? 0)
    if (length > MAX_INTERNAL_BODY) return undefined
    const text = await request.text().catch(() => undefined)
    if (text === undefined || text.length > MAX_INTERNAL_BODY) return undefined
    const type = request.headers.get("content-type") ?? ""
    if (type.includes("application/x-www-form-urlencoded")) return Object.fromEntries(new URLSearchParams(text))
    if (text.trim() === "") return {}
    try {
      return JSON.parse(text) as unknown
    } catch {
      return undefined
    }
  })

/** A POST route; `call` is what an HTTP caller said about its wait (absent in-process). */
export type Route<R> = (body: unknown, call?: CallBudget) => Effect.Effect<Answer, never, R>

/**
 * An HttpApp that serves POST routes (GET too where listed) and, when `serviceToken` is given,
 * answers 401 to any request without it.
 */
export const serviceApp = <R>(options: {
  readonly serviceToken: Redacted.Redacted<string> | undefined
  readonly post: Record<string, Route<R>>
  readonly get?: Record<string, (request: Request) => Effect.Effect<Answer, never, R>>
}): HttpApp.Default<never, R> => {
  const authorized = options.serviceToken ? serviceTokenMatches(options.serviceToken) : () => true
  return Effect.gen(function* () {
    const serverRequest = yield* HttpServerRequest.HttpServerRequest
    const request = yield* HttpServerRequest.toWeb(serverRequest).pipe(Effect.orDie)
    const path = new URL(request.url).pathname
    const respond = (a: Answer) => HttpServerResponse.unsafeJson(a.body, { status: a.httpStatus })
    if (!authorized(request.headers.get(SERVICE_HEADER)))
      return respond(answer({ message: "service token required" }, 401))
    if (request.method === "GET" && options.get && Object.hasOwn(options.get, path))
      return respond(yield* options.get[path]!(request))
    if (request.method !== "POST" || !Object.hasOwn(options.post, path))
      return respond(answer({ message: "not found" }, 404))
    const body = yield* readBody(request)
    if (body === undefined) return respond(answer(reply(Status.invalidFormat, Messages.invalidFormat), 400))
    return respond(yield* options.post[path]!(body, budgetOfHeader(request.headers.get(WAIT_HEADER))))
  })
}

const WithUniqueId = Schema.Struct({ unique_id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128)) })

type FunctionBody<K extends FunctionName> = { uniqueId: string; data: (typeof FunctionData)[K]["Type"] }

/** The Schema decoder of a manager route's body `{unique_id, ...data}` for a client function (its own schema). */
export const functionBodySchema = <K extends FunctionName>(name: K) => {
  const decode = Schema.decodeUnknownEither(
    Schema.extend(WithUniqueId, FunctionData[name] as unknown as Schema.Struct<{}>)
  )
  return (body: unknown): FunctionBody<K> | undefined => {
    const decoded = decode(body)
    if (Either.isLeft(decoded)) return undefined
    const { unique_id, ...data } = decoded.right as { unique_id: string }
    return { uniqueId: unique_id, data: data as never }
  }
}

/** The route's decoder: the hand path for the hot functions when it is sure (see FastDecode), else the Schema. */
const functionBody = <K extends FunctionName>(name: K) => {
  const schema = functionBodySchema(name)
  return (body: unknown): FunctionBody<K> | undefined =>
    (fastFunctionBody(name, body) as FunctionBody<K> | undefined) ?? schema(body)
}

const invalidBody = answer(reply(Status.invalidFormat, Messages.invalidFormat), 400)

/** A manager route for a client function: decodes `{unique_id, ...data}` with the function's schema. */
export const functionRoute = <K extends FunctionName, R>(
  name: K,
  handler: (
    uniqueId: string,
    data: (typeof FunctionData)[K]["Type"],
    call: CallBudget | undefined
  ) => Effect.Effect<Reply, never, R>
): [string, Route<R>] => {
  const decode = functionBody(name)
  return [
    `/${name}`,
    (body, call) => {
      const decoded = decode(body)
      return decoded
        ? Effect.map(handler(decoded.uniqueId, decoded.data, call), (r) => answer(r))
        : Effect.succeed(invalidBody)
    }
  ]
}

/**
 * A route answered without the Effect runtime when it can: now, or by a Promise (a group commit
 * on the direct SQLite connection); undefined (at once or from the Promise) = take the ordinary Route.
 */
export type RouteNow = (body: unknown) => Answer | Promise<Answer | undefined> | undefined

/** The direct twin of functionRoute (see RouteNow): the same decoding; `handler` answers undefined when it cannot. */
export const functionRouteNow = <K extends FunctionName>(
  name: K,
  handler: (uniqueId: string, data: (typeof FunctionData)[K]["Type"]) => Reply | Promise<Reply | undefined> | undefined
): [string, RouteNow] => {
  const decode = functionBody(name)
  const answerOf = (r: Reply | undefined) => r && answer(r)
  return [
    `/${name}`,
    (body) => {
      const decoded = decode(body)
      if (!decoded) return invalidBody
      const r = handler(decoded.uniqueId, decoded.data)
      return r instanceof Promise ? r.then(answerOf) : answerOf(r)
    }
  ]
}

const noAnswer = () => undefined

/** The answer of a RouteNow, or undefined (also when it throws or rejects: the ordinary route then answers and logs). */
export const answerNow = (
  route: RouteNow | undefined,
  body: unknown
): Answer | Promise<Answer | undefined> | undefined => {
  if (!route) return undefined
  try {
    const answered = route(body)
    return answered instanceof Promise ? answered.catch(noAnswer) : answered
  } catch {
    return undefined
  }
}

/** Routes that try their RouteNow twin first (for the HTTP server; in-process calls skip the fiber too). */
export const preferNow = <R>(routes: Record<string, Route<R>>, now: Record<string, RouteNow>) =>
  Object.fromEntries(
    Object.entries(routes).map(([path, route]): [string, Route<R>] => {
      const fast = now[path]
      if (!fast) return [path, route]
      return [
        path,
        (body, call) =>
          Effect.suspend(() => {
            const answered = answerNow(fast, body)
            if (answered instanceof Promise)
              return Effect.flatMap(
                Effect.promise(() => answered),
                (later) => (later ? Effect.succeed(later) : route(body, call))
              )
            return answered ? Effect.succeed(answered) : route(body, call)
          })
      ]
    })
  )

/** Storage failures become status 13 (logged), never a crash or a leaked driver message. */
export const orUnavailable = <R>(effect: Effect.Effect<Reply, unknown, R>): Effect.Effect<Reply, never, R> =>
  effect.pipe(
    Effect.catchAllCause((cause) =>
      Effect.logError("aliya: storage failure", cause).pipe(Effect.as(reply(Status.unavailable, Messages.unavailable)))
    )
  )
