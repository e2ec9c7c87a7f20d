import type { KeyObject } from "node:crypto"
import { Clock, Data, Duration, Effect, Either, Option, PubSub, Queue, Redacted, Schedule, type Scope } from "effect"
import { decodeRelayToAuthFast, encodeLogin } from "./S2SFast.ts"
import {
  encodeAuthToRelay,
  type InfoData,
  type LoginReplyData,
  type LoginRequestData,
  type LogoutData,
  newNonce,
  type RelayToAuth,
  verifyChallenge,
  verifyChallengeEd25519
} from "./S2S.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { accept, type Connection, type WebSocketProtocol } from "../../layers/Transport/Transport.ts"

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

export interface CommServerOptions {
  readonly serverName: string
  readonly secret: Option.Option<Redacted.Redacted<string>>
  /** Relay server id → its Ed25519 public key; such a relay must sign the nonce with its key. */
  readonly trustedKeys: ReadonlyMap<string, KeyObject>
  /** INSECURE compat: accept relays that skip the challenge. */
  readonly allowUnauthenticated: boolean
  readonly handshakeTimeout: Duration.DurationInput
  readonly replyTimeout: Duration.DurationInput
  /** A relay reports that a unit disconnected. */
  readonly onLogout: (logout: LogoutData, serverId: string) => Effect.Effect<void>
  /** The same on the spot; false when it needs `onLogout` (a store with I/O). Absent: always `onLogout`. */
  readonly onLogoutNow?: ((logout: LogoutData, serverId: string) => boolean) | undefined
}

interface Hosting {
  readonly online: boolean
  readonly accounts: ReadonlySet<string>
  readonly units: number
}

/** One pass over an INFO: the account set (O(1) lookups per login) and the unit count. */
const hostingOf = (info: InfoData): Hosting => {
  let units = 0
  for (const account in info.accountDetails) units += info.accountDetails[account]!.length
  return { online: info.isOnline, accounts: new Set(info.accounts), units }
}

interface Relay {
  readonly connection: Connection<unknown>
  serverId: string
  authenticated: boolean
  nonce: string
  /** What the last INFO said, reduced to what login placement and health need. */
  hosting: Hosting | undefined
  /** LOGINs sent and not answered yet, by request id; past its deadline the sweep fails one. */
  readonly pending: Map<string, PendingLogin>
}

interface PendingLogin {
  /** Called once: with the relay's reply, or the reason there will be none (timeout, relay gone). */
  readonly settle: (reply: Either.Either<LoginReplyData, NoCommServer>) => void
  /** Clock millis. */
  readonly deadline: number
}

/** How often unanswered LOGINs are checked: one sweep for all instead of a timer per login. */
const sweepInterval = (replyTimeout: Duration.Duration) => Duration.min(replyTimeout, Duration.seconds(1))

export interface CommServerStatus {
  readonly serverId: string
  readonly online: boolean
  readonly accounts: number
  readonly units: number
}

/** What happened on the S2S listener: a relay linked, reported INFO, logged a unit out, was refused or left. */
export type CommServerEvent =
  | { readonly _tag: "Linked" | "Info" | "Left"; readonly serverId: string }
  | { readonly _tag: "Logout"; readonly serverId: string; readonly logout: LogoutData }
  | { readonly _tag: "Refused"; readonly code: number; readonly reason: string }

/** The authenticator's registry of linked relays. */
export interface CommServers {
  readonly protocol: WebSocketProtocol<null>
  /** Sends LOGIN to the chosen relay and waits for its key. */
  readonly reserve: (request: Omit<LoginRequestData, "r">) => Effect.Effect<Reservation, NoCommServer>
  /**
   * The same without a fiber: LOGIN is sent on the spot and `done` is called once, from the relay's reply, the
   * sweep of unanswered LOGINs or the relay's disconnect (or at once when no relay is online).
   */
  readonly reserveNow: (
    request: Omit<LoginRequestData, "r">,
    done: (reserved: Either.Either<Reservation, NoCommServer>) => void
  ) => void
  /** Authenticated relays and what their last INFO said. */
  readonly status: () => ReadonlyArray<CommServerStatus>
  /** Events for as long as the caller's Scope lives. */
  readonly events: Effect.Effect<Queue.Dequeue<CommServerEvent>, never, Scope.Scope>
  /** Completes with the status once `holds` is true of it (now or after some event). */
  readonly awaitStatus: (
    holds: (status: ReadonlyArray<CommServerStatus>) => boolean
  ) => Effect.Effect<ReadonlyArray<CommServerStatus>>
}

/**
 * The authenticator's side of the server-to-server link: accepts relays on the S2S port,
 * authenticates them with an HMAC challenge, keeps their INFO, and reserves logins on them.
 */
export const makeCommServers = (options: CommServerOptions): Effect.Effect<CommServers, never, Metrics | Scope.Scope> =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    const label = { server: options.serverName }
    const linked = metrics
      .gauge("switchboard_de_s2s_relays", "Authenticated relays linked to this authenticator", ["server"])
      .labels(label)
    const refused = metrics.counter(
      "switchboard_de_s2s_refused_total",
      "Relay links refused (bad or missing credentials)",
      ["server", "reason"]
    )
    const relays = new Set<Relay>()
    const secret = Option.map(options.secret, Redacted.value)
    // Read on the spot by LOGINs placed without a fiber (the sweep's clock, TestClock in tests).
    const clock = yield* Effect.clock
    const events = yield* PubSub.unbounded<CommServerEvent>()
    const emit = (event: CommServerEvent) => PubSub.publish(events, event)
    /** The unbounded PubSub never refuses, so offering on the spot is the same as publishing. */
    const emitNow = (event: CommServerEvent) => void events.unsafeOffer(event)

    const refuse = (relay: Relay, reason: string, code: number) =>
      Effect.logWarning(`refusing relay link: ${reason}`).pipe(
        Effect.annotateLogs({
          server: options.serverName,
          remote: relay.connection.remoteAddress,
          serverId: relay.serverId
        }),
        Effect.zipRight(
          Effect.sync(() => {
            refused.labels({ ...label, reason: code === CloseCodes.handshakeTimeout ? "timeout" : "credentials" }).inc()
            relay.connection.close(code, reason)
          })
        ),
        Effect.zipRight(emit({ _tag: "Refused", code, reason }))
      )

    const admit = (relay: Relay, serverId: string) =>
      Effect.sync(() => {
        relay.authenticated = true
        relay.serverId = serverId
        linked.inc()
        relay.connection.send(encodeAuthToRelay({ s2s_auth: "ok" }))
      }).pipe(
        Effect.zipRight(
          Effect.logInfo(`relay ${serverId} linked`).pipe(Effect.annotateLogs("remote", relay.connection.remoteAddress))
        ),
        Effect.zipRight(emit({ _tag: "Linked", serverId }))
      )

    /** A relay with a trusted Ed25519 key must sign with it; any other proves the shared secret. */
    const proves = (serverId: string, nonce: string, signature: string) => {
      const publicKey = options.trustedKeys.get(serverId)
      if (publicKey) return Effect.sync(() => verifyChallengeEd25519(publicKey, nonce, signature))
      if (Option.isNone(secret)) return Effect.succeed(false)
      // A signature that cannot even be checked (malformed base64, crypto failure) proves nothing.
      return Effect.tryPromise(() => verifyChallenge(secret.value, serverId, nonce, signature)).pipe(
        Effect.orElseSucceed(() => false)
      )
    }

    const settleReply = (relay: Relay, reply: LoginReplyData) => {
      const waiting = relay.pending.get(reply.r)
      if (!waiting) return
      relay.pending.delete(reply.r)
      waiting.settle(Either.right(reply))
    }

    /**
     * An authenticated relay's LOGIN reply, INFO or LOGOUT handled on the spot (no fiber per frame); false when the
     * frame needs the Effect path (authentication, unreadable frames, a LOGOUT the sessions cannot end on the spot).
     */
    const handledNow = (relay: Relay, decoded: Either.Either<RelayToAuth, string>): boolean => {
      if (!relay.authenticated || Either.isLeft(decoded)) return false
      const frame = decoded.right
      if (!("c" in frame)) return false
      switch (frame.c) {
        case "b":
          settleReply(relay, frame.d)
          return true
        case "a":
          relay.hosting = hostingOf(frame.d)
          emitNow({ _tag: "Info", serverId: relay.serverId })
          return true
        case "c":
          if (!options.onLogoutNow?.(frame.d, relay.serverId)) return false
          emitNow({ _tag: "Logout", serverId: relay.serverId, logout: frame.d })
          return true
      }
    }

    const handle = (relay: Relay, decoded: Either.Either<RelayToAuth, string>) =>
      Effect.gen(function* () {
        if (Either.isLeft(decoded)) {
          if (!relay.authenticated)
            return yield* refuse(relay, "unreadable frame before authentication", CloseCodes.unauthorized)
          return yield* Effect.logWarning("relay sent an unreadable frame; ignored").pipe(
            Effect.annotateLogs("serverId", relay.serverId)
          )
        }
        const frame = decoded.right
        if ("s2s_auth" in frame) {
          if (relay.authenticated) return
          const ok = yield* proves(frame.id, relay.nonce, frame.sig)
          return yield* ok
            ? admit(relay, frame.id)
            : refuse(relay, `bad challenge signature from ${frame.id}`, CloseCodes.unauthorized)
        }
        if (!relay.authenticated) {
          if (!options.allowUnauthenticated)
            return yield* refuse(relay, "frame before authentication", CloseCodes.unauthorized)
          yield* Effect.logWarning("INSECURE: accepting an unauthenticated relay (allowUnauthenticatedServers)")
          yield* admit(relay, frame.c === "a" ? frame.d.serverId : "unauthenticated")
        }
        switch (frame.c) {
          case "a":
            relay.hosting = hostingOf(frame.d)
            return yield* emit({ _tag: "Info", serverId: relay.serverId })
          case "b":
            // Only reached for an unauthenticated relay's first frame (compat mode); handledNow takes the rest.
            return settleReply(relay, frame.d)
          case "c":
            yield* options.onLogout(frame.d, relay.serverId)
            return yield* emit({ _tag: "Logout", serverId: relay.serverId, logout: frame.d })
        }
      })

    const protocol: WebSocketProtocol<null> = {
      upgrade: () => Effect.succeed(accept(null)),
      open: (connection) =>
        Effect.gen(function* () {
          const relay: Relay = {
            connection,
            serverId: "?",
            authenticated: false,
            nonce: newNonce(),
            hosting: undefined,
            pending: new Map()
          }
          relays.add(relay)
          yield* Effect.addFinalizer(() =>
            Effect.gen(function* () {
              relays.delete(relay)
              if (relay.authenticated) {
                linked.dec()
                yield* Effect.logWarning(`relay ${relay.serverId} disconnected`)
                yield* emit({ _tag: "Left", serverId: relay.serverId })
              }
              const waiting = [...relay.pending.values()]
              relay.pending.clear()
              for (const login of waiting) login.settle(Either.left(new NoCommServer({ reason: "relay disconnected" })))
            })
          )
          if (Option.isSome(secret) || options.trustedKeys.size > 0) {
            connection.send(encodeAuthToRelay({ s2s_auth: "challenge", nonce: relay.nonce }))
            yield* Effect.sleep(options.handshakeTimeout).pipe(
              Effect.zipRight(
                Effect.suspend(() =>
                  relay.authenticated
                    ? Effect.void
                    : refuse(relay, "no challenge response in time", CloseCodes.handshakeTimeout)
                )
              ),
              Effect.forkScoped
            )
          } else if (options.allowUnauthenticated) {
            // No secret: nothing to prove; the relay may go ahead (compat mode only).
            connection.send(encodeAuthToRelay({ s2s_auth: "ok" }))
          }
          return {
            onMessage: (message) => {
              if (typeof message === "string") {
                const decoded = decodeRelayToAuthFast(message)
                return handledNow(relay, decoded) ? undefined : handle(relay, decoded)
              }
              return relay.authenticated
                ? Effect.logWarning("relay sent a binary frame; ignored")
                : refuse(relay, "binary frame before authentication", CloseCodes.unauthorized)
            }
          }
        })
    }

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

    const replyTimeout = Duration.decode(options.replyTimeout)
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

    const status = (): ReadonlyArray<CommServerStatus> =>
      [...relays]
        .filter((relay) => relay.authenticated)
        .map((relay) => ({
          serverId: relay.serverId,
          online: relay.hosting?.online === true,
          accounts: relay.hosting?.accounts.size ?? 0,
          units: relay.hosting?.units ?? 0
        }))

    const awaitStatus = (holds: (status: ReadonlyArray<CommServerStatus>) => boolean) =>
      Effect.scoped(
        Effect.gen(function* () {
          // Subscribed before the first look, so no event between the look and the wait is missed.
          const changes = yield* PubSub.subscribe(events)
          while (!holds(status())) yield* Queue.take(changes)
          return status()
        })
      )

    const service: CommServers = {
      protocol,
      reserve,
      reserveNow,
      status,
      events: PubSub.subscribe(events),
      awaitStatus
    }
    return service
  })
