import { Cause, Clock, type Duration, Effect, Schedule, type Scope } from "effect"

/** Runs `task` every `interval` for as long as the surrounding Scope lives; a failure is logged, the timer goes on. */
export const repeatEvery = (
  name: string,
  interval: Duration.DurationInput,
  task: (now: number) => Effect.Effect<void, unknown> | void
): Effect.Effect<void, never, Scope.Scope> => {
  const failed = (cause: Cause.Cause<unknown>) => Effect.logError(`${name} sweep failed`, Cause.pretty(cause))
  const run = Effect.flatMap(Clock.currentTimeMillis, (now) => task(now) ?? Effect.void).pipe(
    Effect.catchAllCause(failed)
  )
  return Effect.asVoid(Effect.forkScoped(Effect.repeat(run, Schedule.spaced(interval)).pipe(Effect.delay(interval))))
}

/**
 * One server-wide timer in place of a fiber per connection or session: every `interval` the
 * sweep visits the members of `members` (only those that need it: callers keep the set to the
 * connections or sessions with something to check). A visit does its work synchronously and
 * returns an Effect only for what must log or wait; a failing visit is logged, the sweep goes on.
 */
export const sweepEvery = <T>(
  name: string,
  interval: Duration.DurationInput,
  members: ReadonlySet<T>,
  visit: (member: T, now: number) => Effect.Effect<void> | void
): Effect.Effect<void, never, Scope.Scope> => {
  const failed = (cause: Cause.Cause<unknown>) => Effect.logError(`${name} sweep: a visit failed`, Cause.pretty(cause))
  const sweep = Effect.gen(function* () {
    if (members.size === 0) return
    const now = yield* Clock.currentTimeMillis
    // Visits may remove members (or add them): a snapshot keeps each sweep to the members it started with.
    for (const member of [...members]) {
      const pending = visit(member, now)
      if (pending) yield* Effect.catchAllCause(pending, failed)
    }
  }).pipe(Effect.catchAllCause(failed))
  return Effect.asVoid(Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(interval)).pipe(Effect.delay(interval))))
}
