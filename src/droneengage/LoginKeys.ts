import { Clock, type Duration, Effect, type Option, type Scope } from "effect"
import { millisOf, optionOf, randomToken, sweepEvery, TokenTable } from "../../layers/Tokens/TokenTable.ts"

/**
 * Single-use login keys: a relay issues one per reserved login and the client presents it once
 * when it connects. A key is 128 random bits, lives `ttl` (10 s by default), and is gone after
 * its first use, whether that use succeeds or not.
 */
export interface LoginKeys<G> {
  /** A fresh key bound to `grant`. */
  readonly issue: (grant: G) => Effect.Effect<string>
  /** The grant of a live, unused key, consuming it; None for unknown, used or expired keys. */
  readonly consume: (key: string) => Effect.Effect<Option.Option<G>>
  /** Keys currently held (expired ones count until the next sweep). */
  readonly size: () => number
}

export interface LoginKeyOptions {
  readonly ttl: Duration.DurationInput
  /** How often expired keys are dropped; defaults to the ttl. */
  readonly sweepInterval?: Duration.DurationInput
}

export const makeLoginKeys = <G>(options: LoginKeyOptions): Effect.Effect<LoginKeys<G>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const table = new TokenTable<G>()
    const ttl = millisOf(options.ttl)
    yield* sweepEvery(table, options.sweepInterval ?? options.ttl)
    return {
      issue: (grant) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const key = randomToken()
          table.insert(key, grant, now + ttl)
          return key
        }),
      consume: (key) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const entry = table.find(key, now)
          table.delete(key)
          return optionOf(entry)
        }),
      size: () => table.size
    }
  })
