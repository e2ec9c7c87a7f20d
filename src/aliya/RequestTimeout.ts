import { Effect } from "effect"
import { makeStoreCall } from "../../layers/Storage/SqlDatabase.ts"
import { answer, type Answer, type Route } from "./ServiceHttp.ts"
import { Messages, reply, Status } from "./Wire.ts"

const unavailable = answer(reply(Status.unavailable, Messages.unavailable), 503)

/**
 * Bounds the requests of a manager or the token server by the SQL query timeout
 * (`aliya.storage.queryTimeoutMs`, see SqlQueryTimeout): a database that stops answering makes the
 * request answer 13 instead of hanging until its caller gives up. The storage wrapper leaves the
 * timed-out work running in the background (a transaction waiting for a connection cannot be
 * interrupted), so a write may still commit: the log says its outcome is unknown. The bound is
 * the whole request's, so an account check's wait for the password-hash queue counts too.
 */
export const makeRequestBound = Effect.map(makeStoreCall, (storeCall) => {
  const bound =
    (part: string, path: string) =>
    <R>(request: Effect.Effect<Answer, never, R>): Effect.Effect<Answer, never, R> =>
      storeCall(`aliya ${part} ${path}`)(request).pipe(
        Effect.catchAll((error) =>
          Effect.logError(`${error.message} (outcome unknown: a write it began may still commit)`).pipe(
            Effect.as(unavailable)
          )
        )
      )
  /** Every route of `routes`, bounded. */
  const routes = <R>(part: string, all: Record<string, Route<R>>): Record<string, Route<R>> =>
    Object.fromEntries(
      Object.entries(all).map(([path, route]): [string, Route<R>] => [
        path,
        (body, call) => bound(part, path)(route(body, call))
      ])
    )
  return { bound, routes }
})
