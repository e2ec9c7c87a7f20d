import { Clock, type Duration, Effect, type Option, type Scope } from "effect"
import { millisOf, optionOf, randomToken, sweepEvery, TokenTable } from "../../layers/Tokens/TokenTable.ts"

/**
 * Login sessions (the DroneEngage `sid`): a 128-bit random id mapped to what the login proved.
 * Sessions expire `ttl` after creation (fixed) or after their last use (sliding).
 */
export interface Sessions<S> {
  readonly create: (data: S) => Effect.Effect<string>
  /** The session's data if it is live; a sliding session's expiry moves forward. */
  readonly get: (sid: string) => Effect.Effect<Option.Option<S>>
  /** Ends one session; false if it was not live. */
  readonly end: (sid: string) => Effect.Effect<boolean>
  /** Ends every session whose data matches; returns how many. */
  readonly endWhere: (predicate: (data: S) => boolean) => Effect.Effect<number>
  /** Ends the session whose `index(data)` is `key`, without a scan (needs SessionOptions.index); false if none. */
  readonly endIndexed: (key: string) => Effect.Effect<boolean>
  readonly size: () => number
}

export interface SessionOptions<S = unknown> {
  readonly ttl: Duration.DurationInput
  /** true: expiry is ttl after the last use; false: ttl after creation. */
  readonly sliding: boolean
  readonly sweepInterval?: Duration.DurationInput
  /** A key unique per session (e.g. the login request id) that `endIndexed` finds the session by. */
  readonly index?: (data: S) => string
}

export const makeSessions = <S>(options: SessionOptions<S>): Effect.Effect<Sessions<S>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const table = new TokenTable<S>(options.index)
    const ttl = millisOf(options.ttl)
    yield* sweepEvery(table, options.sweepInterval ?? "1 minute")
    return {
      create: (data) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const sid = randomToken()
          table.insert(sid, data, now + ttl)
          return sid
        }),
      get: (sid) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const entry = table.find(sid, now)
          if (entry && options.sliding) entry.expiresAt = now + ttl
          return optionOf(entry)
        }),
      end: (sid) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const live = table.find(sid, now) !== undefined
          table.delete(sid)
          return live
        }),
      endWhere: (predicate) => Effect.sync(() => table.deleteWhere(predicate)),
      endIndexed: (key) => Effect.sync(() => table.deleteByIndex(key)),
      size: () => table.size
    }
  })
