import { Clock, Data, Duration, Effect, Either, Schedule, type Scope } from "effect"
import type { Connection } from "../../layers/Transport/Transport.ts"
import { type InfoData, type LoginReplyData, type LoginRequestData, newNonce } from "./S2S.ts"
import { encodeLogin } from "./S2SFast.ts"
import type { CommServers } from "./CommServers.ts"

/**
 * Placing logins on linked relays: which relay takes a login, LOGIN out, and each login settled once by the
 * relay's reply, the sweep of unanswered LOGINs or the relay's disconnect.
 */

/** Why a login could not be placed on a relay; the authenticator answers e 5 for all of them. */
export class NoCommServer extends Data.TaggedError("NoCommServer")<{ readonly reason: string }> {}

/** Where a reserved login goes: cs {f, g, h} of the login reply. */
export interface Reservation {
  readonly key: string
  readonly host: string
  readonly port: number
  readonly serverId: string
  /** The LOGIN request id; the relay names it again in LOGOUT when the unit leaves. */
  readonly requestId: string
}

export interface Hosting {
  readonly online: boolean
  readonly accounts: ReadonlySet<string>
  readonly units: number
}

/** One pass over an INFO: the account set (O(1) lookups per login) and the unit count. */
export const hostingOf = (info: InfoData): Hosting => {
  let units = 0
  for (const account in info.accountDetails) units += info.accountDetails[account]!.length
  return { online: info.isOnline, accounts: new Set(info.accounts), units }
}

export interface Relay {
  readonly connection: Connection<unknown>
  serverId: string
  authenticated: boolean
  nonce: string
  /** What the last INFO said, reduced to what login placement and health need. */
  hosting: Hosting | undefined
  /** LOGINs sent and not answered yet, by request id; past its deadline the sweep fails one. */
  readonly pending: Map<string, PendingLogin>
}

export interface PendingLogin {
  /** Called once: with the relay's reply, or the reason there will be none (timeout, relay gone). */
  readonly settle: (reply: Either.Either<LoginReplyData, NoCommServer>) => void
  /** Clock millis. */
  readonly deadline: number
}

/** How often unanswered LOGINs are checked: one sweep for all instead of a timer per login. */
const sweepInterval = (replyTimeout: Duration.Duration) => Duration.min(replyTimeout, Duration.seconds(1))

/** The authenticator's reserve and reserveNow over its linked relays, and the sweep (for the Scope's life). */
export const makeLoginPlacement = (
  relays: ReadonlySet<Relay>,
  replyTimeoutInput: Duration.DurationInput
): Effect.Effect<Pick<CommServers, "reserve" | "reserveNow">, never, Scope.Scope> =>
  Effect.gen(function* () {
    // Read on the spot by LOGINs placed without a fiber (the sweep's clock, TestClock in tests).
    const clock = yield* Effect.clock
    /** The relay already hosting the account, else the one hosting the fewest accounts: one pass over the relays. */
    const choose = (accountId: string): Relay | undefined => {
      let leastLoaded: { relay: Relay; accounts: number } | undefined
      for (const relay of relays) {
        const hosting = relay.hosting
        if (!relay.authenticated || !hosting?.online) continue
        if (hosting.accounts.has(accountId)) return relay
        if (!leastLoaded || hosting.accounts.size < leastLoaded.accounts)
          leastLoaded = { relay, accounts: hosting.accounts.size }
      }
      return leastLoaded?.relay
    }

    /** The reservation a relay's reply makes, or why it makes none. */
    const reservationOf = (
      relay: Relay,
      r: string,
      answer: LoginReplyData
    ): Either.Either<Reservation, NoCommServer> =>
      answer.e !== 0 || answer.f === undefined || answer.g === undefined || answer.h === undefined
        ? Either.left(new NoCommServer({ reason: `relay ${relay.serverId} refused the login (e ${answer.e})` }))
        : Either.right({ key: answer.f, host: answer.g, port: answer.h, serverId: relay.serverId, requestId: r })

    const noRelay = () => new NoCommServer({ reason: "no relay is online" })

    const newRequestId = () => newNonce().slice(0, 32)

    /** Sends LOGIN `r` to `relay`; its reply (or the reason there is none) goes to `settle`, once. */
    const place = (
      relay: Relay,
      r: string,
      request: Omit<LoginRequestData, "r">,
      now: number,
      settle: PendingLogin["settle"]
    ) => {
      relay.pending.set(r, { settle, deadline: now + replyTimeoutMillis })
      relay.connection.send(encodeLogin({ ...request, r }))
    }

    const reserve = (request: Omit<LoginRequestData, "r">): Effect.Effect<Reservation, NoCommServer> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const relay = choose(request.a)
        if (!relay) return Effect.fail(noRelay())
        return Effect.async<Reservation, NoCommServer>((resume) => {
          const r = newRequestId()
          place(relay, r, request, now, (reply) =>
            resume(Either.flatMap(reply, (answer) => reservationOf(relay, r, answer)))
          )
          return Effect.sync(() => relay.pending.delete(r))
        })
      })

    const reserveNow: CommServers["reserveNow"] = (request, done) => {
      const relay = choose(request.a)
      if (!relay) return done(Either.left(noRelay()))
      const r = newRequestId()
      place(relay, r, request, clock.unsafeCurrentTimeMillis(), (reply) =>
        done(Either.flatMap(reply, (answer) => reservationOf(relay, r, answer)))
      )
    }

    const replyTimeout = Duration.decode(replyTimeoutInput)
    const replyTimeoutMillis = Duration.toMillis(replyTimeout)
    /** Fails the LOGINs whose relay did not answer by their deadline (so within replyTimeout + one interval). */
    const sweepUnanswered = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      for (const relay of relays) {
        for (const [r, waiting] of relay.pending) {
          if (waiting.deadline > now) continue
          relay.pending.delete(r)
          waiting.settle(Either.left(new NoCommServer({ reason: `relay ${relay.serverId} did not answer in time` })))
        }
      }
    })
    yield* Effect.forkScoped(Effect.repeat(sweepUnanswered, Schedule.spaced(sweepInterval(replyTimeout))))

    return { reserve, reserveNow }
  })
