import { Context, Data, type Duration, type Effect, type Option } from "effect"

/** A shared token store (Redis, NATS) could not answer: the call did nothing a caller can rely on. No secret in `reason`. */
export class TokenStoreUnavailable extends Data.TaggedError("TokenStoreUnavailable")<{ readonly reason: string }> {}

/**
 * Secret, expiring tokens kept by the server: single-use login keys, login sessions, refresh or
 * resume tokens. Values are strings (the caller encodes), so a shared store (Redis, NATS KV) can
 * hold them for a cluster. A token is 128 random bits as 32 hex characters; lookups never reveal
 * by timing how close a guess was. `kind` separates the kinds of token of one server
 * (e.g. "relay/login-key"), so one store serves several. A shared store fails with `E`
 * (TokenStoreUnavailable) while it cannot be reached; process memory never fails.
 */
export interface TokensService<E = TokenStoreUnavailable> {
  /** Stores `value` under a fresh random token for `ttl`; `index` names it for `revokeIndexed`. */
  readonly issue: (kind: string, value: string, ttl: Duration.Duration, index?: string) => Effect.Effect<string, E>
  /** `issue` on the spot, for stores that answer without I/O (process memory); absent: use `issue`. */
  readonly issueNow?: (kind: string, value: string, ttl: Duration.Duration, index?: string) => string
  /** The value of a live token, consuming it: a second take of the same token finds nothing. */
  readonly take: (kind: string, token: string) => Effect.Effect<Option.Option<string>, E>
  /** `take` on the spot, for stores that answer without I/O (process memory); absent: use `take`. */
  readonly takeNow?: (kind: string, token: string) => Option.Option<string>
  /** The value of a live token; with `slide`, its expiry moves to now + slide (sliding sessions). */
  readonly get: (kind: string, token: string, slide?: Duration.Duration) => Effect.Effect<Option.Option<string>, E>
  /** Ends a token; false when it was not live. */
  readonly revoke: (kind: string, token: string) => Effect.Effect<boolean, E>
  /** Ends the token issued with this `index`, without a scan; false when there is none. */
  readonly revokeIndexed: (kind: string, index: string) => Effect.Effect<boolean, E>
  /** `revokeIndexed` on the spot, for stores that answer without I/O (process memory); absent: use `revokeIndexed`. */
  readonly revokeIndexedNow?: (kind: string, index: string) => boolean
  /** Tokens of a kind currently held (expired ones count until the next sweep). */
  readonly count: (kind: string) => Effect.Effect<number, E>
}

export class Tokens extends Context.Tag("switchboard/Tokens")<Tokens, TokensService>() {}
