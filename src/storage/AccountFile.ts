import { Either, ParseResult, Schema } from "effect"
import { AccountName } from "./Account.ts"

/**
 * One account in the JSON accounts file. The original's fields (sid, pwd, prm, isadmin) are
 * accepted, but `pwd` (a plaintext access code) is only read: the store hashes it into `hash`
 * and rewrites the file without it. `enabled` and `il` (instance limit) are ours.
 */
export const AccountFileEntry = Schema.Struct({
  sid: Schema.optionalWith(Schema.String.pipe(Schema.minLength(1)), { exact: true }),
  pwd: Schema.optionalWith(Schema.String, { exact: true }),
  /** A Bun.password hash (PHC "$argon2id$..." or bcrypt "$2b$..."); plaintext here is refused. */
  hash: Schema.optionalWith(Schema.String.pipe(Schema.startsWith("$"), Schema.minLength(20)), { exact: true }),
  prm: Schema.NonNegativeInt,
  isadmin: Schema.optionalWith(Schema.Union(Schema.Boolean, Schema.Literal(0, 1)), { exact: true }),
  enabled: Schema.optionalWith(Schema.Boolean, { exact: true }),
  il: Schema.optionalWith(Schema.NonNegativeInt, { exact: true })
}).pipe(
  Schema.filter((entry) => entry.hash !== undefined || entry.pwd !== undefined || "needs a hash (or a pwd to hash)")
)
export type AccountFileEntry = typeof AccountFileEntry.Type

const isAccountName = Schema.is(AccountName)

// Keys are checked by a filter, not by the Record's key schema, which would silently skip bad names.
export const AccountFile = Schema.Struct({
  users: Schema.Record({ key: Schema.String, value: AccountFileEntry })
}).pipe(
  Schema.filter((file) => {
    const bad = Object.keys(file.users).filter((name) => !isAccountName(name))
    return (
      bad.length === 0 ||
      `invalid account names (1 to 128 characters, no surrounding spaces): ${bad.map((name) => JSON.stringify(name)).join(", ")}`
    )
  })
)
export type AccountFile = typeof AccountFile.Type

const decodeFile = Schema.decodeUnknownEither(Schema.parseJson(AccountFile), { errors: "all" })

const formatPath = (path: ReadonlyArray<PropertyKey>) =>
  path.length === 0
    ? "(file)"
    : path
        .map((key, i) =>
          typeof key === "string" && /^[A-Za-z_][\w-]*$/.test(key)
            ? `${i > 0 ? "." : ""}${key}`
            : `[${JSON.stringify(String(key))}]`
        )
        .join("")

/** Decoding a record drops a "__proto__" key silently; such an account must be refused, not lost. */
const hasProtoAccount = (text: string) => {
  try {
    const users = (JSON.parse(text) as { users?: unknown } | null)?.users
    return typeof users === "object" && users !== null && Object.hasOwn(users, "__proto__")
  } catch {
    return false
  }
}

/** The parsed file, or one line per problem ("users.alice.prm: Expected ..."). */
export const parseAccountFile = (text: string): Either.Either<AccountFile, ReadonlyArray<string>> =>
  hasProtoAccount(text)
    ? Either.left(['users: the account name "__proto__" is reserved'])
    : Either.mapLeft(decodeFile(text), (error) =>
        ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => `${formatPath(issue.path)}: ${issue.message}`)
      )

/** What we write back: never a plaintext code. */
export const renderAccountFile = (
  users: Record<string, Required<Omit<AccountFileEntry, "pwd" | "isadmin">> & { isadmin: boolean }>
) => `${JSON.stringify({ users }, null, 2)}\n`
