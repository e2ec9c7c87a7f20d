import { Duration, Effect, Option, Schema } from "effect"
import { Tokens } from "../../layers/Tokens/Tokens.ts"

/**
 * Single-use login keys: a relay issues one per reserved login and the client presents it once
 * when it connects. A key is a 128-bit token of the Tokens Tag, lives `ttl` (10 s by default),
 * and is gone after its first use, whether that use succeeds or not. The grant is stored as JSON
 * and decoded with its schema when the key is used.
 */
export interface LoginKeys<G> {
  /** A fresh key bound to `grant`. */
  readonly issue: (grant: G) => Effect.Effect<string>
  /** The grant of a live, unused key, consuming it; None for unknown, used or expired keys. */
  readonly consume: (key: string) => Effect.Effect<Option.Option<G>>
  /** Keys currently held (expired ones count until the next sweep). */
  readonly count: Effect.Effect<number>
}

export interface LoginKeyOptions {
  /** Separates these keys from other tokens in a shared store. */
  readonly kind: string
  readonly ttl: Duration.DurationInput
}

export const makeLoginKeys = <G, I>(
  grant: Schema.Schema<G, I>,
  options: LoginKeyOptions
): Effect.Effect<LoginKeys<G>, never, Tokens> =>
  Effect.gen(function* () {
    const tokens = yield* Tokens
    const codec = Schema.parseJson(grant)
    const encode = Schema.encodeSync(codec)
    const decode = Schema.decodeUnknownOption(codec)
    const ttl = Duration.decode(options.ttl)
    return {
      issue: (value) => tokens.issue(options.kind, encode(value), ttl),
      consume: (key) => Effect.map(tokens.take(options.kind, key), Option.flatMap(decode)),
      count: tokens.count(options.kind)
    }
  })
