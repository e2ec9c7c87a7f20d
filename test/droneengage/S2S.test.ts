import { describe, expect } from "bun:test"
import { generateKeyPairSync } from "node:crypto"
import { Effect, Exit, Fiber, Layer, Option, Queue, Redacted, Scope, TestClock } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { AccountStore } from "../../layers/Storage/AccountStore.ts"
import { cacheAuthentications } from "../../layers/Storage/CachedAccountStore.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import { Tokens } from "../../layers/Tokens/Tokens.ts"
import { startAuthenticator } from "../../src/droneengage/Authenticator.ts"
import type { CommServerEvent } from "../../src/droneengage/CommServers.ts"
import { startRelay } from "../../src/droneengage/Relay.ts"
import { signChallenge } from "../../src/droneengage/S2S.ts"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { it } from "../support/effect.ts"
import {
  advanceUntil,
  authenticatorConfig,
  connect,
  connectUnit,
  login,
  memoryFiles,
  pingPong,
  post,
  relayConfig,
  relayLayer,
  relayOnline,
  seedAccounts,
  startStack,
  TestServices
} from "./harness.ts"

/** Logins, LOGOUT and sessions on the spot (memory tokens), and through Effects (a store without the `Now` calls). */
const tokenStores = [
  ["memory tokens", MemoryTokensLive],
  [
    "a store answering only through Effects",
    Layer.effect(
      Tokens,
      Effect.map(Tokens, ({ issueNow: _i, takeNow: _t, revokeIndexedNow: _r, ...effectsOnly }) => effectsOnly)
    ).pipe(Layer.provide(MemoryTokensLive))
  ]
] as const

/** The credential cache over the test accounts, counting the logins it answers on the spot. */
const hits = { count: 0 }
const countedCache = Layer.effect(
  AccountStore,
  Effect.gen(function* () {
    hits.count = 0
    const cached = yield* cacheAuthentications(yield* AccountStore, { ttl: "1 minute" })
    const now = cached.authenticateNow!
    return {
      ...cached,
      authenticateNow: (name: string, code: string) => {
        const found = now(name, code)
        if (found !== undefined) hits.count++
        return found
      }
    }
  })
).pipe(Layer.provide(TestServices))

const info = (serverId: string) =>
  JSON.stringify({
    c: "a",
    d: {
      isOnline: true,
      version: "x",
      serverId,
      public_host: "127.0.0.1",
      serverPort: 1,
      accounts: [],
      accountDetails: {}
    }
  })

/** The next event of a kind from an authenticator's event feed. */
const nextEvent = <T extends CommServerEvent["_tag"]>(events: Queue.Dequeue<CommServerEvent>, tag: T) =>
  Effect.gen(function* () {
    while (true) {
      const event = yield* Queue.take(events)
      if (event._tag === tag) return event as Extract<CommServerEvent, { _tag: T }>
    }
  })

describe("DroneEngage server-to-server link (memory transport, TestClock)", () => {
  it.effect("a relay without credentials is refused with 4401, logged and counted; logins find no server", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const auth = yield* startAuthenticator(authenticatorConfig())
      const rogue = yield* connect(auth.s2s.port, "/")
      const challenge = yield* rogue.nextJson()
      expect(challenge.s2s_auth).toBe("challenge")
      expect(challenge.nonce).toMatch(/^[0-9a-f]{64}$/)
      yield* rogue.send(info("rogue"))
      expect((yield* rogue.closed).code).toBe(CloseCodes.unauthorized)
      expect(auth.commServers.status()).toEqual([])
      expect((yield* post(`${auth.http.url}/w/wl`, { acc: "alpha", pwd: "alpha-code" })).body.e).toBe(5)
      const text = yield* (yield* Metrics).render
      expect(text).toContain('switchboard_de_s2s_refused_total{server="authenticator",reason="credentials"} 1')
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("a wrong signature is refused; the right one is accepted", () =>
    Effect.gen(function* () {
      const auth = yield* startAuthenticator(authenticatorConfig())
      const forger = yield* connect(auth.s2s.port, "/")
      const { nonce } = yield* forger.nextJson()
      const wrong = yield* Effect.promise(() => signChallenge("not the shared secret!!", "relay-x", nonce))
      yield* forger.send(JSON.stringify({ s2s_auth: "response", id: "relay-x", sig: wrong }))
      expect((yield* forger.closed).code).toBe(CloseCodes.unauthorized)
      const honest = yield* connect(auth.s2s.port, "/")
      const second = yield* honest.nextJson()
      const sig = yield* Effect.promise(() => signChallenge("test shared secret 0123456789", "relay-y", second.nonce))
      yield* honest.send(JSON.stringify({ s2s_auth: "response", id: "relay-y", sig }))
      expect(yield* honest.nextJson()).toEqual({ s2s_auth: "ok" })
      yield* honest.send(info("relay-y"))
      yield* relayOnline(auth, "relay-y")
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("a relay that never answers the challenge is dropped after 8 s with 4005 (TestClock)", () =>
    Effect.gen(function* () {
      const auth = yield* startAuthenticator(authenticatorConfig())
      const mute = yield* connect(auth.s2s.port, "/")
      yield* mute.nextJson()
      yield* TestClock.adjust("8 seconds")
      expect((yield* mute.closed).code).toBe(CloseCodes.handshakeTimeout)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect(
    "a relay with the wrong secret never links: the authenticator refuses it with 4401 and its link stays down",
    () =>
      Effect.gen(function* () {
        yield* seedAccounts
        const auth = yield* startAuthenticator(authenticatorConfig())
        const events = yield* auth.commServers.events
        const relay = yield* startRelay(
          relayConfig(auth.s2s.port, { s2sSecret: Option.some(Redacted.make("a different secret, 16+ chars")) })
        ).pipe(Effect.provide(relayLayer))
        expect((yield* nextEvent(events, "Refused")).code).toBe(CloseCodes.unauthorized)
        expect(relay.link.isUp()).toBe(false)
        expect(auth.commServers.status()).toEqual([])
        expect((yield* post(`${auth.http.url}/w/wl`, { acc: "alpha", pwd: "alpha-code" })).body.e).toBe(5)
        // It tries again after its backoff and is refused again: never linked in between.
        yield* advanceUntil(nextEvent(events, "Refused"))
        expect(auth.commServers.status()).toEqual([])
      }).pipe(Effect.provide(TestServices))
  )

  it.effect("Ed25519 as in the newer originals: a relay signing with a trusted key links, another key is refused", () =>
    Effect.gen(function* () {
      const pem = () => {
        const pair = generateKeyPairSync("ed25519")
        return {
          publicPem: String(pair.publicKey.export({ type: "spki", format: "pem" })),
          privatePem: String(pair.privateKey.export({ type: "pkcs8", format: "pem" }))
        }
      }
      const trusted = pem()
      const stranger = pem()
      const files = new Map([
        ["/keys/trusted.pub.pem", trusted.publicPem],
        ["/keys/trusted.pem", trusted.privatePem],
        ["/keys/stranger.pem", stranger.privatePem]
      ])
      const run = Effect.gen(function* () {
        yield* seedAccounts
        const auth = yield* startAuthenticator(
          authenticatorConfig({
            s2sSecret: Option.none(),
            s2sTrustedKeys: new Map([["relay-ed", "/keys/trusted.pub.pem"]])
          })
        )
        const events = yield* auth.commServers.events
        const relayWith = (privatePath: string, serverId: string) =>
          startRelay(
            relayConfig(auth.s2s.port, {
              serverId,
              s2sSecret: Option.none(),
              s2sPrivateKeyPath: Option.some(privatePath)
            })
          ).pipe(Effect.provide(relayLayer))
        const strangerScope = yield* Scope.make()
        yield* relayWith("/keys/stranger.pem", "relay-ed").pipe(Scope.extend(strangerScope))
        expect((yield* nextEvent(events, "Refused")).code).toBe(CloseCodes.unauthorized)
        yield* Scope.close(strangerScope, Exit.void)
        expect(auth.commServers.status()).toEqual([])
        const relay = yield* relayWith("/keys/trusted.pem", "relay-ed")
        yield* relayOnline(auth, "relay-ed")
        const stack = { authUrl: auth.http.url, authenticator: auth, relay }
        expect((yield* login(stack, "alpha", "g")).body.cs.h).toBe(relay.server.port)
        // A missing key file stops the relay with one line naming it.
        const missing = yield* Effect.either(relayWith("/keys/nowhere.pem", "relay-x"))
        expect(missing._tag === "Left" && missing.left).toMatchObject({
          message: "cannot read the relay's S2S private key at /keys/nowhere.pem"
        })
      })
      yield* run.pipe(Effect.provide(Layer.merge(TestServices, memoryFiles(files))))
    })
  )

  it.effect("INSECURE compat flag (off by default) admits an original relay that skips the challenge", () =>
    Effect.gen(function* () {
      const auth = yield* startAuthenticator(
        authenticatorConfig({ allowUnauthenticatedServers: true, s2sSecret: Option.none() })
      )
      const legacy = yield* connect(auth.s2s.port, "/")
      expect(yield* legacy.nextJson()).toEqual({ s2s_auth: "ok" })
      yield* legacy.send(info("legacy"))
      yield* auth.commServers.awaitStatus((status) => status.some((s) => s.serverId === "legacy"))
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("the S2S link answers the authenticator's heartbeat and stays up (TestClock)", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("25 seconds")
        // A login crosses the S2S link both ways: the relay's pong to the heartbeat went out before it.
        expect((yield* login(stack, "alpha", "g")).body.e).toBe(0)
        yield* TestClock.adjust("10 seconds")
      }
      expect((yield* login(stack, "alpha", "g")).body.e).toBe(0)
      expect(stack.relay.link.isUp()).toBe(true)
      expect(stack.authenticator.commServers.status()).toHaveLength(1)
    }).pipe(Effect.provide(TestServices))
  )

  for (const [store, tokens] of tokenStores)
    it.effect(
      `INFO follows every join and leave; a unit's disconnect ends exactly its session (LOGOUT matches), ${store}`,
      () =>
        Effect.gen(function* () {
          yield* seedAccounts
          const stack = yield* startStack()
          const units = (n: number) => stack.authenticator.commServers.awaitStatus((status) => status[0]?.units === n)
          const drone = yield* connectUnit(stack, "alpha", "d", "drone")
          const gcs = yield* connectUnit(stack, "alpha", "g", "web")
          yield* units(2)
          const hardware = (sid: string) => post(`${stack.authUrl}/agent/ah`, { scm: "vh", sid, hi: "hw-1", ht: "px4" })
          expect((yield* hardware(drone.sid)).body.e).toBe(0)
          yield* drone.close()
          // LOGOUT goes out before the INFO that the leave causes, so this INFO proves the session ended.
          yield* units(1)
          expect(yield* stack.authenticator.sessions.count).toBe(1)
          expect((yield* hardware(drone.sid)).body.e).toBe(7)
          expect((yield* hardware(gcs.sid)).body.e).toBe(0)
        }).pipe(Effect.provide(Layer.merge(TestServices, tokens)))
    )

  it.effect("logins go to the relay already hosting the account, else to the least loaded one", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const other = yield* startRelay(relayConfig(stack.authenticator.s2s.port, { serverId: "relay-b" })).pipe(
        Effect.provide(relayLayer)
      )
      yield* relayOnline(stack.authenticator, "relay-b")
      const first = (yield* login(stack, "alpha", "g")).body
      const firstPort = first.cs.h
      const web = yield* connect(firstPort, `/?f=${first.cs.f}&s=web`)
      yield* web.next() // welcome
      const hosting = firstPort === other.server.port ? "relay-b" : "relay-test"
      yield* stack.authenticator.commServers.awaitStatus(
        (status) => status.find((s) => s.serverId === hosting)?.accounts === 1
      )
      expect((yield* login(stack, "alpha", "d")).body.cs.h).toBe(firstPort)
      const beta = (yield* login(stack, "beta", "g")).body
      expect(beta.cs.h).not.toBe(firstPort)
      expect([stack.relay.server.port, other.server.port]).toContain(beta.cs.h)
    }).pipe(Effect.provide(TestServices))
  )

  /** An authenticator with one linked relay ("lazy") that reads LOGINs and never answers them. */
  const linkLazyRelay = Effect.gen(function* () {
    yield* seedAccounts
    const auth = yield* startAuthenticator(authenticatorConfig())
    const lazy = yield* connect(auth.s2s.port, "/")
    const { nonce } = yield* lazy.nextJson()
    const sig = yield* Effect.promise(() => signChallenge("test shared secret 0123456789", "lazy", nonce))
    yield* lazy.send(JSON.stringify({ s2s_auth: "response", id: "lazy", sig }))
    yield* lazy.nextJson()
    yield* lazy.send(info("lazy"))
    yield* relayOnline(auth, "lazy")
    return { auth, lazy }
  })

  it.effect("a relay that never answers LOGIN: the login answers e 5 after 15 s (TestClock)", () =>
    Effect.gen(function* () {
      const { auth, lazy } = yield* linkLazyRelay
      const pending = yield* Effect.fork(post(`${auth.http.url}/w/wl`, { acc: "alpha", pwd: "alpha-code" }))
      expect((yield* lazy.nextJson()).c).toBe("b")
      // One sweep a second fails unanswered LOGINs: not before the 15 s, by the sweep at 15 s.
      yield* TestClock.adjust("14 seconds")
      expect(Option.isNone(yield* Fiber.poll(pending))).toBe(true)
      yield* TestClock.adjust("1 second")
      const reply = yield* Fiber.join(pending)
      expect(reply.body).toEqual({ e: 5, em: "No available Server", cm: "/wl" })
    }).pipe(Effect.provide(TestServices))
  )

  it.effect(
    "a login placed on the spot (cached credentials) fails by the sweep, or at once when the relay leaves",
    () =>
      Effect.gen(function* () {
        const { auth, lazy } = yield* linkLazyRelay
        const loginNow = () => Effect.fork(post(`${auth.http.url}/w/wl`, { acc: "alpha", pwd: "alpha-code" }))
        const noServer = { e: 5, em: "No available Server", cm: "/wl" }
        // The first login verifies the code (the Effect path) and caches it; it too waits for the sweep.
        const first = yield* loginNow()
        expect((yield* lazy.nextJson()).c).toBe("b")
        yield* TestClock.adjust("15 seconds")
        expect((yield* Fiber.join(first)).body).toEqual(noServer)
        expect(hits.count).toBe(0)
        // Now the cache answers on the spot: LOGIN goes out with no fiber, and the sweep fails it just the same.
        const second = yield* loginNow()
        expect((yield* lazy.nextJson()).c).toBe("b")
        expect(hits.count).toBe(1)
        yield* TestClock.adjust("14 seconds")
        expect(Option.isNone(yield* Fiber.poll(second))).toBe(true)
        yield* TestClock.adjust("1 second")
        expect((yield* Fiber.join(second)).body).toEqual(noServer)
        // A relay that leaves fails its waiting logins at once.
        const third = yield* loginNow()
        expect((yield* lazy.nextJson()).c).toBe("b")
        yield* lazy.close()
        expect((yield* Fiber.join(third)).body).toEqual(noServer)
        expect(hits.count).toBe(2)
      }).pipe(Effect.provide(Layer.merge(TestServices, countedCache)))
  )

  it.effect("relay restart: the new relay links again and sends INFO; logins work again", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const auth = yield* startAuthenticator(authenticatorConfig())
      const first = yield* Scope.make()
      yield* startRelay(relayConfig(auth.s2s.port)).pipe(Effect.provide(relayLayer), Scope.extend(first))
      yield* relayOnline(auth)
      yield* Scope.close(first, Exit.void)
      yield* auth.commServers.awaitStatus((status) => status.length === 0)
      expect((yield* post(`${auth.http.url}/w/wl`, { acc: "alpha", pwd: "alpha-code" })).body.e).toBe(5)
      const relay = yield* startRelay(relayConfig(auth.s2s.port)).pipe(Effect.provide(relayLayer))
      yield* relayOnline(auth)
      const stack = { authUrl: auth.http.url, authenticator: auth, relay }
      expect((yield* login(stack, "alpha", "g")).body.cs.h).toBe(relay.server.port)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("authenticator restart: the relay re-dials, re-authenticates and sends INFO with its units", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const firstScope = yield* Scope.make()
      const first = yield* startAuthenticator(authenticatorConfig()).pipe(Scope.extend(firstScope))
      const s2sPort = first.s2s.port
      const relay = yield* startRelay(relayConfig(s2sPort)).pipe(Effect.provide(relayLayer))
      yield* relay.link.awaitUp(true)
      const stack = { authUrl: first.http.url, authenticator: first, relay }
      const gcs = yield* connectUnit(stack, "alpha", "g", "web")
      yield* Scope.close(firstScope, Exit.void)
      yield* relay.link.awaitUp(false)
      const second = yield* startAuthenticator(authenticatorConfig({ s2sPort }))
      // The re-dial waits out its backoff on the TestClock.
      yield* advanceUntil(second.commServers.awaitStatus((status) => status[0]?.units === 1))
      // The unit never noticed.
      yield* pingPong(gcs)
    }).pipe(Effect.provide(TestServices))
  )
})
