import { mkdir, rename, rm, writeFile } from "node:fs/promises"
import { dirname } from "node:path"
import { Effect, Either, Layer, Option } from "effect"
import { generateAccessCode } from "../../src/storage/AccessCode.ts"
import {
  Account,
  AccountExists,
  AccountNotFound,
  accountFromInput,
  newAccountId,
  StorageError
} from "../../src/storage/Account.ts"
import { parseAccountFile, renderAccountFile } from "../../src/storage/AccountFile.ts"
import { AccessCodeHasher } from "./AccessCodeHasher.ts"
import { AccountStore } from "./AccountStore.ts"

interface Row {
  readonly account: Account
  readonly codeHash: string
}
type Rows = ReadonlyMap<string, Row>

const fileError = (path: string, what: string, cause?: unknown) =>
  new StorageError({
    message: `accounts file ${path}: ${what}${cause instanceof Error ? `: ${cause.message}` : ""}`,
    cause
  })

/** Writes a temp file beside the target and renames it over: readers see the old or the new file, never half of one. */
const persist = (path: string, rows: Rows) =>
  Effect.tryPromise({
    try: async () => {
      const users = Object.fromEntries(
        [...rows.values()].map(({ account, codeHash }) => [
          account.name,
          {
            sid: account.id,
            hash: codeHash,
            prm: account.permission,
            isadmin: account.isAdmin,
            enabled: account.enabled,
            il: account.instanceLimit
          }
        ])
      )
      const temp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`
      try {
        await mkdir(dirname(path), { recursive: true })
        await writeFile(temp, renderAccountFile(users), { mode: 0o600 })
        await rename(temp, path)
      } finally {
        await rm(temp, { force: true })
      }
    },
    catch: (cause) => fileError(path, "cannot write", cause)
  })

/** Reads the file (a missing one is an empty store); plaintext `pwd` codes are hashed, and the file is rewritten. */
const load = (path: string) =>
  Effect.gen(function* () {
    const hasher = yield* AccessCodeHasher
    const file = Bun.file(path)
    if (!(yield* Effect.promise(() => file.exists()))) {
      yield* Effect.logInfo(`accounts file ${path} does not exist: creating an empty one`)
      yield* persist(path, new Map())
      return new Map<string, Row>()
    }
    const text = yield* Effect.tryPromise({
      try: () => file.text(),
      catch: (cause) => fileError(path, "cannot read", cause)
    })
    const parsed = parseAccountFile(text)
    if (Either.isLeft(parsed)) return yield* fileError(path, `invalid: ${parsed.left.join("; ")}`)
    const rows = new Map<string, Row>()
    const ids = new Set<string>()
    let rewrite = false
    for (const [name, entry] of Object.entries(parsed.right.users)) {
      const id = entry.sid ?? newAccountId()
      if (ids.has(id)) return yield* fileError(path, `sid ${JSON.stringify(id)} is used by more than one account`)
      ids.add(id)
      // A pwd wins over a hash: writing a pwd is how an operator sets a new code by hand.
      if (entry.pwd !== undefined) {
        yield* Effect.logWarning(
          `accounts file ${path}: account ${JSON.stringify(name)} had a plaintext access code; it is now stored hashed`
        )
      }
      const codeHash = entry.pwd !== undefined ? yield* hasher.hash(entry.pwd) : entry.hash!
      rewrite ||=
        entry.pwd !== undefined || entry.sid === undefined || entry.enabled === undefined || entry.il === undefined
      const account = new Account({
        id,
        name,
        enabled: entry.enabled ?? true,
        instanceLimit: entry.il ?? 0,
        permission: entry.prm,
        isAdmin: entry.isadmin === true || entry.isadmin === 1
      })
      rows.set(name, { account, codeHash })
    }
    if (rewrite) yield* persist(path, rows)
    return rows
  })

/** AccountStore in a JSON file (the original's `{users: {...}}` shape); every change is written atomically. */
export const makeJsonAccountStore = (path: string) =>
  Effect.gen(function* () {
    const hasher = yield* AccessCodeHasher
    let rows: Rows = yield* load(path)
    const writer = yield* Effect.makeSemaphore(1)
    /** Applies a change to a copy, writes it, and only then makes it current: a failed write changes nothing. */
    const change = <A, E>(apply: (draft: Map<string, Row>) => Effect.Effect<A, E>) =>
      writer.withPermits(1)(
        Effect.gen(function* () {
          const draft = new Map(rows)
          const result = yield* apply(draft)
          yield* persist(path, draft)
          rows = draft
          return result
        })
      )
    const existing = (draft: Map<string, Row>, name: string) =>
      Effect.suspend(() => {
        const row = draft.get(name)
        return row ? Effect.succeed(row) : Effect.fail(new AccountNotFound({ name }))
      })

    const store: AccountStore["Type"] = {
      authenticate: (name, accessCode) =>
        Effect.suspend(() => {
          const row = rows.get(name)
          return hasher
            .verify(accessCode, row?.codeHash)
            .pipe(Effect.map((ok) => (ok && row ? Option.some(row.account) : Option.none())))
        }),
      findByName: (name) => Effect.sync(() => Option.fromNullable(rows.get(name)?.account)),
      storedCredential: (name) => Effect.sync(() => Option.fromNullable(rows.get(name))),
      list: Effect.sync(() => [...rows.values()].map((row) => row.account)),
      create: (input) =>
        change((draft) =>
          Effect.gen(function* () {
            if (draft.has(input.name)) return yield* new AccountExists({ name: input.name })
            const account = yield* accountFromInput(input, newAccountId())
            const accessCode = input.accessCode ?? generateAccessCode()
            draft.set(account.name, { account, codeHash: yield* hasher.hash(accessCode) })
            return { account, accessCode }
          })
        ),
      regenerateAccessCode: (name) =>
        change((draft) =>
          Effect.gen(function* () {
            const row = yield* existing(draft, name)
            const accessCode = generateAccessCode()
            draft.set(name, { account: row.account, codeHash: yield* hasher.hash(accessCode) })
            return { account: row.account, accessCode }
          })
        ),
      setEnabled: (name, enabled) =>
        change((draft) =>
          Effect.map(existing(draft, name), (row) => {
            const account = new Account({ ...row.account, enabled })
            draft.set(name, { ...row, account })
            return account
          })
        )
    }
    return store
  })

export const JsonAccountStore = (path: string) => Layer.effect(AccountStore, makeJsonAccountStore(path))
