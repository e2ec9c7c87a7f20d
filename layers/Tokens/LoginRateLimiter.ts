import { Clock, type Duration, Effect, type Scope } from "effect"
import { millisOf } from "./TokenTable.ts"

/** Allows `max` attempts per key (an IP address) per fixed window; `attempt` says whether this one may go ahead. */
export interface RateLimiter {
  readonly attempt: (key: string) => Effect.Effect<boolean>
}

export const makeRateLimiter = (options: { readonly max: number; readonly window: Duration.DurationInput }): Effect.Effect<RateLimiter, never, Scope.Scope> =>
  Effect.gen(function* () {
    const window = millisOf(options.window)
    const windows = new Map<string, { start: number; count: number }>()
    // Forget keys whose window has passed, so the map does not grow with every address ever seen.
    yield* Effect.gen(function* () {
      yield* Effect.sleep(options.window)
      const now = yield* Clock.currentTimeMillis
      for (const [key, entry] of windows) if (now - entry.start >= window) windows.delete(key)
    }).pipe(Effect.forever, Effect.interruptible, Effect.forkScoped)
    return {
      attempt: (key) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const entry = windows.get(key)
          if (!entry || now - entry.start >= window) {
            windows.set(key, { start: now, count: 1 })
            return true
          }
          entry.count++
          return entry.count <= options.max
        })
    }
  })
