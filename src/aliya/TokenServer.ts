import { SqlClient } from "@effect/sql"
import { randomUUID } from "node:crypto"
import { Clock, Duration, Effect, Either, Schema } from "effect"
import { LoginData, LoginUniqueData } from "./Functions.ts"
import { InternalHttpError, type InternalResponse } from "./InternalHttp.ts"
import type { JwtCodec } from "./Jwt.ts"
import { answer, type Answer } from "./ServiceHttp.ts"
import { Messages, reply, Status } from "./Wire.ts"

export interface TokenServerOptions {
  readonly codec: JwtCodec
  readonly lifetime: Duration.Duration
  /**
   * POST /<path> of the AccountManager, which owns the accounts: in-process when it runs in this
   * process, else over internal HTTP (see ServiceCalls); rejects with InternalHttpError when unreachable.
   */
  readonly askAccounts: (path: string, body: object) => Promise<InternalResponse>
  /** Told of every token issued (it revoked its player's older tokens): co-located gateways forget those at once. */
  readonly issued?: (token: string) => void
}

/**
 * The session table holds each unique_id's current token id (jti): a token is valid only while
 * it is the latest one issued, so a new login revokes the previous token, and since the table is
 * in SQL the revocation survives a restart.
 */
const rememberSession = (uniqueId: string, jti: string, expiresAt: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.onDialectOrElse({
      mysql: () =>
        sql`INSERT INTO aliya_sessions (unique_id, jti, expires_at) VALUES (${uniqueId}, ${jti}, ${expiresAt})
          ON DUPLICATE KEY UPDATE jti = VALUES(jti), expires_at = VALUES(expires_at)`,
      orElse: () =>
        sql`INSERT INTO aliya_sessions (unique_id, jti, expires_at) VALUES (${uniqueId}, ${jti}, ${expiresAt})
          ON CONFLICT (unique_id) DO UPDATE SET jti = excluded.jti, expires_at = excluded.expires_at`
    })
  )

const currentJti = (uniqueId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ jti: unknown }>`SELECT jti FROM aliya_sessions WHERE unique_id = ${uniqueId}`, (rows) =>
      rows[0] ? String(rows[0].jti) : undefined
    )
  )

const unavailable = (error: unknown) =>
  Effect.logError("aliya tokens: failure", error).pipe(
    Effect.as(answer(reply(Status.unavailable, Messages.unavailable), 503))
  )

export const makeTokenServer = (options: TokenServerOptions) => {
  const lifetimeSeconds = Math.max(1, Math.round(Duration.toSeconds(options.lifetime)))

  /** A new token for `uniqueId`; it replaces (revokes) the previous one. */
  const issue = (uniqueId: string) =>
    Effect.gen(function* () {
      const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
      const jti = randomUUID()
      const exp = now + lifetimeSeconds
      const token = yield* options.codec.sign({ unique_id: uniqueId, jti, exp }, now)
      yield* rememberSession(uniqueId, jti, exp)
      options.issued?.(token)
      return token
    })

  const askAccounts = (path: string, body: object) =>
    Effect.tryPromise({
      try: () => options.askAccounts(path, body),
      catch: (e) =>
        e instanceof InternalHttpError ? e : new InternalHttpError({ url: `accounts/${path}`, message: String(e) })
    })

  const login = (body: unknown): Effect.Effect<Answer, never, SqlClient.SqlClient> =>
    Either.match(Schema.decodeUnknownEither(LoginData)(body), {
      onLeft: () => Effect.succeed(answer(reply(1, "Invalid credentials"), 400)),
      onRight: (data) =>
        Effect.gen(function* () {
          const verdict = yield* askAccounts("verify_credentials", data)
          const result = verdict.body as { status?: number; data?: { unique_id?: string } }
          if (verdict.status >= 500 || result.status === Status.unavailable)
            return answer(reply(Status.unavailable, Messages.unavailable), 503)
          if (result.status !== 0 || typeof result.data?.unique_id !== "string")
            return answer(reply(1, "Invalid credentials"), 400)
          return answer(reply(0, "success", { token: yield* issue(result.data.unique_id) }))
        }).pipe(Effect.catchAll(unavailable))
    })

  const loginUnique = (body: unknown) =>
    Either.match(Schema.decodeUnknownEither(LoginUniqueData)(body), {
      onLeft: () => Effect.succeed(answer(reply(Status.invalidFormat, Messages.invalidFormat), 400)),
      onRight: (data) =>
        Effect.gen(function* () {
          const verdict = yield* askAccounts("login_unique", data)
          const result = verdict.body as { status?: number; message?: string; data?: Record<string, unknown> }
          if (result.status === 0 || result.status === 1) {
            const token = yield* issue(data.unique_id)
            return answer(reply(result.status, String(result.message ?? "success"), { ...result.data, token }))
          }
          if (result.status === 2 || result.status === 3)
            return answer(reply(result.status, String(result.message)), 400)
          return answer(reply(Status.unavailable, Messages.unavailable), 503)
        }).pipe(Effect.catchAll(unavailable))
    })

  /** Whether `token` is the player's current, unexpired token: 200 {unique_id} or 400 with the reason. */
  const validateToken = (token: string) =>
    Effect.gen(function* () {
      if (token === "" || token.length > 4096) return answer({ message: "Token expired or could not be decoded" }, 400)
      const claims = yield* options.codec.verify(token, yield* Clock.currentTimeMillis)
      if (!claims) return answer({ message: "Token expired or could not be decoded" }, 400)
      const jti = yield* currentJti(claims.unique_id)
      if (jti !== claims.jti) return answer({ message: "Invalidated token" }, 400)
      return answer({ unique_id: claims.unique_id })
    }).pipe(Effect.catchAll(unavailable))

  return { issue, login, loginUnique, validateToken }
}

/** The token of an Authorization header: bare, or after "Bearer ". */
export const tokenOfHeader = (header: string | null) => (header ?? "").replace(/^Bearer\s+/i, "").trim()
