import { Clock, Context, Deferred, Duration, Effect, Layer, type Scope } from "effect"
import { repeatEvery } from "../../src/shared/Sweeps.ts"
import { type BrokerUnavailable, ClusterBroker, maxCounterWindowMillis } from "./Broker.ts"

/**
 * Counters every node of a cluster adds to (rate limits per client, id allocation). The memory
 * one counts in this process (the default); the broker one is Redis INCRBY + PEXPIRE or a NATS KV
 * compare-and-set. Not for a per-message path: `SharedLimiter` batches its adds.
 */
export interface CountersService {
  /**
   * Adds `by` to `key` and returns the total. With `window` the count lasts that long from its first
   * add, then starts again from zero (at most 10 minutes); without, it lasts.
   */
  readonly add: (key: string, by: number, window?: Duration.DurationInput) => Effect.Effect<number, BrokerUnavailable>
  /**
   * A monotonic maximum: sets `key` to `value` when greater, atomically; returns the value before
   * (-1 when none). `lasting` says how long the value matters (the store may forget it after).
   */
  readonly raise: (
    key: string,
    value: number,
    lasting?: Duration.DurationInput
  ) => Effect.Effect<number, BrokerUnavailable>
}

export class Counters extends Context.Tag("switchboard/Counters")<Counters, CountersService>() {}

const windowMillisOf = (window: Duration.DurationInput | undefined) => {
  if (window === undefined) return undefined
  const millis = Duration.toMillis(Duration.decode(window))
  if (millis > maxCounterWindowMillis) throw new RangeError(`counter windows are at most ${maxCounterWindowMillis} ms`)
  return Math.max(1, Math.round(millis))
}

export const makeMemoryCounters = (): CountersService => {
  const counts = new Map<string, { n: number; until: number }>()
  const maxima = new Map<string, number>()
  return {
    raise: (key, value) =>
      Effect.sync(() => {
        const previous = maxima.get(key) ?? -1
        if (value > previous) maxima.set(key, value)
        return previous
      }),
    add: (key, by, window) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const millis = windowMillisOf(window)
        const current = counts.get(key)
        if (current === undefined || current.until <= now) {
          // A lasting count has no end; expired windows are replaced, so the map holds the keys in use.
          counts.set(key, { n: by, until: millis === undefined ? Number.POSITIVE_INFINITY : now + millis })
          return by
        }
        current.n += by
        return current.n
      })
  }
}

export const MemoryCountersLive = Layer.sync(Counters, makeMemoryCounters)

/** Counters on the cluster broker (needs a ClusterBroker). */
export const BrokerCountersLive = Layer.effect(
  Counters,
  Effect.map(
    ClusterBroker,
    (broker): CountersService => ({
      add: (key, by, window) => broker.counters.add(key, by, windowMillisOf(window)),
      raise: (key, value, lasting) =>
        broker.counters.raise(key, value, lasting === undefined ? undefined : Duration.toMillis(lasting))
    })
  )
)

export interface SharedLimitOptions {
  /** Events one key may have per window, across the cluster. */
  readonly limit: number
  /** The window (fixed, aligned to the epoch so every node names the same one); at most 10 minutes. */
  readonly window: Duration.DurationInput
  /** How often this node adds its events to the shared count and learns the others' (default 1 s). */
  readonly syncEvery?: Duration.DurationInput
}

/** A rate limit per key that holds across the nodes of a cluster. */
export interface SharedLimiter {
  /** Hot path, synchronous: counts one event of `key`; false when the key is over its limit in this window. */
  readonly admit: (key: string, now: number) => boolean
  /** The count this node knows for `key` in the window of `now`: the cluster's at the last sync plus its own since. */
  readonly known: (key: string, now: number) => number
  /** Seconds until `key` may pass again as far as this node knows (its window's end when over the limit, else 0). */
  readonly retryAfter: (key: string, now: number) => number
  /** Blocks `key` until `until` (epoch millis) on every node: the others learn it at their next sync. */
  readonly block: (key: string, until: number) => void
  /** Until when `key` is blocked as far as this node knows (0 when it is not). */
  readonly blockedUntil: (key: string, now: number) => number
  /** Completes when the sync after this call has finished (tests wait for it instead of for time). */
  readonly nextSync: Effect.Effect<Effect.Effect<void>>
}

interface KeyWindow {
  window: number
  /** The cluster's count at the last sync (this node's synced events included). */
  shared: number
  /** This node's events since the last sync. */
  pending: number
}

/**
 * A fixed-window limit per key on the shared Counters, kept off the hot path: `admit` decides from
 * the cluster's count as of the last sync plus this node's own events since, and a sweep adds the
 * local events to the shared counter every `syncEvery` and reads the total back. A key can overshoot
 * by what other nodes admitted since their last sync (at most nodes × syncEvery worth of events).
 * A sync that fails keeps the events for the next one, so the limit is per node while the broker is away.
 */
export const makeSharedLimiter = (
  name: string,
  options: SharedLimitOptions
): Effect.Effect<SharedLimiter, never, Counters | Scope.Scope> =>
  Effect.gen(function* () {
    const counters = yield* Counters
    const windowMillis = windowMillisOf(options.window)!
    const keys = new Map<string, KeyWindow>()
    /** Blocks this node set or learnt: key → until. */
    const blocks = new Map<string, number>()
    const windowOf = (now: number) => Math.floor(now / windowMillis)
    let syncWaiters: Array<Deferred.Deferred<void>> = []

    const syncCount = (now: number) =>
      Effect.forEach(
        [...keys],
        ([key, state]): Effect.Effect<void> => {
          if (state.window !== windowOf(now)) return Effect.sync(() => void keys.delete(key))
          const adding = state.pending
          state.pending = 0
          return counters.add(`${name}/${key}/${state.window}`, adding, windowMillis).pipe(
            Effect.tap((total) => Effect.sync(() => void (state.shared = total))),
            Effect.catchAll(() => Effect.sync(() => void (state.pending += adding)))
          )
        },
        { discard: true }
      )
    // A block is the cluster's maximum "until" of the key: this node raises it with its own and reads
    // the others', for every key it blocked or saw in this window.
    const syncBlocks = (now: number) =>
      Effect.forEach(
        [...new Set([...keys.keys(), ...blocks.keys()])],
        (key): Effect.Effect<void> => {
          const own = blocks.get(key) ?? -1
          if (own !== -1 && own <= now) blocks.delete(key)
          const raising = own > now ? own : -1
          // Always "lasting", so every node reads where blocks are kept (NATS: the 10-minute bucket).
          return counters.raise(`${name}/block/${key}`, raising, raising > now ? raising - now : windowMillis).pipe(
            Effect.tap((previous) =>
              Effect.sync(() => {
                const until = Math.max(previous, raising, blocks.get(key) ?? -1)
                if (until > now) blocks.set(key, until)
              })
            ),
            Effect.ignore
          )
        },
        { discard: true }
      )
    const sync = (now: number): Effect.Effect<void> =>
      Effect.zipRight(syncCount(now), syncBlocks(now)).pipe(
        Effect.ensuring(
          Effect.suspend(() => {
            const waiters = syncWaiters
            syncWaiters = []
            return Effect.forEach(waiters, (waiter) => Deferred.succeed(waiter, undefined), { discard: true })
          })
        )
      )
    yield* repeatEvery(`${name} shared limits`, options.syncEvery ?? "1 second", sync)
    const known = (key: string, now: number) => {
      const state = keys.get(key)
      return state === undefined || state.window !== windowOf(now) ? 0 : state.shared + state.pending
    }

    return {
      admit: (key, now) => {
        const window = windowOf(now)
        let state = keys.get(key)
        if (state === undefined || state.window !== window) keys.set(key, (state = { window, shared: 0, pending: 0 }))
        if (state.shared + state.pending >= options.limit) return false
        state.pending++
        return true
      },
      known,
      retryAfter: (key, now) =>
        known(key, now) < options.limit ? 0 : Math.ceil(((windowOf(now) + 1) * windowMillis - now) / 1000),
      block: (key, until) => {
        if (until > (blocks.get(key) ?? 0)) blocks.set(key, until)
      },
      blockedUntil: (key, now) => {
        const until = blocks.get(key) ?? 0
        return until > now ? until : 0
      },
      nextSync: Effect.map(Deferred.make<void>(), (waiter) => {
        syncWaiters.push(waiter)
        return Deferred.await(waiter)
      })
    }
  })

/**
 * Makes shared limiters on this cluster's Counters: present only on a node of a Redis or NATS
 * cluster, so a per-client limit (`makeKeyedLimiter`) holds across nodes there and stays local alone.
 */
export class SharedLimits extends Context.Tag("switchboard/SharedLimits")<
  SharedLimits,
  { readonly make: (name: string, options: SharedLimitOptions) => Effect.Effect<SharedLimiter, never, Scope.Scope> }
>() {}

/** SharedLimits on the Counters it is given (BrokerCountersLive on a cluster). */
export const SharedLimitsLive = Layer.effect(
  SharedLimits,
  Effect.map(Effect.context<Counters>(), (counters) => ({
    make: (name: string, options: SharedLimitOptions) => makeSharedLimiter(name, options).pipe(Effect.provide(counters))
  }))
)
