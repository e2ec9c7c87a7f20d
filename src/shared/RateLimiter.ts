import { Duration, Effect, Option, type Scope } from "effect"
import { type SharedLimiter, SharedLimits } from "../../layers/Cluster/Counters.ts"
import { repeatEvery } from "./Sweeps.ts"
import { fullBucket, isRefilled, takeToken, type TokenBucket } from "./TokenBucket.ts"

export interface RateOptions {
  /** Tokens that accrue per second. */
  readonly ratePerSecond: number
  /** Most tokens a key can hold (the burst it may spend at once). */
  readonly burst: number
}

export interface KeyedLimiterOptions extends RateOptions {
  /** A key refused `strikes` times in a row is blocked for `blockFor` (no block when absent). */
  readonly blockFor?: Duration.DurationInput
  readonly strikes?: number
}

/**
 * Token buckets per key (an address, an account): logins, connection attempts, failed
 * credentials. One sweep forgets full buckets and ended blocks, so memory follows the keys that
 * are active now, not every key ever seen.
 */
export interface KeyedLimiter {
  /** Takes one token for `key`; false when the key is blocked or out of tokens. */
  readonly admit: (key: string, now: number) => boolean
  /** Blocks `key` now (for `blockFor`, or the given duration). */
  readonly block: (key: string, now: number, duration?: Duration.DurationInput) => void
  /** Seconds until `key` may try again (0 when it may now); for Retry-After. */
  readonly retryAfter: (key: string, now: number) => number
  /** Whether `key` is blocked now (refused whatever its tokens). */
  readonly isBlocked: (key: string, now: number) => boolean
}

interface KeyState {
  readonly bucket: TokenBucket
  strikes: number
  blockedUntil: number
}

/** Shared windows are at most 10 minutes (the Counters' bound) and at least a second (the sync period). */
const sharedWindowBounds = { min: 1000, max: 10 * 60 * 1000 }

/**
 * On a node of a Redis or NATS cluster (a SharedLimits service is there), the cluster-wide side of a
 * keyed limit: `burst` events per fixed window of the time the bucket takes to refill, so a client
 * spreading its attempts over nodes gets the same sustained rate and burst as on one. Undefined alone.
 */
const clusterLimit = (name: string, options: RateOptions) =>
  Effect.flatMap(Effect.serviceOption(SharedLimits), (shared) => {
    if (Option.isNone(shared)) return Effect.succeed<SharedLimiter | undefined>(undefined)
    const refillMillis = (options.burst / options.ratePerSecond) * 1000
    const window = Math.min(sharedWindowBounds.max, Math.max(sharedWindowBounds.min, Math.round(refillMillis)))
    return shared.value.make(`limit/${name}`, { limit: options.burst, window })
  })

export const makeKeyedLimiter = (
  name: string,
  options: KeyedLimiterOptions
): Effect.Effect<KeyedLimiter, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { ratePerSecond, burst } = options
    const blockMillis = options.blockFor === undefined ? 0 : Duration.toMillis(Duration.decode(options.blockFor))
    const strikes = options.strikes ?? 1
    const keys = new Map<string, KeyState>()
    const stateOf = (key: string, now: number) => {
      let state = keys.get(key)
      if (!state) keys.set(key, (state = { bucket: fullBucket(burst, now), strikes: 0, blockedUntil: 0 }))
      return state
    }
    const sweepInterval = Duration.max(Duration.millis(blockMillis), Duration.seconds(10))
    yield* repeatEvery(`${name} rate limits`, sweepInterval, (now) => {
      for (const [key, state] of keys) {
        if (state.blockedUntil <= now && isRefilled(state.bucket, now, ratePerSecond, burst)) keys.delete(key)
      }
    })
    const cluster = yield* clusterLimit(name, options)
    const block = (key: string, now: number, duration?: Duration.DurationInput) => {
      const millis = duration === undefined ? blockMillis : Duration.toMillis(Duration.decode(duration))
      stateOf(key, now).blockedUntil = now + millis
      cluster?.block(key, now + millis)
    }
    /** Until when `key` is blocked here or, on a cluster, on any node this one has heard of. */
    const blockedUntil = (key: string, now: number) =>
      Math.max(keys.get(key)?.blockedUntil ?? 0, cluster === undefined ? 0 : cluster.blockedUntil(key, now))
    return {
      admit: (key, now) => {
        const state = stateOf(key, now)
        if (state.blockedUntil > now || (cluster !== undefined && cluster.blockedUntil(key, now) > now)) return false
        if (takeToken(state.bucket, now, ratePerSecond, burst) && (cluster === undefined || cluster.admit(key, now))) {
          state.strikes = 0
          return true
        }
        if (blockMillis > 0 && ++state.strikes >= strikes) block(key, now)
        return false
      },
      block,
      retryAfter: (key, now) => {
        const until = blockedUntil(key, now)
        if (until > now) return Math.ceil((until - now) / 1000)
        const state = keys.get(key)
        if (!state) return 0
        const local = state.bucket.tokens >= 1 ? 0 : Math.ceil((1 - state.bucket.tokens) / ratePerSecond)
        return cluster === undefined ? local : Math.max(local, cluster.retryAfter(key, now))
      },
      isBlocked: (key, now) => blockedUntil(key, now) > now
    }
  })

export type Admission = "ok" | "limited" | "abusive"

/**
 * One connection's message budget: a bucket and the refusals in a row. A class, so a connection
 * holds one small object and the per-message check allocates nothing.
 */
export class ConnectionLimiter {
  private strikes = 0
  private readonly bucket: TokenBucket
  constructor(
    private readonly options: RateOptions & { readonly strikes: number },
    now: number
  ) {
    this.bucket = fullBucket(options.burst, now)
  }

  /** "abusive" after `strikes` refusals in a row: the caller closes the connection. */
  admit(now: number): Admission {
    if (takeToken(this.bucket, now, this.options.ratePerSecond, this.options.burst)) {
      this.strikes = 0
      return "ok"
    }
    return ++this.strikes >= this.options.strikes ? "abusive" : "limited"
  }
}
