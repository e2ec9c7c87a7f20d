import { Effect, Layer, Redacted } from "effect"
import { ReadOnlyStore } from "../../src/storage/Account.ts"
import { AccountStore } from "./AccountStore.ts"
import { makeMemoryAccountStore } from "./MemoryAccountStore.ts"

export interface SingleAccount {
  readonly name: string
  readonly accessCode: Redacted.Redacted
  readonly permission: number
  readonly isAdmin: boolean
  readonly instanceLimit: number
}

const readOnly = (operation: string) => () => Effect.fail(new ReadOnlyStore({ operation }))

/**
 * Exactly one account, from configuration (its id is always "1"). The code is hashed at startup
 * like any other; accounts cannot be created, re-keyed or disabled at run time.
 */
export const SingleAccountStore = (single: SingleAccount) =>
  Layer.effect(
    AccountStore,
    Effect.gen(function* () {
      const store = yield* makeMemoryAccountStore
      yield* store
        .create({
          name: single.name,
          permission: single.permission,
          isAdmin: single.isAdmin,
          instanceLimit: single.instanceLimit,
          accessCode: Redacted.value(single.accessCode)
        })
        .pipe(Effect.catchTags({ AccountExists: Effect.die, ReadOnlyStore: Effect.die })) // impossible on a fresh store
      return {
        authenticate: store.authenticate,
        findByName: store.findByName,
        storedCredential: store.storedCredential,
        list: store.list,
        create: readOnly("create"),
        regenerateAccessCode: readOnly("regenerateAccessCode"),
        setEnabled: readOnly("setEnabled")
      } satisfies AccountStore["Type"]
    })
  )
