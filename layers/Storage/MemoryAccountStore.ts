import { Effect, Layer, Option } from "effect"
import { generateAccessCode } from "../../src/storage/AccessCode.ts"
import { Account, AccountExists, AccountNotFound, accountFromInput } from "../../src/storage/Account.ts"
import { AccessCodeHasher } from "./AccessCodeHasher.ts"
import { AccountStore } from "./AccountStore.ts"

interface Row {
  account: Account
  codeHash: string
}

/** A row as it is now (the row itself changes in place). */
const copyRow = (row: Row) => ({ account: row.account, codeHash: row.codeHash })

/** In-memory AccountStore: the test double, and the base of the single-account and JSON backends. */
export const makeMemoryAccountStore = Effect.gen(function* () {
  const hasher = yield* AccessCodeHasher
  const rows = new Map<string, Row>()
  let nextId = 1

  const get = (name: string) =>
    Effect.suspend(() => {
      const row = rows.get(name)
      return row ? Effect.succeed(row) : Effect.fail(new AccountNotFound({ name }))
    })

  const store: AccountStore["Type"] = {
    authenticate: (name, accessCode) =>
      Effect.gen(function* () {
        const row = rows.get(name)
        const ok = yield* hasher.verify(accessCode, row?.codeHash)
        return ok && row ? Option.some(row.account) : Option.none()
      }),
    findByName: (name) => Effect.sync(() => Option.fromNullable(rows.get(name)?.account)),
    storedCredential: (name) => Effect.sync(() => Option.map(Option.fromNullable(rows.get(name)), copyRow)),
    list: Effect.sync(() => [...rows.values()].map((row) => row.account)),
    create: (input) =>
      Effect.gen(function* () {
        if (rows.has(input.name)) return yield* new AccountExists({ name: input.name })
        const accessCode = input.accessCode ?? generateAccessCode()
        const codeHash = yield* hasher.hash(accessCode)
        // Checked again: hashing yields, and a concurrent create of the same name may have finished meanwhile.
        if (rows.has(input.name)) return yield* new AccountExists({ name: input.name })
        const account = yield* accountFromInput(input, String(nextId++))
        rows.set(input.name, { account, codeHash })
        return { account, accessCode }
      }),
    regenerateAccessCode: (name) =>
      Effect.gen(function* () {
        const row = yield* get(name)
        const accessCode = generateAccessCode()
        row.codeHash = yield* hasher.hash(accessCode)
        return { account: row.account, accessCode }
      }),
    setEnabled: (name, enabled) =>
      Effect.gen(function* () {
        const row = yield* get(name)
        row.account = new Account({ ...row.account, enabled })
        return row.account
      })
  }
  return store
})

export const MemoryAccountStore = Layer.effect(AccountStore, makeMemoryAccountStore)

/** Memory store with fast hashing, for tests. */
export const MemoryAccountStoreTest = MemoryAccountStore.pipe(Layer.provide(AccessCodeHasher.Fast))
