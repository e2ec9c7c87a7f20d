import { describe, expect } from "bun:test"
import { Duration, Effect, Layer } from "effect"
import { AccountStore } from "../../layers/Storage/AccountStore.ts"
import { CachedAccountStore } from "../../layers/Storage/CachedAccountStore.ts"
import { type ServeOptions, Transport } from "../../layers/Transport/Transport.ts"
import { it } from "../support/effect.ts"
import { rawHttp } from "../support/RawHttp.ts"
import * as Memory from "./harness.ts"
import * as Real from "./realSockets.ts"

/**
 * The login endpoints are served twice: by the transport's native routes (the hot path) and by the HTTP app
 * (transports without routes). Every request here goes through both, on one authenticator: the Transport is
 * wrapped so the API listener gets a twin without `routes`, and the answers must be the same, status,
 * headers and body, apart from the session id and key, which are random (same length).
 */

/** The HTTP-app twin of each listener served with routes: its port by the port of the one with routes. */
const twinned = (twins: Map<number, number>) =>
  Layer.effect(
    Transport,
    Effect.map(Transport, (inner) => ({
      serve: <D, R>(options: ServeOptions<D, R>) =>
        Effect.gen(function* () {
          const handle = yield* inner.serve(options)
          const { routes, ...withoutRoutes } = options
          if (routes && routes.length > 0) {
            expect(routes.map((route) => `${route.method} ${route.path}`)).toEqual(["POST /w/wl", "POST /agent/al"])
            const twin = yield* inner.serve({ ...withoutRoutes, name: `${options.name}-app`, port: 0 })
            twins.set(handle.port, twin.port)
          }
          return handle
        })
    }))
  )

/** The route's login on the spot needs cached credentials; without the cache it runs as an Effect. */
const accountStores = [
  ["account store", Memory.TestServices],
  ["cached credentials", CachedAccountStore({ ttl: "1 minute" }).pipe(Layer.provide(Memory.TestServices))]
] as const

/** Few attempts and failures, so the sequence reaches both 429s. */
const limited = { loginRateLimit: 20, loginFailureLimit: 2, loginFailureWindow: Duration.minutes(10) }

interface Sent {
  readonly path: string
  readonly body: string
  readonly contentType?: string
}

const json = (path: string, body: unknown): Sent => ({ path, body: JSON.stringify(body) })
const good = (account: string) => ({ acc: account, pwd: `${account}-code`, gr: "1", app: "t", ver: "1", ex: "x" })

/** What each path is asked, in order; the last ones spend the address's failures until it is blocked. */
const requests: ReadonlyArray<Sent> = [
  json("/w/wl", good("alpha")),
  json("/agent/al", good("alpha")),
  json("/w/wl/", good("beta")),
  json("/agent/al?via=query", { acc: 42, pwd: "alpha-code" }),
  { path: "/w/wl", body: "acc=alpha&pwd=alpha-code&gr=2", contentType: "application/x-www-form-urlencoded" },
  json("/agent/al", good("gcs-only")),
  json("/w/wl", good("agent-only")),
  { path: "/w/wl", body: "{not json" },
  { path: "/w/wl", body: "[1,2]" },
  { path: "/w/wl", body: "acc=x", contentType: "text/plain" },
  json("/w/wl", { acc: "alpha" }),
  json("/w/wl", { acc: "a".repeat(300), pwd: "x" }),
  json("/w/wl", { acc: "alpha", pwd: "alpha-code", gr: "" }),
  { path: "/w/wl", body: JSON.stringify({ acc: "alpha", pwd: "x".repeat(200_000) }) },
  json("/w/wl", { acc: "alpha", pwd: "wrong" }),
  json("/agent/al", { acc: "nobody", pwd: "wrong" }),
  json("/w/wl", { acc: "alpha", pwd: "wrong" }),
  json("/w/wl", good("alpha"))
]

/** Status, every header but the date, and the body with the session id and key blanked (same length). */
const normalized = (status: number, headers: ReadonlyArray<readonly [string, string]>, body: string) => ({
  status,
  headers: headers.filter(([name]) => name !== "date"),
  body: blankRandom(body)
})

/** The session id and key are random: each becomes as many "*". */
const blankRandom = (text: string) =>
  text.replace(/"(sid|f)":"([^"]*)"/g, (_, field: string, value: string) => `"${field}":"${"*".repeat(value.length)}"`)

describe("DroneEngage login: native route and HTTP app give the same answers", () => {
  for (const [accounts, store] of accountStores)
    it.effect(
      `in memory (${accounts}): status, headers and body for logins, refusals, bad bodies and both rate limits`,
      () =>
        Effect.gen(function* () {
          const twins = new Map<number, number>()
          yield* Memory.seedAccounts
          const stack = yield* Memory.startStack({ auth: limited }).pipe(Effect.provide(twinned(twins)))
          const native = stack.authenticator.http.port
          const app = twins.get(native)!
          // Each path its own address, so both see the same limits from the same start.
          const ask = (port: number, address: string, sent: Sent) =>
            Effect.gen(function* () {
              const response = yield* Memory.request(
                `http://memory:${port}${sent.path}`,
                {
                  method: "POST",
                  headers: { "content-type": sent.contentType ?? "application/json" },
                  body: sent.body
                },
                address
              )
              const body = yield* Effect.promise(() => response.text())
              return normalized(response.status, [...response.headers], body)
            })
          const statuses: Array<number> = []
          for (const sent of requests) {
            const viaRoute = yield* ask(native, "10.0.0.1", sent)
            const viaApp = yield* ask(app, "10.0.0.2", sent)
            expect(viaRoute).toEqual(viaApp)
            statuses.push(viaRoute.status)
          }
          // The sequence did reach every kind of answer: logins, refusals, 400s, the 413, then the block's 429s.
          expect(statuses).toEqual([
            200, 200, 200, 200, 200, 200, 200, 400, 400, 400, 400, 400, 400, 413, 200, 429, 429, 429
          ])
          // Out of attempts (another pair of addresses): the attempts' 429 with its retry-after.
          const attempts: Array<number> = []
          for (let i = 0; i <= limited.loginRateLimit; i++) {
            const sent = { path: "/w/wl", body: "{not json" }
            const viaRoute = yield* ask(native, "10.0.1.1", sent)
            expect(viaRoute).toEqual(yield* ask(app, "10.0.1.2", sent))
            attempts.push(viaRoute.status)
          }
          expect(attempts.at(-2)).toBe(400)
          expect(attempts.at(-1)).toBe(429)
        }).pipe(Effect.provide(Layer.merge(Memory.TestServices, store)))
    )

  it.effect("a login that fails inside answers 500 with a short JSON error and the CORS header, on both paths", () =>
    Effect.gen(function* () {
      const twins = new Map<number, number>()
      yield* Memory.seedAccounts
      const stack = yield* Memory.startStack().pipe(Effect.provide(twinned(twins)))
      const native = stack.authenticator.http.port
      for (const port of [native, twins.get(native)!]) {
        const response = yield* Memory.request(`http://memory:${port}/w/wl`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(good("alpha"))
        })
        expect(response.status).toBe(500)
        expect(response.headers.get("access-control-allow-origin")).toBe("*")
        expect(yield* Effect.promise(() => response.json())).toEqual({ e: 999, em: "Internal error.", cm: "/wl" })
      }
    }).pipe(
      // The account store dies on a credential check: a bug, not a storage error the login knows how to answer.
      Effect.provide(
        Layer.effect(
          AccountStore,
          Effect.map(AccountStore, (store) => ({
            ...store,
            authenticate: () => Effect.dieMessage("account store bug"),
            authenticateNow: undefined
          }))
        ).pipe(Layer.provideMerge(Memory.TestServices))
      )
    )
  )

  it.live("over real sockets: the same bytes on the wire (Bun.serve routes against the HTTP app)", () =>
    Effect.gen(function* () {
      const twins = new Map<number, number>()
      yield* Real.seedAccounts
      const stack = yield* Real.startStack().pipe(Effect.provide(twinned(twins)))
      const native = stack.authenticator.http.port
      const app = twins.get(native)!
      for (const sent of requests.slice(0, 13)) {
        const [viaRoute, viaApp] = yield* Effect.promise(() => Promise.all([raw(native, sent), raw(app, sent)]))
        expect(viaRoute).toEqual(viaApp)
        expect(viaRoute.startsWith("HTTP/1.1 ")).toBe(true)
      }
    }).pipe(Effect.provide(Real.TestServices))
  )
})

/** One request over a raw socket; the whole response as bytes read, with the date and random fields blanked. */
const raw = async (port: number, sent: Sent) => {
  const body = Buffer.from(sent.body)
  const received = await rawHttp(
    port,
    `POST ${sent.path} HTTP/1.1\r\ncontent-type: ${sent.contentType ?? "application/json"}\r\ncontent-length: ${body.byteLength}`,
    body
  )
  return blankRandom(received.replace(/\r\nDate: [^\r]*/i, "\r\nDate: -"))
}
