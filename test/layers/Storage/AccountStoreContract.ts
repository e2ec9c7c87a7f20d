import { describe, expect } from "bun:test"
import { Effect, Either, Layer, Option } from "effect"
import { Permission } from "../../../src/storage/Account.ts"
import { AccessCodeHasher } from "../../../layers/Storage/AccessCodeHasher.ts"
import { AccountStore } from "../../../layers/Storage/AccountStore.ts"
import { it } from "../../support/effect.ts"

/** One AccountStore backend under test. `layer` is built afresh for every test (on the same storage when persistent). */
export interface AccountBackend<R> {
  readonly name: string
  /** The contract provides the hasher (fast, and counting verifications). */
  readonly layer: Layer.Layer<AccountStore | R, unknown, AccessCodeHasher>
  /** Everything the backend stored, as text: to prove access codes are never kept in plaintext. */
  readonly dump?: Effect.Effect<string, unknown, R>
  /** Data survives building the layer again (file or database backends). */
  readonly persistent: boolean
  readonly skip?: boolean
  /** A read-only backend and its one configured account: only the read tests run, and every change must fail with ReadOnlyStore. */
  readonly readOnly?: { readonly name: string; readonly accessCode: string }
}

const unique = (base: string) => `${base}-${crypto.randomUUID().slice(0, 8)}`

/** AccessCodeHasher.Fast that counts verify calls. */
const countingHasher = (counter: { verifications: number }) =>
  Layer.effect(
    AccessCodeHasher,
    Effect.map(AccessCodeHasher, (fast) =>
      AccessCodeHasher.make({
        hash: fast.hash,
        verify: (code, stored) => Effect.suspend(() => (counter.verifications++, fast.verify(code, stored)))
      })
    )
  ).pipe(Layer.provide(AccessCodeHasher.Fast))

/** The AccountStore contract: every writable backend must pass all of it; read-only ones the read part. */
export const accountStoreContract = <R>(backend: AccountBackend<R>) =>
  describe(`AccountStore contract: ${backend.name}`, () => {
    const counter = { verifications: 0 }
    const layer = backend.layer.pipe(Layer.provide(countingHasher(counter)))
    const test = <E>(name: string, body: () => Effect.Effect<void, E, AccountStore | R>) =>
      it.skipIf(backend.skip === true).live(name, () => Effect.provide(Effect.suspend(body), layer))
    /** An account to read: the configured one, or a fresh one. */
    const known = Effect.flatMap(AccountStore, (store) =>
      backend.readOnly
        ? Effect.succeed(backend.readOnly)
        : Effect.map(
            store.create({ name: unique("known"), permission: Permission.all }),
            ({ account, accessCode }) => ({ name: account.name, accessCode })
          )
    )

    test("an unknown name and a wrong code cost the same: one verification each, both None", () =>
      Effect.gen(function* () {
        const store = yield* AccountStore
        const { name, accessCode } = yield* known
        const verifications = (effect: Effect.Effect<Option.Option<unknown>, unknown>) =>
          Effect.gen(function* () {
            const before = counter.verifications
            const result = yield* effect
            return { found: Option.isSome(result), verifications: counter.verifications - before }
          })
        expect(yield* verifications(store.authenticate(name, accessCode))).toEqual({ found: true, verifications: 1 })
        expect(yield* verifications(store.authenticate(name, `${accessCode}x`))).toEqual({
          found: false,
          verifications: 1
        })
        expect(yield* verifications(store.authenticate(unique("nobody"), accessCode))).toEqual({
          found: false,
          verifications: 1
        })
        const found = Option.getOrThrow(yield* store.findByName(name))
        expect(found).toMatchObject({ name, permission: Permission.all, enabled: true })
        expect(Option.isNone(yield* store.findByName(unique("nobody")))).toBe(true)
        expect((yield* store.list).map((a) => a.name)).toContain(name)
      }))

    if (backend.readOnly) {
      const { name } = backend.readOnly
      test("refuses every change with ReadOnlyStore", () =>
        Effect.gen(function* () {
          const store = yield* AccountStore
          const attempts: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>> = [
            store.create({ name: unique("another"), permission: 1 }),
            store.regenerateAccessCode(name),
            store.setEnabled(name, false)
          ]
          for (const attempt of attempts) {
            const result = yield* Effect.either(attempt)
            expect(Either.isLeft(result) && result.left._tag).toBe("ReadOnlyStore")
          }
          expect(Option.getOrThrow(yield* store.findByName(name)).enabled).toBe(true)
        }))
      return
    }

    test("create, then authenticate with the issued code", () =>
      Effect.gen(function* () {
        const store = yield* AccountStore
        const name = unique("alice")
        const issued = yield* store.create({ name, permission: Permission.gcs | Permission.agent, instanceLimit: 3 })
        expect(issued.accessCode.length).toBeGreaterThanOrEqual(32)
        const account = Option.getOrThrow(yield* store.authenticate(name, issued.accessCode))
        expect(account).toMatchObject({ name, enabled: true, instanceLimit: 3, isAdmin: false, id: issued.account.id })
        expect(account.has(Permission.gcs)).toBe(true)
        expect(account.has(Permission.agent)).toBe(true)
        expect(Option.getOrThrow(yield* store.findByName(name)).id).toBe(issued.account.id)
        expect((yield* store.list).map((a) => a.name)).toContain(name)
      }))

    test("a wrong code and an unknown name both give None", () =>
      Effect.gen(function* () {
        const store = yield* AccountStore
        const name = unique("bob")
        const { accessCode } = yield* store.create({ name, permission: Permission.all })
        expect(Option.isNone(yield* store.authenticate(name, `${accessCode}x`))).toBe(true)
        expect(Option.isNone(yield* store.authenticate(name, ""))).toBe(true)
        expect(Option.isNone(yield* store.authenticate(unique("nobody"), accessCode))).toBe(true)
        expect(Option.isNone(yield* store.findByName(unique("nobody")))).toBe(true)
      }))

    test("a given access code is used instead of a generated one; admin flag kept", () =>
      Effect.gen(function* () {
        const store = yield* AccountStore
        const name = unique("carol")
        const issued = yield* store.create({
          name,
          permission: Permission.gcs,
          isAdmin: true,
          accessCode: "seeded code"
        })
        expect(issued.accessCode).toBe("seeded code")
        const account = Option.getOrThrow(yield* store.authenticate(name, "seeded code"))
        expect(account.isAdmin).toBe(true)
        expect(account.has(Permission.agent)).toBe(false)
      }))

    test("regenerate: the old code stops working, the new one works", () =>
      Effect.gen(function* () {
        const store = yield* AccountStore
        const name = unique("dave")
        const first = yield* store.create({ name, permission: Permission.all })
        const second = yield* store.regenerateAccessCode(name)
        expect(second.accessCode).not.toBe(first.accessCode)
        expect(second.account.id).toBe(first.account.id)
        expect(Option.isNone(yield* store.authenticate(name, first.accessCode))).toBe(true)
        expect(Option.isSome(yield* store.authenticate(name, second.accessCode))).toBe(true)
        const missing = yield* Effect.either(store.regenerateAccessCode(unique("nobody")))
        expect(Either.isLeft(missing) && missing.left._tag).toBe("AccountNotFound")
      }))

    test("setEnabled is reflected by findByName and authenticate", () =>
      Effect.gen(function* () {
        const store = yield* AccountStore
        const name = unique("erin")
        const { accessCode } = yield* store.create({ name, permission: Permission.all })
        expect((yield* store.setEnabled(name, false)).enabled).toBe(false)
        expect(Option.getOrThrow(yield* store.findByName(name)).enabled).toBe(false)
        expect(Option.getOrThrow(yield* store.authenticate(name, accessCode)).enabled).toBe(false)
        expect((yield* store.setEnabled(name, true)).enabled).toBe(true)
        expect(Option.getOrThrow(yield* store.authenticate(name, accessCode)).enabled).toBe(true)
        const missing = yield* Effect.either(store.setEnabled(unique("nobody"), true))
        expect(Either.isLeft(missing) && missing.left._tag).toBe("AccountNotFound")
      }))

    test("a duplicate create fails with AccountExists and keeps the first code", () =>
      Effect.gen(function* () {
        const store = yield* AccountStore
        const name = unique("frank")
        const first = yield* store.create({ name, permission: Permission.all })
        const again = yield* Effect.either(store.create({ name, permission: Permission.gcs, accessCode: "other" }))
        expect(Either.isLeft(again) && again.left._tag).toBe("AccountExists")
        expect(Option.isSome(yield* store.authenticate(name, first.accessCode))).toBe(true)
        expect(Option.isNone(yield* store.authenticate(name, "other"))).toBe(true)
      }))

    test("concurrent creates of one name: exactly one wins, the rest get AccountExists", () =>
      Effect.gen(function* () {
        const store = yield* AccountStore
        const name = unique("race")
        const results = yield* Effect.forEach(
          [1, 2, 3, 4],
          () => Effect.either(store.create({ name, permission: Permission.all })),
          {
            concurrency: "unbounded"
          }
        )
        const winners = results.filter(Either.isRight)
        expect(winners.length).toBe(1)
        for (const result of results) if (Either.isLeft(result)) expect(result.left._tag).toBe("AccountExists")
        expect(Option.isSome(yield* store.authenticate(name, winners[0]!.right.accessCode))).toBe(true)
      }))

    if (backend.dump) {
      const dump = backend.dump
      test("access codes are never stored in plaintext", () =>
        Effect.gen(function* () {
          const store = yield* AccountStore
          const name = unique("grace")
          const first = yield* store.create({ name, permission: Permission.all })
          const second = yield* store.regenerateAccessCode(name)
          const seeded = yield* store.create({
            name: unique("heidi"),
            permission: Permission.all,
            accessCode: "plain-seeded-code"
          })
          const stored = yield* dump
          expect(stored).toContain(name)
          for (const code of [first.accessCode, second.accessCode, seeded.accessCode])
            expect(stored).not.toContain(code)
        }))
    }

    if (backend.persistent) {
      const name = unique("ivan")
      let code = ""
      test("persists across re-open (write)", () =>
        Effect.gen(function* () {
          const store = yield* AccountStore
          code = (yield* store.create({ name, permission: Permission.agent, instanceLimit: 2 })).accessCode
          yield* store.setEnabled(name, false)
        }))
      test("persists across re-open (read back)", () =>
        Effect.gen(function* () {
          const store = yield* AccountStore
          const account = Option.getOrThrow(yield* store.authenticate(name, code))
          expect(account).toMatchObject({ name, enabled: false, instanceLimit: 2 })
          expect(account.has(Permission.agent)).toBe(true)
        }))
    }
  })
