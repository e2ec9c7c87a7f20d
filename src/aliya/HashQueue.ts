import { Clock, Effect, Option } from "effect"

/** The header with which an internal caller says how long (ms, from sending) it will wait for the answer. */
export const WAIT_HEADER = "x-aliya-wait-ms"

/** What the caller of an internal request said about itself; absent in-process (the caller waits as long as it takes). */
export interface CallBudget {
  /** Milliseconds the caller waits from sending before it gives up on the answer. */
  readonly waitMillis: number
}

/** The budget carried by a request's WAIT_HEADER; undefined when absent or not a sane number. */
export const budgetOfHeader = (header: string | null): CallBudget | undefined => {
  if (header === null || !/^\d{1,7}$/.test(header)) return undefined
  return { waitMillis: Number(header) }
}

/** Left for the hash itself and the reply once a check is admitted: one argon2id check on a loaded box. */
export const HASH_ALLOWANCE_MILLIS = 1000

/**
 * The AccountManager's queue of password hashes: at most `permits` at once (argon2id takes ~19 MiB
 * each). A check that has waited so long that its caller will have given up before it could be
 * answered is refused (None) without hashing, and a check whose fiber is interrupted (its HTTP
 * request was aborted) leaves the queue, so a burst of logins never makes later ones wait behind
 * abandoned work.
 */
export const makeHashQueue = (permits: number, allowanceMillis = HASH_ALLOWANCE_MILLIS) => {
  const semaphore = Effect.unsafeMakeSemaphore(permits)
  let waiting = 0
  const run = <A, E, R>(work: Effect.Effect<A, E, R>, budget?: CallBudget): Effect.Effect<Option.Option<A>, E, R> =>
    Effect.flatMap(Clock.currentTimeMillis, (queuedAt) => {
      let admitted = false
      waiting++
      return semaphore
        .withPermits(1)(
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            admitted = true
            waiting--
            const late = budget !== undefined && now - queuedAt > budget.waitMillis - allowanceMillis
            return late ? Effect.succeedNone : Effect.asSome(work)
          })
        )
        .pipe(
          Effect.onInterrupt(() =>
            Effect.sync(() => {
              if (!admitted) waiting--
            })
          )
        )
    })
  /** Checks waiting for a permit now. */
  const queued = () => waiting
  return { run, queued }
}
