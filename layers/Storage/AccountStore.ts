import { Context, type Effect, type Option } from "effect"
import type {
  Account,
  AccountExists,
  AccountNotFound,
  IssuedAccessCode,
  NewAccount,
  ReadOnlyStore,
  StorageError
} from "../../src/storage/Account.ts"

/**
 * Accounts and their access codes. Codes are stored only as hashes (Bun.password) and checked in
 * constant time; a wrong name and a wrong code are indistinguishable to the caller.
 * Backends: single account, JSON file, SQLite (embedded default), MySQL; plus a memory double.
 */
export class AccountStore extends Context.Tag("switchboard/AccountStore")<
  AccountStore,
  {
    /** The account when `name` exists and `accessCode` matches; None otherwise (disabled accounts included, check `enabled`). */
    readonly authenticate: (name: string, accessCode: string) => Effect.Effect<Option.Option<Account>, StorageError>
    /**
     * `authenticate` on the spot when it needs no I/O (a cache hit): the same answer; undefined when it cannot tell
     * without `authenticate`. Optional.
     */
    readonly authenticateNow?: (name: string, accessCode: string) => Option.Option<Account> | undefined
    readonly findByName: (name: string) => Effect.Effect<Option.Option<Account>, StorageError>
    /**
     * The account and its stored code hash as they are now, without verifying anything: lets the
     * authentication cache see that a code it verified is still checked against the same hash. Optional.
     */
    readonly storedCredential?: (name: string) => Effect.Effect<Option.Option<StoredCredential>, StorageError>
    readonly list: Effect.Effect<ReadonlyArray<Account>, StorageError>
    /** Creates an account with a generated access code (or `accessCode` when given); returns the code once. */
    readonly create: (
      account: NewAccount
    ) => Effect.Effect<IssuedAccessCode, AccountExists | ReadOnlyStore | StorageError>
    /** Replaces the access code; the old one stops working at once. Returns the new code once. */
    readonly regenerateAccessCode: (
      name: string
    ) => Effect.Effect<IssuedAccessCode, AccountNotFound | ReadOnlyStore | StorageError>
    readonly setEnabled: (
      name: string,
      enabled: boolean
    ) => Effect.Effect<Account, AccountNotFound | ReadOnlyStore | StorageError>
  }
>() {}

/** An account with the hash its access code is stored as. */
export interface StoredCredential {
  readonly account: Account
  readonly codeHash: string
}
