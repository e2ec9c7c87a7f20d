import { describe, expect } from "bun:test"
import { generateKeyPairSync } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Exit, Fiber, Option, Redacted, Scope, TestClock } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { startAuthenticator } from "../../src/droneengage/Authenticator.ts"
import { startRelay } from "../../src/droneengage/Relay.ts"
import { signChallenge } from "../../src/droneengage/S2S.ts"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { eventually, it, settle } from "../support/effect.ts"
import { connectWs } from "../support/WsClient.ts"
import { authenticatorConfig, connectUnit, login, post, relayConfig, relayLayer, seedAccounts, startStack, TestServices } from "./harness.ts"

const info = (serverId: string) =>
  JSON.stringify({
    c: "a",
    d: { isOnline: true, version: "x", serverId, public_host: "127.0.0.1", serverPort: 1, accounts: [], accountDetails: {} }
  })

describe("DroneEngage server-to-server link", () => {
  it.live("a relay without credentials is refused with 4401, logged and counted; logins find no server", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const auth = yield* startAuthenticator(authenticatorConfig())
      const rogue = yield* connectWs(`ws://127.0.0.1:${auth.s2s.port}/`)
      const challenge = yield* rogue.nextJson()
      expect(challenge.s2s_auth).toBe("challenge")
      expect(challenge.nonce).toMatch(/^[0-9a-f]{64}$/)
      yield* rogue.send(info("rogue"))
      expect((yield* rogue.closed).code).toBe(CloseCodes.unauthorized)
      expect(auth.commServers.status()).toEqual([])
      expect((yield* post(`${auth.http.url}/w/wl`, { acc: "alpha", pwd: "alpha-code" })).body.e).toBe(5)
      const text = yield* (yield* Metrics).render
      expect(text).toContain('switchboard_de_s2s_refused_total{server="authenticator",reason="credentials"} 1')
    }).pipe(Effect.provide(TestServices)))

  it.live("a wrong signature is refused; the right one is accepted", () =>
    Effect.gen(function* () {
      const auth = yield* startAuthenticator(authenticatorConfig())
      const forger = yield* connectWs(`ws://127.0.0.1:${auth.s2s.port}/`)
      const { nonce } = yield* forger.nextJson()
      const wrong = yield* Effect.promise(() => signChallenge("not the shared secret!!", "relay-x", nonce))
      yield* forger.send(JSON.stringify({ s2s_auth: "response", id: "relay-x", sig: wrong }))
      expect((yield* forger.closed).code).toBe(CloseCodes.unauthorized)
      const honest = yield* connectWs(`ws://127.0.0.1:${auth.s2s.port}/`)
      const second = yield* honest.nextJson()
      const sig = yield* Effect.promise(() => signChallenge("test shared secret 0123456789", "relay-y", second.nonce))
      yield* honest.send(JSON.stringify({ s2s_auth: "response", id: "relay-y", sig }))
      expect(yield* honest.nextJson()).toEqual({ s2s_auth: "ok" })
      yield* honest.send(info("relay-y"))
      yield* eventually(() => auth.commServers.status().some((s) => s.serverId === "relay-y" && s.online), "relay-y online")
    }).pipe(Effect.provide(TestServices)))

  it.effect("a relay that never answers the challenge is dropped after 8 s with 4005 (TestClock)", () =>
    Effect.gen(function* () {
      const auth = yield* startAuthenticator(authenticatorConfig())
      const mute = yield* connectWs(`ws://127.0.0.1:${auth.s2s.port}/`)
      yield* mute.nextJson()
      yield* TestClock.adjust("8 seconds")
      expect((yield* mute.closed).code).toBe(CloseCodes.handshakeTimeout)
    }).pipe(Effect.provide(TestServices)))

  it.live("a relay with the wrong secret never links", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const auth = yield* startAuthenticator(authenticatorConfig())
      yield* startRelay(relayConfig(auth.s2s.port, { s2sSecret: Option.some(Redacted.make("a different secret, 16+ chars")) })).pipe(
        Effect.provide(relayLayer)
      )
      yield* settle(300)
      expect(auth.commServers.status()).toEqual([])
      expect((yield* post(`${auth.http.url}/w/wl`, { acc: "alpha", pwd: "alpha-code" })).body.e).toBe(5)
    }).pipe(Effect.provide(TestServices)))

  it.live("Ed25519 as in the newer originals: a relay signing with a trusted key links, another key is refused", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const dir = mkdtempSync(join(tmpdir(), "de-ed25519-"))
      const write = (name: string) => {
        const pair = generateKeyPairSync("ed25519")
        writeFileSync(join(dir, `${name}.pub.pem`), pair.publicKey.export({ type: "spki", format: "pem" }))
        writeFileSync(join(dir, `${name}.pem`), pair.privateKey.export({ type: "pkcs8", format: "pem" }))
        return { publicPath: join(dir, `${name}.pub.pem`), privatePath: join(dir, `${name}.pem`) }
      }
      const trusted = write("trusted")
      const stranger = write("stranger")
      const auth = yield* startAuthenticator(
        authenticatorConfig({ s2sSecret: Option.none(), s2sTrustedKeys: new Map([["relay-ed", trusted.publicPath]]) })
      )
      const relayWith = (privatePath: string, serverId: string) =>
        startRelay(relayConfig(auth.s2s.port, { serverId, s2sSecret: Option.none(), s2sPrivateKeyPath: Option.some(privatePath) })).pipe(Effect.provide(relayLayer))
      yield* relayWith(stranger.privatePath, "relay-ed")
      yield* settle(200)
      expect(auth.commServers.status()).toEqual([])
      const relay = yield* relayWith(trusted.privatePath, "relay-ed")
      yield* eventually(() => auth.commServers.status().some((s) => s.serverId === "relay-ed" && s.online), "trusted relay linked")
      const stack = { authUrl: auth.http.url, authenticator: auth, relay }
      expect((yield* login(stack, "alpha", "g")).body.cs.h).toBe(relay.server.port)
    }).pipe(Effect.provide(TestServices)))

  it.live("INSECURE compat flag (off by default) admits an original relay that skips the challenge", () =>
    Effect.gen(function* () {
      const auth = yield* startAuthenticator(authenticatorConfig({ allowUnauthenticatedServers: true, s2sSecret: Option.none() }))
      const legacy = yield* connectWs(`ws://127.0.0.1:${auth.s2s.port}/`)
      expect(yield* legacy.nextJson()).toEqual({ s2s_auth: "ok" })
      yield* legacy.send(info("legacy"))
      yield* eventually(() => auth.commServers.status().some((s) => s.serverId === "legacy"), "legacy relay admitted")
    }).pipe(Effect.provide(TestServices)))

  it.effect("the S2S link answers the authenticator's heartbeat and stays up (TestClock)", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("25 seconds")
        yield* settle(100) // the relay's pong travels over the real socket
        yield* TestClock.adjust("10 seconds")
      }
      yield* settle(50)
      expect(stack.relay.link.isUp()).toBe(true)
      expect(stack.authenticator.commServers.status()).toHaveLength(1)
    }).pipe(Effect.provide(TestServices)))

  it.live("INFO follows every join and leave; a unit's disconnect ends exactly its session (LOGOUT matches)", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const units = () => stack.authenticator.commServers.status()[0]?.units
      const drone = yield* connectUnit(stack, "alpha", "d", "drone")
      const gcs = yield* connectUnit(stack, "alpha", "g", "web")
      yield* eventually(() => units() === 2, "INFO with two units")
      const hardware = (sid: string) => post(`${stack.authUrl}/agent/ah`, { scm: "vh", sid, hi: "hw-1", ht: "px4" })
      expect((yield* hardware(drone.sid)).body.e).toBe(0)
      yield* drone.close()
      yield* eventually(() => units() === 1, "INFO with one unit")
      yield* eventually(() => stack.authenticator.sessions.size() === 1, "the drone's session ended")
      expect((yield* hardware(drone.sid)).body.e).toBe(7)
      expect((yield* hardware(gcs.sid)).body.e).toBe(0)
    }).pipe(Effect.provide(TestServices)))

  it.live("logins go to the relay already hosting the account, else to the least loaded one", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const other = yield* startRelay(relayConfig(stack.authenticator.s2s.port, { serverId: "relay-b" })).pipe(
        Effect.provide(relayLayer)
      )
      yield* eventually(() => stack.authenticator.commServers.status().filter((s) => s.online).length === 2, "two relays linked")
      const first = (yield* login(stack, "alpha", "g")).body
      const firstPort = first.cs.h
      yield* connectWs(`ws://127.0.0.1:${firstPort}/?f=${first.cs.f}&s=web`)
      const hosting = firstPort === other.server.port ? "relay-b" : "relay-test"
      yield* eventually(() => stack.authenticator.commServers.status().find((s) => s.serverId === hosting)?.accounts === 1, "INFO shows alpha")
      expect((yield* login(stack, "alpha", "d")).body.cs.h).toBe(firstPort)
      const beta = (yield* login(stack, "beta", "g")).body
      expect(beta.cs.h).not.toBe(firstPort)
      expect([stack.relay.server.port, other.server.port]).toContain(beta.cs.h)
    }).pipe(Effect.provide(TestServices)))

  it.effect("a relay that does not answer LOGIN within 15 s gives e 5 (TestClock)", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const auth = yield* startAuthenticator(authenticatorConfig())
      const lazy = yield* connectWs(`ws://127.0.0.1:${auth.s2s.port}/`)
      const { nonce } = yield* lazy.nextJson()
      const sig = yield* Effect.promise(() => signChallenge("test shared secret 0123456789", "lazy", nonce))
      yield* lazy.send(JSON.stringify({ s2s_auth: "response", id: "lazy", sig }))
      yield* lazy.nextJson()
      yield* lazy.send(info("lazy"))
      yield* eventually(() => auth.commServers.status().length === 1, "lazy relay linked")
      const pending = yield* Effect.fork(post(`${auth.http.url}/w/wl`, { acc: "alpha", pwd: "alpha-code" }))
      expect((yield* lazy.nextJson()).c).toBe("b")
      yield* settle(20)
      yield* TestClock.adjust("15 seconds")
      const reply = yield* Fiber.join(pending)
      expect(reply.body).toEqual({ e: 5, em: "No available Server", cm: "/wl" })
    }).pipe(Effect.provide(TestServices)))

  it.live("relay restart: the new relay links again and sends INFO; logins work again", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const auth = yield* startAuthenticator(authenticatorConfig())
      const first = yield* Scope.make()
      yield* startRelay(relayConfig(auth.s2s.port)).pipe(Effect.provide(relayLayer), Scope.extend(first))
      yield* eventually(() => auth.commServers.status().length === 1, "first relay linked")
      yield* Scope.close(first, Exit.void)
      yield* eventually(() => auth.commServers.status().length === 0, "first relay gone")
      expect((yield* post(`${auth.http.url}/w/wl`, { acc: "alpha", pwd: "alpha-code" })).body.e).toBe(5)
      const relay = yield* startRelay(relayConfig(auth.s2s.port)).pipe(Effect.provide(relayLayer))
      yield* eventually(() => auth.commServers.status().some((s) => s.online), "second relay linked with INFO")
      const stack = { authUrl: auth.http.url, authenticator: auth, relay }
      expect((yield* login(stack, "alpha", "g")).body.cs.h).toBe(relay.server.port)
    }).pipe(Effect.provide(TestServices)))

  it.live("authenticator restart: the relay re-dials, re-authenticates and sends INFO with its units", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const firstScope = yield* Scope.make()
      const first = yield* startAuthenticator(authenticatorConfig()).pipe(Scope.extend(firstScope))
      const s2sPort = first.s2s.port
      const relay = yield* startRelay(relayConfig(s2sPort)).pipe(Effect.provide(relayLayer))
      yield* eventually(() => relay.link.isUp(), "link up")
      const stack = { authUrl: first.http.url, authenticator: first, relay }
      const gcs = yield* connectUnit(stack, "alpha", "g", "web")
      yield* Scope.close(firstScope, Exit.void)
      yield* eventually(() => !relay.link.isUp(), "link down")
      const second = yield* startAuthenticator(authenticatorConfig({ s2sPort }))
      yield* eventually(() => second.commServers.status()[0]?.units === 1, "INFO with the surviving unit", 600)
      // The unit never noticed.
      yield* gcs.send(JSON.stringify({ ty: "s", mt: 9005, ms: {} }))
      expect((yield* gcs.nextJson()).ms.s).toBe("OK:pong")
    }).pipe(Effect.provide(TestServices)))
})
