import { Data, Effect, Schema } from "effect"

/** Permission bits of an account (DroneEngage numbering: 0x1 may log in as GCS, 0x10 as agent). */
export const Permission = {
  gcs: 0x1,
  agent: 0x10,
  all: 0xffffffff
} as const

export const AccountName = Schema.String.pipe(
  Schema.trimmed(),
  Schema.minLength(1),
  Schema.maxLength(128),
  // Names are keys of the JSON accounts file, where "__proto__" cannot survive a parse.
  Schema.filter((name) => name !== "__proto__" || "the name __proto__ is reserved"),
  Schema.annotations({ identifier: "AccountName" })
)

export class Account extends Schema.Class<Account>("Account")({
  /** Stable id, never reused (the original's Account_SID). */
  id: Schema.String,
  name: AccountName,
  enabled: Schema.Boolean,
  /** How many units of this account may be connected at once (0 = unlimited). */
  instanceLimit: Schema.NonNegativeInt,
  /** Permission bit set; see Permission. */
  permission: Schema.NonNegativeInt,
  isAdmin: Schema.Boolean
}) {
  has(bit: number): boolean {
    return (this.permission & bit) === bit
  }
}

export interface NewAccount {
  readonly name: string
  readonly permission: number
  readonly instanceLimit?: number
  readonly isAdmin?: boolean
  /** Use this access code instead of generating one (seeding from config). */
  readonly accessCode?: string
}

/** A freshly created or regenerated access code: shown once, only its hash is stored. */
export interface IssuedAccessCode {
  readonly account: Account
  readonly accessCode: string
}

export class AccountNotFound extends Data.TaggedError("AccountNotFound")<{ readonly name: string }> {}
export class AccountExists extends Data.TaggedError("AccountExists")<{ readonly name: string }> {}
export class StorageError extends Data.TaggedError("StorageError")<{
  readonly message: string
  readonly cause?: unknown
}> {}
/** The backend cannot do this (e.g. creating accounts in single-account mode). */
export class ReadOnlyStore extends Data.TaggedError("ReadOnlyStore")<{ readonly operation: string }> {}

/** A fresh, unguessable account id for stores that do not number accounts themselves. */
export const newAccountId = (): string => crypto.randomUUID()

/** The Account that `input` describes, validated: a bad name or permission is a StorageError, not a crash. */
export const accountFromInput = (input: NewAccount, id: string) =>
  Effect.try({
    try: () =>
      new Account({
        id,
        name: input.name,
        enabled: true,
        instanceLimit: input.instanceLimit ?? 0,
        permission: input.permission,
        isAdmin: input.isAdmin ?? false
      }),
    catch: (cause) =>
      new StorageError({ message: `invalid account ${JSON.stringify(input.name)}: ${String(cause)}`, cause })
  })
