import type { SqlClient } from "@effect/sql"
import { Effect, Either, Option, Schema } from "effect"
import { bindAccount, loginUnique, type PasswordCost, verifyCredentials } from "./Accounts.ts"
import { LoginData, LoginUniqueData } from "./Functions.ts"
import { type CallBudget, makeHashQueue } from "./HashQueue.ts"
import { answer, functionRoute, orUnavailable, type Route } from "./ServiceHttp.ts"
import { Messages, reply, Status } from "./Wire.ts"

export interface AccountManagerOptions {
  readonly passwordCost: PasswordCost
  /** The original's login_unique: an unbound account logs in with its unique_id alone. Insecure. */
  readonly legacyLoginUnique: boolean
  /** Password hashes computed at once (default 2). */
  readonly hashConcurrency?: number
}

const invalid = answer(reply(Status.invalidFormat, Messages.invalidFormat), 400)
/** A check refused because its caller would have given up first: the documented "busy, try again" (13). */
const busy = reply(Status.unavailable, Messages.unavailable)

const decoded =
  <A, I, R>(
    schema: Schema.Schema<A, I>,
    handle: (value: A, call: CallBudget | undefined) => Effect.Effect<ReturnType<typeof answer>, unknown, R>
  ) =>
  (body: unknown, call?: CallBudget) =>
    Either.match(Schema.decodeUnknownEither(schema)(body), {
      onLeft: () => Effect.succeed(invalid),
      onRight: (value) =>
        handle(value, call).pipe(
          Effect.catchAllCause((cause) =>
            Effect.logError("aliya: account storage failure", cause).pipe(
              Effect.as(answer(reply(Status.unavailable, Messages.unavailable), 503))
            )
          )
        )
    })

/**
 * The AccountManager's routes: bind_account for clients (through the gateway), and for the token
 * server /verify_credentials and /login_unique (it owns the accounts; the token server asks it).
 */
export const accountRoutes = (options: AccountManagerOptions): Record<string, Route<SqlClient.SqlClient>> => {
  // argon2 takes ~19 MiB and tens of ms per check: a burst of logins waits its turn instead of exhausting memory.
  const hashes = makeHashQueue(options.hashConcurrency ?? 2)
  return Object.fromEntries([
    functionRoute("bind_account", (id, d, call) =>
      orUnavailable(
        Effect.map(hashes.run(bindAccount(id, d.account, d.password, options.passwordCost), call), (admitted) => {
          if (Option.isNone(admitted)) return busy
          const outcome = admitted.value
          return outcome === "ok"
            ? reply(0, "success")
            : outcome === "nameTaken"
              ? reply(1, "Account name already exists")
              : outcome === "alreadyBound"
                ? reply(2, "The account has already been bound before")
                : reply(3, "Need to be logged in")
        })
      )
    ),
    [
      "/verify_credentials",
      decoded(LoginData, (d, call) =>
        Effect.map(
          hashes.run(verifyCredentials(d.identifier, d.value, d.password, options.passwordCost), call),
          (admitted) =>
            Option.isNone(admitted)
              ? answer(busy, 503)
              : Option.match(admitted.value, {
                  onNone: () => answer(reply(1, "Invalid credentials"), 400),
                  onSome: (uniqueId) => answer(reply(0, "success", { unique_id: uniqueId }))
                })
        )
      )
    ],
    [
      "/login_unique",
      decoded(LoginUniqueData, (d) =>
        Effect.map(loginUnique(d.unique_id, d.device_secret, options.legacyLoginUnique), (outcome) => {
          switch (outcome._tag) {
            case "Existing":
              return answer(reply(0, "success"))
            case "Created":
              return answer(reply(1, "new account created", { device_secret: outcome.deviceSecret }))
            case "Bound":
              return answer(
                reply(
                  2,
                  "The account corresponding to this unique_id has already been bound. Please log in using a different method."
                ),
                400
              )
            case "ProofRequired":
              return answer(reply(3, "This unique_id belongs to an existing account: send its device_secret"), 400)
          }
        })
      )
    ]
  ]) as Record<string, Route<SqlClient.SqlClient>>
}
