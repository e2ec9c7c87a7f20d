import { describe, expect } from "bun:test"
import { Effect, TestClock } from "effect"
import { MemoryNetwork } from "../../layers/Transport/MemoryTransport.ts"
import { saveAccount } from "../../src/aliya/Admin.ts"
import { makeValidatedTokens } from "../../src/aliya/ValidatedTokens.ts"
import { it } from "../support/effect.ts"
import { aliyaTestLayer, startStack, testPasswordCost } from "./support.ts"

/** An unsigned token shape: the cache reads only the claims of tokens the token server already accepted. */
const tokenOf = (uniqueId: string, exp: number, jti: string) =>
  `h.${Buffer.from(JSON.stringify({ unique_id: uniqueId, jti, exp })).toString("base64url")}.s`

describe("aliya gateway's accepted-token cache", () => {
  it.effect("trusts an accepted token for the ttl and never past its exp; forgets older tokens on a login", () =>
    Effect.sync(() => {
      const cache = makeValidatedTokens({ ttlMillis: 1000, maxEntries: 10 })
      const a = tokenOf("p", 100, "1")
      cache.remember(a, "p", 10_000)
      expect(cache.lookup(a, 10_999)).toBe("p")
      expect(cache.lookup(a, 11_000)).toBeUndefined()
      // exp (seconds) comes first when it is sooner than the ttl.
      cache.remember(a, "p", 99_500)
      expect(cache.lookup(a, 99_999)).toBe("p")
      expect(cache.lookup(a, 100_000)).toBeUndefined()
      // A token whose claims name another player is not remembered.
      cache.remember(tokenOf("q", 100, "2"), "p", 10_000)
      expect(cache.size()).toBe(0)
      const b = tokenOf("p", 200, "3")
      cache.remember(a, "p", 20_000)
      cache.issued(b)
      expect(cache.lookup(a, 20_001)).toBeUndefined()
    })
  )

  it.effect("is bounded (the oldest entry makes room) and remembers nothing with ttl 0", () =>
    Effect.sync(() => {
      const cache = makeValidatedTokens({ ttlMillis: 1000, maxEntries: 3 })
      const tokens = Array.from({ length: 5 }, (_, i) => tokenOf(`p${i}`, 100, String(i)))
      tokens.forEach((t, i) => {
        cache.remember(t, `p${i}`, 0)
      })
      expect(cache.size()).toBe(3)
      expect(cache.lookup(tokens[0]!, 1)).toBeUndefined()
      expect(cache.lookup(tokens[4]!, 1)).toBe("p4")
      const off = makeValidatedTokens({ ttlMillis: 0, maxEntries: 3 })
      off.remember(tokens[0]!, "p0", 0)
      expect(off.size()).toBe(0)
    })
  )

  it.effect(
    "a login that bypasses the gateway revokes the old token there within the ttl (1 s); through the gateway at once",
    () =>
      Effect.gen(function* () {
        const stack = yield* startStack({ gateway: { tokenCacheMs: 1000 } })
        const network = yield* MemoryNetwork
        const client = yield* stack.connect
        yield* saveAccount({ uniqueId: "p", bound: true, account: "p", password: "p-password" }, testPasswordCost)
        const credentials = { identifier: "account", value: "p", password: "p-password" }
        const old = (yield* client.call("login", credentials)).data.token as string
        expect((yield* client.call("get_all_weapon", { token: old })).status).toBe(0)
        // Straight to the token server's HTTP API: this gateway does not see the new login.
        const direct = yield* network.fetch(
          stack.tokensPort,
          new Request(`http://memory:${stack.tokensPort}/login`, { method: "POST", body: JSON.stringify(credentials) })
        )
        expect(direct.status).toBe(200)
        // The documented bound: still accepted from the cache until its ttl runs out, refused after.
        expect((yield* client.call("get_all_weapon", { token: old })).status).toBe(0)
        yield* TestClock.adjust("1001 millis")
        expect((yield* client.call("get_all_weapon", { token: old })).status).toBe(11)
        // Through the gateway, the previous token is refused at once.
        const current = (yield* client.call("login", credentials)).data.token as string
        expect((yield* client.call("get_all_weapon", { token: current })).status).toBe(0)
        const newest = (yield* client.call("login", credentials)).data.token as string
        expect((yield* client.call("get_all_weapon", { token: current })).status).toBe(11)
        expect((yield* client.call("get_all_weapon", { token: newest })).status).toBe(0)
      }).pipe(Effect.provide(aliyaTestLayer()))
  )

  it.effect(
    "co-located: a login by any route of the token server (its HTTP API too) revokes the old token here at once",
    () =>
      Effect.gen(function* () {
        const stack = yield* startStack({ calls: "in-process", gateway: { tokenCacheMs: 1000 } })
        const network = yield* MemoryNetwork
        const client = yield* stack.connect
        yield* saveAccount({ uniqueId: "q", bound: true, account: "q", password: "q-password" }, testPasswordCost)
        const credentials = { identifier: "account", value: "q", password: "q-password" }
        const old = (yield* client.call("login", credentials)).data.token as string
        expect((yield* client.call("get_all_weapon", { token: old })).status).toBe(0)
        // Not through this gateway: straight to the token server's HTTP API, in the same process.
        const direct = yield* network.fetch(
          stack.tokensPort,
          new Request(`http://memory:${stack.tokensPort}/login`, { method: "POST", body: JSON.stringify(credentials) })
        )
        const fresh = ((yield* Effect.promise(() => direct.json())) as { data: { token: string } }).data.token
        // No clock step: the token server told the gateway's cache when it issued the new token.
        expect((yield* client.call("get_all_weapon", { token: old })).status).toBe(11)
        expect((yield* client.call("get_all_weapon", { token: fresh })).status).toBe(0)
      }).pipe(Effect.provide(aliyaTestLayer()))
  )
})
