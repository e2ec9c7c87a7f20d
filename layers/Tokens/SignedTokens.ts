import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import { Clock, Context, Data, Duration, Effect, Option, Redacted, Schema } from "effect"

/** What a session token says: who, what they may do, until when (epoch seconds). */
export const TokenClaims = Schema.Struct({
  sub: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)),
  perms: Schema.Array(Schema.String.pipe(Schema.maxLength(256))).pipe(Schema.maxItems(64)),
  iat: Schema.Number,
  exp: Schema.Number
})
export type TokenClaims = typeof TokenClaims.Type

export class TokenError extends Data.TaggedError("TokenError")<{
  readonly reason: "malformed" | "bad_signature" | "expired"
}> {}

const prefix = "hst1."
const decodeClaims = Schema.decodeUnknownOption(Schema.parseJson(TokenClaims))

/** Whether a presented credential has the shape of a signed token (otherwise it is an API key). */
export const looksSigned = (credential: string): boolean => credential.startsWith(prefix)

/**
 * HMAC-SHA256 signed session tokens: `hst1.<base64url claims>.<base64url mac>`. Verification
 * recomputes the MAC and compares in constant time, then checks expiry against the Clock.
 */
export class SignedTokens extends Context.Tag("switchboard/SignedTokens")<
  SignedTokens,
  {
    readonly issue: (
      subject: string,
      permissions: ReadonlyArray<string>,
      ttl: Duration.Duration
    ) => Effect.Effect<{ readonly token: string; readonly claims: TokenClaims }>
    readonly verify: (token: string) => Effect.Effect<TokenClaims, TokenError>
  }
>() {}

export const makeSignedTokens = (secret: Redacted.Redacted<string>) => {
  const key = Redacted.value(secret)
  const mac = (payload: string) => createHmac("sha256", key).update(payload).digest()
  return SignedTokens.of({
    issue: (subject, permissions, ttl) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const claims: TokenClaims = {
          sub: subject,
          perms: [...permissions],
          iat: Math.floor(now / 1000),
          exp: Math.floor((now + Duration.toMillis(ttl)) / 1000)
        }
        const payload = Buffer.from(JSON.stringify(claims)).toString("base64url")
        return { token: `${prefix}${payload}.${mac(payload).toString("base64url")}`, claims }
      }),
    verify: (token) =>
      Effect.gen(function* () {
        if (!looksSigned(token) || token.length > 8192) return yield* new TokenError({ reason: "malformed" })
        const dot = token.lastIndexOf(".")
        const payload = token.slice(prefix.length, dot)
        const presented = Buffer.from(token.slice(dot + 1), "base64url")
        const expected = mac(payload)
        if (dot <= prefix.length || presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
          return yield* new TokenError({ reason: "bad_signature" })
        }
        const claims = decodeClaims(Buffer.from(payload, "base64url").toString("utf8"))
        if (Option.isNone(claims)) return yield* new TokenError({ reason: "malformed" })
        const now = yield* Clock.currentTimeMillis
        if (claims.value.exp * 1000 <= now) return yield* new TokenError({ reason: "expired" })
        return claims.value
      })
  })
}

/** A secret for a process that has none configured: tokens then die with the process. */
export const randomSecret = (): Redacted.Redacted<string> => Redacted.make(randomBytes(32).toString("base64url"))
