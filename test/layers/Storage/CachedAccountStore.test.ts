import { describe, expect } from "bun:test"
import { Context, Deferred, Effect, Fiber, Layer, Option, TestClock } from "effect"
import { Permission } from "../../../src/storage/Account.ts"
import { AccountStore } from "../../../layers/Storage/AccountStore.ts"
import { CachedAccountStore } from "../../../layers/Storage/CachedAccountStore.ts"
import { MemoryAccountStore, MemoryAccountStoreTest } from "../../../layers/Storage/MemoryAccountStore.ts"
import { it } from "../../support/effect.ts"
import { accountStoreContract } from "./AccountStoreContract.ts"

interface Hold {
  /** Completed once the store has verified, before the answer is handed back. */
  readonly verified: Deferred.Deferred<void>
  /** The answer is held until this completes. */
  readonly release: Deferred.Deferred<void>
}

/** The memory store, counting how often authenticate really verifies; `hold` can delay an answer. */
const counted = (options: { withStoredCredential: boolean } = { withStoredCredential: true }) => {
  const state = {
    verifications: 0,
    hold: undefined as Hold | undefined,
    below: undefined as AccountStore["Type"] | undefined
  }
  const layer = Layer.effect(
    AccountStore,
    Effect.map(AccountStore, ({ storedCredential, ...store }) => ({
      ...store,
      ...(options.withStoredCredential ? { storedCredential } : {}),
      authenticate: (name: string, code: string) =>
        Effect.suspend(() => {
          state.verifications++
          const hold = state.hold
          state.hold = undefined
          return hold
            ? Effect.tap(store.authenticate(name, code), () =>
                Effect.zipRight(Deferred.succeed(hold.verified, undefined), Deferred.await(hold.release))
              )
            : store.authenticate(name, code)
        })
    }))
  ).pipe(
    Layer.tap((context) => Effect.sync(() => (state.below = Context.get(context, AccountStore)))),
    Layer.provide(MemoryAccountStoreTest)
  )
  return { state, layer: CachedAccountStore({ ttl: "10 seconds" }).pipe(Layer.provide(layer)) }
}

accountStoreContract({
  name: "memory behind the authentication cache",
  layer: CachedAccountStore({ ttl: "10 seconds" }).pipe(Layer.provide(MemoryAccountStore)),
  persistent: false
})

describe("authentication cache", () => {
  it.effect("a verified code is not hashed again until the TTL passes (a store that does not tell its hash)", () => {
    const { state, layer } = counted({ withStoredCredential: false })
    return Effect.gen(function* () {
      const store = yield* AccountStore
      const { accessCode } = yield* store.create({ name: "a", permission: Permission.all })
      for (let i = 0; i < 5; i++) expect(Option.isSome(yield* store.authenticate("a", accessCode))).toBe(true)
      expect(state.verifications).toBe(1)
      yield* TestClock.adjust("11 seconds")
      expect(Option.isSome(yield* store.authenticate("a", accessCode))).toBe(true)
      expect(state.verifications).toBe(2)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a hit answers the verified account until the TTL's last millisecond, and rechecks at the TTL", () => {
    const { state, layer } = counted({ withStoredCredential: false })
    return Effect.gen(function* () {
      const store = yield* AccountStore
      const { account, accessCode } = yield* store.create({ name: "a", permission: Permission.all })
      expect(yield* store.authenticate("a", accessCode)).toEqual(Option.some(account))
      yield* TestClock.adjust("9999 millis")
      // A wrong code in between goes to the store and leaves the hit alone.
      expect(Option.isNone(yield* store.authenticate("a", `${accessCode}0`))).toBe(true)
      const hits = [yield* store.authenticate("a", accessCode), yield* store.authenticate("a", accessCode)]
      for (const hit of hits) expect(hit).toEqual(Option.some(account))
      expect(state.verifications).toBe(2)
      yield* TestClock.adjust("1 millis")
      expect(yield* store.authenticate("a", accessCode)).toEqual(Option.some(account))
      expect(state.verifications).toBe(3)
    }).pipe(Effect.provide(layer))
  })

  it.effect("authenticateNow answers only a hit, until the TTL, and never after a regenerate or disable", () => {
    const { state, layer } = counted()
    return Effect.gen(function* () {
      const store = yield* AccountStore
      const now = store.authenticateNow!
      const { account, accessCode } = yield* store.create({ name: "a", permission: Permission.all })
      // Nothing verified yet: not answerable on the spot.
      expect(now("a", accessCode)).toBeUndefined()
      expect(yield* store.authenticate("a", accessCode)).toEqual(Option.some(account))
      expect(now("a", accessCode)).toEqual(Option.some(account))
      // Another code, another name: the store's to answer (a refusal is never given on the spot).
      expect(now("a", `${accessCode}0`)).toBeUndefined()
      expect(now("b", accessCode)).toBeUndefined()
      yield* TestClock.adjust("9999 millis")
      expect(now("a", accessCode)).toEqual(Option.some(account))
      yield* TestClock.adjust("1 millis")
      expect(now("a", accessCode)).toBeUndefined()
      expect(state.verifications).toBe(1)
      yield* store.authenticate("a", accessCode)
      yield* store.setEnabled("a", false)
      expect(now("a", accessCode)).toBeUndefined()
      yield* store.authenticate("a", accessCode)
      yield* store.regenerateAccessCode("a")
      expect(now("a", accessCode)).toBeUndefined()
    }).pipe(Effect.provide(layer))
  })

  it.effect("a wrong code always goes to the store and is refused", () => {
    const { state, layer } = counted()
    return Effect.gen(function* () {
      const store = yield* AccountStore
      const { accessCode } = yield* store.create({ name: "a", permission: Permission.all })
      yield* store.authenticate("a", accessCode)
      expect(Option.isNone(yield* store.authenticate("a", `${accessCode}0`))).toBe(true)
      expect(Option.isNone(yield* store.authenticate("a", `${accessCode}0`))).toBe(true)
      expect(Option.isNone(yield* store.authenticate("b", accessCode))).toBe(true)
      expect(state.verifications).toBe(4)
    }).pipe(Effect.provide(layer))
  })

  it.effect("concurrent logins with one name and code share one verification", () => {
    const { state, layer } = counted()
    return Effect.gen(function* () {
      const store = yield* AccountStore
      const { accessCode } = yield* store.create({ name: "a", permission: Permission.all })
      const hold: Hold = { verified: yield* Deferred.make<void>(), release: yield* Deferred.make<void>() }
      state.hold = hold
      const first = yield* Effect.fork(store.authenticate("a", accessCode))
      yield* Deferred.await(hold.verified)
      // These arrive while the first verification is still under way: same code waits, another code does not.
      const same = yield* Effect.fork(
        Effect.all([store.authenticate("a", accessCode), store.authenticate("a", accessCode)])
      )
      const wrong = yield* Effect.fork(store.authenticate("a", `${accessCode}0`))
      expect(Option.isNone(yield* Fiber.join(wrong))).toBe(true)
      yield* Deferred.succeed(hold.release, undefined)
      expect(Option.isSome(yield* Fiber.join(first))).toBe(true)
      expect((yield* Fiber.join(same)).every(Option.isSome)).toBe(true)
      expect(state.verifications).toBe(2)
    }).pipe(Effect.provide(layer))
  })

  it.effect("regenerate and setEnabled take effect at once", () => {
    const { layer } = counted()
    return Effect.gen(function* () {
      const store = yield* AccountStore
      const { accessCode } = yield* store.create({ name: "a", permission: Permission.all })
      yield* store.authenticate("a", accessCode)
      yield* store.setEnabled("a", false)
      expect(Option.getOrThrow(yield* store.authenticate("a", accessCode)).enabled).toBe(false)
      const renewed = yield* store.regenerateAccessCode("a")
      expect(Option.isNone(yield* store.authenticate("a", accessCode))).toBe(true)
      expect(Option.isSome(yield* store.authenticate("a", renewed.accessCode))).toBe(true)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a verification that raced with a regenerate is not remembered", () => {
    const { state, layer } = counted()
    return Effect.gen(function* () {
      const store = yield* AccountStore
      const { accessCode } = yield* store.create({ name: "a", permission: Permission.all })
      const hold: Hold = { verified: yield* Deferred.make<void>(), release: yield* Deferred.make<void>() }
      state.hold = hold
      // The old code is verified, then the code is regenerated before that answer reaches the cache.
      const racing = yield* Effect.fork(store.authenticate("a", accessCode))
      yield* Deferred.await(hold.verified)
      yield* store.regenerateAccessCode("a")
      yield* Deferred.succeed(hold.release, undefined)
      expect(Option.isSome(yield* Fiber.join(racing))).toBe(true)
      expect(Option.isNone(yield* store.authenticate("a", accessCode))).toBe(true)
    }).pipe(Effect.provide(layer))
  })

  it.effect("past the TTL an unchanged stored hash renews the entry without hashing; the account is re-read", () => {
    const { state, layer } = counted()
    return Effect.gen(function* () {
      const store = yield* AccountStore
      const { accessCode } = yield* store.create({ name: "a", permission: Permission.all })
      for (let i = 0; i < 4; i++) {
        expect(Option.isSome(yield* store.authenticate("a", accessCode))).toBe(true)
        yield* TestClock.adjust("11 seconds")
      }
      expect(Option.isSome(yield* store.authenticate("a", accessCode))).toBe(true)
      expect(state.verifications).toBe(1)
      // Disabled by another process (the store below, not through the cache): seen once the TTL passes.
      yield* state.below!.setEnabled("a", false)
      expect(Option.getOrThrow(yield* store.authenticate("a", accessCode)).enabled).toBe(true)
      yield* TestClock.adjust("11 seconds")
      expect(Option.getOrThrow(yield* store.authenticate("a", accessCode)).enabled).toBe(false)
      expect(state.verifications).toBe(1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a code changed by another process is refused once the TTL passes, and the new one is verified", () => {
    const { state, layer } = counted()
    return Effect.gen(function* () {
      const store = yield* AccountStore
      const { accessCode } = yield* store.create({ name: "a", permission: Permission.all })
      expect(Option.isSome(yield* store.authenticate("a", accessCode))).toBe(true)
      const renewed = yield* state.below!.regenerateAccessCode("a")
      // Within the TTL the old code is still trusted (the cache's documented bound for other processes' changes).
      expect(Option.isSome(yield* store.authenticate("a", accessCode))).toBe(true)
      yield* TestClock.adjust("11 seconds")
      expect(Option.isNone(yield* store.authenticate("a", accessCode))).toBe(true)
      expect(state.verifications).toBe(2)
      expect(Option.isSome(yield* store.authenticate("a", renewed.accessCode))).toBe(true)
      expect(state.verifications).toBe(3)
      yield* TestClock.adjust("11 seconds")
      expect(Option.isSome(yield* store.authenticate("a", renewed.accessCode))).toBe(true)
      expect(Option.isNone(yield* store.authenticate("a", accessCode))).toBe(true)
      expect(state.verifications).toBe(4)
    }).pipe(Effect.provide(layer))
  })
})
