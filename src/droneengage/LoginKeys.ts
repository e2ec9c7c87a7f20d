import { Duration, Effect, Option, Schema } from "effect"
import { type TokenStoreUnavailable, Tokens } from "../../layers/Tokens/Tokens.ts"

/**
 * Single-use login keys: a relay issues one per reserved login and the client presents it once
 * when it connects. A key is a 128-bit token of the Tokens Tag, lives `ttl` (10 s by default),
 * and is gone after its first use, whether that use succeeds or not. The grant is stored as JSON
 * (a shared store holds strings) and decoded with its schema when the key is used, unless this
 * process issued it: then the grant it was given is handed back as it is (no parse, no decode).
 */
export interface LoginKeys<G> {
  /** A fresh key bound to `grant`. */
  readonly issue: (grant: G) => Effect.Effect<string, TokenStoreUnavailable>
  /** `issue` on the spot when the token store answers without I/O; absent: use `issue`. */
  readonly issueNow?: ((grant: G) => string) | undefined
  /** The grant of a live, unused key, consuming it; None for unknown, used or expired keys. */
  readonly consume: (key: string) => Effect.Effect<Option.Option<G>, TokenStoreUnavailable>
  /** `consume` on the spot when the token store answers without I/O; absent: use `consume`. */
  readonly consumeNow?: ((key: string) => Option.Option<G>) | undefined
  /** Keys currently held (expired ones count until the next sweep). */
  readonly count: Effect.Effect<number, TokenStoreUnavailable>
}

export interface LoginKeyOptions<G> {
  /** Separates these keys from other tokens in a shared store. */
  readonly kind: string
  readonly ttl: Duration.DurationInput
  /** A hand-written encoder giving exactly what the schema's JSON encoding gives (property-tested); else the schema's. */
  readonly encode?: (grant: G) => string
}

/** How many issued grants are kept as values (a key lives seconds; past this the oldest decode from JSON). */
const issuedCacheSize = 16_384

/** `grant` of `issue` must be a decoded value of the schema (what decoding its JSON gives back). */
export const makeLoginKeys = <G, I>(
  grant: Schema.Schema<G, I>,
  options: LoginKeyOptions<G>
): Effect.Effect<LoginKeys<G>, never, Tokens> =>
  Effect.gen(function* () {
    const tokens = yield* Tokens
    const codec = Schema.parseJson(grant)
    const encode = options.encode ?? Schema.encodeSync(codec)
    const decode = Schema.decodeUnknownOption(codec)
    const ttl = Duration.decode(options.ttl)
    // Grants this process issued, by their stored text, oldest first; a miss (evicted, another node's) decodes.
    const issued = new Map<string, G>()
    const remember = (text: string, value: G) => {
      if (issued.size >= issuedCacheSize) issued.delete(issued.keys().next().value!)
      issued.set(text, value)
    }
    const recall = (text: string): Option.Option<G> => {
      const value = issued.get(text)
      if (value === undefined) return decode(text)
      issued.delete(text)
      return Option.some(value)
    }
    return {
      issue: (value) => {
        const text = encode(value)
        return Effect.tap(tokens.issue(options.kind, text, ttl), () => remember(text, value))
      },
      issueNow:
        tokens.issueNow &&
        ((value) => {
          const text = encode(value)
          const key = tokens.issueNow!(options.kind, text, ttl)
          remember(text, value)
          return key
        }),
      consume: (key) => Effect.map(tokens.take(options.kind, key), Option.flatMap(recall)),
      consumeNow: tokens.takeNow && ((key) => Option.flatMap(tokens.takeNow!(options.kind, key), recall)),
      count: tokens.count(options.kind)
    }
  })
