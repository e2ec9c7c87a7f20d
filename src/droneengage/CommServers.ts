import type { KeyObject } from "node:crypto"
import { type Duration, Effect, Either, Option, PubSub, Queue, Redacted, type Scope } from "effect"
import { hostingOf, makeLoginPlacement, NoCommServer, type Relay, type Reservation } from "./LoginPlacement.ts"
import { decodeRelayToAuthFast } from "./S2SFast.ts"
import {
  encodeAuthToRelay,
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
import { accept, type WebSocketProtocol } from "../../layers/Transport/Transport.ts"

export { NoCommServer, type Reservation } from "./LoginPlacement.ts"

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

    const { reserve, reserveNow } = yield* makeLoginPlacement(relays, options.replyTimeout)

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
