import { Effect, Option } from "effect"
import { authenticationError, ErrorCodes, type HydrogenError } from "./Errors.ts"
import type { Identity } from "./Permissions.ts"
import type { ApiKeys } from "./ApiKeys.ts"
import { looksSigned, type SignedTokens } from "../../layers/Tokens/SignedTokens.ts"

/** The credential of a request: `Authorization: Key <token>` (or Bearer), else `?key=<token>`. */
export const credentialOf = (headers: Headers, url: URL): string | undefined => {
  const header = headers.get("authorization")
  if (header) {
    const match = /^(?:Key|Bearer)\s+(\S+)\s*$/i.exec(header)
    return match ? match[1] : ""
  }
  const key = url.searchParams.get("key")
  return key ?? undefined
}

/** A URL safe to log: the `key` parameter masked. */
export const redactUrl = (url: URL): string => {
  if (!url.searchParams.has("key")) return url.pathname
  const copy = new URL(url)
  copy.searchParams.set("key", "redacted")
  return `${copy.pathname}${copy.search}`
}

/** Resolves a credential (API key or signed session token) to an identity; fails with an authentication error. */
export const makeAuthenticator =
  (keys: typeof ApiKeys.Service, tokens: typeof SignedTokens.Service) =>
  (credential: string): Effect.Effect<Identity, HydrogenError> => {
    if (credential.length === 0 || credential.length > 8192) {
      return Effect.fail(authenticationError(ErrorCodes.invalidToken, "malformed credential"))
    }
    if (looksSigned(credential)) {
      return tokens.verify(credential).pipe(
        Effect.map(
          (claims): Identity => ({
            name: claims.sub,
            kind: "session",
            permissions: claims.perms,
            expiresAt: claims.exp * 1000
          })
        ),
        Effect.mapError((error) =>
          error.reason === "expired"
            ? authenticationError(ErrorCodes.tokenExpired, "session token expired")
            : authenticationError(ErrorCodes.invalidToken, "invalid session token")
        )
      )
    }
    const identity = keys.lookup(credential)
    return Option.isSome(identity)
      ? Effect.succeed(identity.value)
      : Effect.fail(authenticationError(ErrorCodes.invalidToken, "unknown API key"))
  }
