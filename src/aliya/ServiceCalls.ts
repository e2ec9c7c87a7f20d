import { Context, Layer, Option, Redacted } from "effect"
import type { ManagerName } from "./Functions.ts"
import { WAIT_HEADER } from "./HashQueue.ts"
import { INTERNAL_TIMEOUT_MILLIS, type InternalHttp, InternalHttpError, type InternalResponse } from "./InternalHttp.ts"
import { type Answer, SERVICE_HEADER } from "./ServiceHttp.ts"

/** A value now, or later. */
export type Soon<A> = A | Promise<A>

/** `next` of a value now (no Promise, no microtask), or of the value when it comes. */
export const then = <A, B>(value: Soon<A>, next: (a: A) => Soon<B>): Soon<B> =>
  value instanceof Promise ? value.then(next) : next(value)

/** The token server or a manager: who answers a call of the gateway. */
export type ServiceName = ManagerName | "tokens"

/**
 * How the gateway asks the service that owns a function. Two implementations answer the same:
 * over internal HTTP (parts in separate processes: loopback, service token), or in-process (the
 * owning part runs in this process: its route is called directly, no socket, no HTTP server).
 */
export interface ServiceCalls {
  /**
   * POST /<path> of a service with a JSON body (answered now when an in-process route answers
   * synchronously); rejects with InternalHttpError when it cannot be reached.
   */
  readonly post: (service: ServiceName, path: string, body: object) => Soon<InternalResponse>
  /** The token server's GET /validate for a token; the same rejection. */
  readonly validate: (token: string) => Promise<InternalResponse>
  /**
   * Subscribes to the tokens the token server issues, when it runs in this process; false when
   * it does not (over HTTP nobody tells the gateway: its cache bound is tokenCacheMs).
   */
  readonly onIssued: (listener: (token: string) => void) => boolean
}

/** A part serving in this process, as its HTTP routes would answer (without the socket). */
export interface LocalService {
  /** The answer of POST `path` (now, when it can be had without waiting), or undefined when the service has no such route. */
  readonly post: (path: string, body: unknown) => Answer | Promise<Answer> | undefined
  /** GET /validate (the token server only). */
  readonly validate?: (token: string) => Promise<Answer>
  /** The token server only: `listener` is told of every token it issues from now on (each revokes its player's older ones). */
  readonly onIssued?: (listener: (token: string) => void) => void
}

/**
 * The parts serving in this process. Every part registers itself here when it starts, so a
 * gateway composed with its managers in one process (npm start, the default bench stack) can
 * call them in-process; a part alone in its process finds nobody here and uses HTTP.
 */
export class ColocatedServices extends Context.Tag("switchboard/aliya/ColocatedServices")<
  ColocatedServices,
  Map<ServiceName, LocalService>
>() {}

/** One registry per process: every program layer provides this same value, so a merged stack shares it. */
export const ColocatedServicesLive = Layer.sync(ColocatedServices, () => new Map<ServiceName, LocalService>())

/** aliya.gateway.calls: "auto" = in-process for parts running in this process, HTTP for the others; "http" = always HTTP. */
export type CallsMode = "auto" | "http"

/** Calls over internal HTTP with the service token. */
export const httpServiceCalls = (options: {
  readonly http: Context.Tag.Service<InternalHttp>
  /** Where each service listens (a caller lists the ones it asks). */
  readonly urls: Partial<Record<ServiceName, string>>
  readonly serviceToken: Redacted.Redacted<string>
}): ServiceCalls => {
  // The callee learns how long we wait, so it can refuse work we would abandon (HashQueue).
  const headers = {
    [SERVICE_HEADER]: Redacted.value(options.serviceToken),
    [WAIT_HEADER]: String(INTERNAL_TIMEOUT_MILLIS),
    "content-type": "application/json"
  }
  const validateUrl = `${options.urls.tokens}/validate`
  return {
    post: (service, path, body) =>
      options.http.send(`${options.urls[service]}/${path}`, { method: "POST", headers, body: JSON.stringify(body) }),
    validate: (token) => options.http.send(validateUrl, { method: "GET", headers: { authorization: token } }),
    onIssued: () => false
  }
}

const asResponse = (answer: Answer): InternalResponse => ({ status: answer.httpStatus, body: answer.body })
const notServed = (service: string, what: string) =>
  Promise.reject(new InternalHttpError({ url: `in-process:${service}/${what}`, message: "not served here" }))

/** Calls straight into the parts registered in `local` (a service that is not there rejects, as a refused connection). */
export const inProcessServiceCalls = (local: Map<ServiceName, LocalService>): ServiceCalls => ({
  post: (service, path, body) => {
    const answer = local.get(service)?.post(`/${path}`, body)
    if (answer === undefined) return notServed(service, path)
    return answer instanceof Promise ? answer.then(asResponse) : asResponse(answer)
  },
  validate: (token) => {
    const validate = local.get("tokens")?.validate
    return validate ? validate(token).then(asResponse) : notServed("tokens", "validate")
  },
  onIssued: (listener) => {
    const onIssued = local.get("tokens")?.onIssued
    onIssued?.(listener)
    return onIssued !== undefined
  }
})

/**
 * The gateway's calls for a mode: "auto" asks a part in-process when it is registered in this
 * process (looked up per call, since parts start in any order) and over HTTP otherwise.
 */
export const serviceCallsFor = (
  mode: CallsMode,
  http: ServiceCalls,
  local: Option.Option<Map<ServiceName, LocalService>>
): ServiceCalls => {
  if (mode === "http" || Option.isNone(local)) return http
  const parts = local.value
  const inProcess = inProcessServiceCalls(parts)
  return {
    post: (service, path, body) =>
      parts.has(service) ? inProcess.post(service, path, body) : http.post(service, path, body),
    validate: (token) => (parts.get("tokens")?.validate ? inProcess.validate(token) : http.validate(token)),
    onIssued: inProcess.onIssued
  }
}
