import { Clock, Deferred, Duration, Effect, FiberId, Option, SubscriptionRef } from "effect"
import type { HydrogenSettings } from "./Config.ts"
import { applicationError, authenticationError, ErrorCodes, type HydrogenError, protocolError } from "./Errors.ts"
import type { Identity } from "./Permissions.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import type { TokensService } from "../../layers/Tokens/Tokens.ts"
import type { AckTracker } from "./Acks.ts"
import type { RecoverFrom } from "./Recovery.ts"
import type { Channels, SubscribeResult } from "./Channels.ts"
import { type HydrogenConnection, Session } from "./Session.ts"
import { sweepEvery } from "../shared/Sweeps.ts"
import { sessionDigest } from "./SessionRecords.ts"

/** The Tokens kind of resume tokens (session ids). */
const resumeTokens = "hydrogen/session"
/** Revocation ends a resume token with its session; the lifetime only bounds what a leak could keep. */
const resumeTokenLifetime = Duration.days(30)
/** Who may resume a session: the same identity (kind and name). */
const ownerOf = (identity: Identity) => `${identity.kind}\u0000${identity.name}`

export interface ResumeResult {
  readonly session: Session
  readonly channels: Record<string, SubscribeResult>
}

/**
 * Sessions and their recovery. A session outlives its connection by RecoveryWindow; a client that
 * reconnects in time sends system/resume with the old session id and its last seen (epoch, seq)
 * per reliable channel, and gets its subscriptions back, exactly the events it missed (from
 * history), then live ones; its unacked events are resent. After the window the session ends and
 * its unacked events are reported undeliverable: one server-wide sweep (every second) visits the
 * detached sessions only.
 * A session's id is its resume token: issued and kept by the Tokens Tag (128 random bits, hashed
 * lookup, constant-time compare) with the owner's identity as its value, revoked when the session ends.
 */
export const makeSessions = (deps: {
  readonly settings: HydrogenSettings
  readonly channels: Channels
  readonly acks: AckTracker
  readonly metrics: typeof Metrics.Service
  readonly tokens: TokensService
}) =>
  Effect.gen(function* () {
    const { settings, channels, acks, tokens } = deps
    const sessions = new Map<string, Session>()
    /** Sessions waiting for a resume within the recovery window. */
    const detached = new Set<Session>()
    const windowMillis = Duration.toMillis(settings.recoveryWindow)
    const sessionGauge = deps.metrics.gauge(
      "switchboard_hydrogen_sessions",
      "Live sessions, attached or waiting for a resume"
    )
    const resumes = deps.metrics.counter("switchboard_hydrogen_resumes_total", "Session resume attempts", ["outcome"])
    const cluster = channels.cluster
    /** On a cluster node: sessions by the digest of their id, which is how other nodes name them on the bus. */
    const byDigest = new Map<string, Session>()
    const handovers = deps.metrics.counter(
      "switchboard_hydrogen_sessions_handed_over_total",
      "Sessions another node took over, counted once this node has let them go"
    )
    /** How many sessions this node has let go to other nodes: a signal to wait on, not to poll. */
    const handedOver = yield* SubscriptionRef.make(0)

    const create = (identity: Identity, connection: HydrogenConnection) =>
      Effect.map(tokens.issue(resumeTokens, ownerOf(identity), resumeTokenLifetime), (id) => {
        const session = new Session(id, identity, connection)
        held(session)
        return session
      })
    const held = (session: Session) => {
      sessions.set(session.id, session)
      sessionGauge.inc()
      if (cluster) byDigest.set(sessionDigest(session.id), session)
    }
    /** Forgets a session here; true when it was held. */
    const letGo = (session: Session) => {
      if (!sessions.delete(session.id)) return false
      detached.delete(session)
      sessionGauge.dec()
      if (cluster) byDigest.delete(sessionDigest(session.id))
      return true
    }

    /** Sessions this node is ending while it checks who holds them: a resume here waits for the answer. */
    const closing = new Map<string, Deferred.Deferred<void>>()
    /**
     * Ends a session here. On a cluster node another node may hold it now (its hand-over message was
     * lost): then it goes quietly. `retry`: when the broker cannot tell, the session waits (detached)
     * for the next sweep instead of ending as this node's.
     */
    const end = (session: Session, reason: string, retry = false) =>
      Effect.suspend(() => {
        if (!letGo(session)) return Effect.void
        if (!cluster) return ended(session, reason)
        const done = Deferred.unsafeMake<void>(FiberId.none)
        closing.set(session.id, done)
        return Effect.flatMap(cluster.close(session.id), (holder) => {
          if (holder === "elsewhere") return handedOverHere(session)
          if (holder === "held" || !retry) return ended(session, reason)
          return Effect.sync(() => {
            held(session)
            detached.add(session)
          })
        }).pipe(
          Effect.ensuring(
            Effect.suspend(() => {
              closing.delete(session.id)
              return Deferred.succeed(done, undefined)
            })
          )
        )
      })
    // A token the store could not revoke resumes nothing: no node holds its session, and a cluster's record is closed.
    const revokeResumeToken = (session: Session) =>
      Effect.catchTag(tokens.revoke(resumeTokens, session.id), "TokenStoreUnavailable", (error) =>
        Effect.logWarning("an ended session's resume token was not revoked: session store unavailable", error.reason)
      )
    /** The session ends for good: its token goes and its unacked events are undeliverable. */
    const ended = (session: Session, reason: string) =>
      Effect.all([revokeResumeToken(session), channels.forget(session), acks.abandonAll(session, reason)], {
        discard: true
      })
    /**
     * Another node holds the session now: its connection here closes as replaced (4004), and it goes
     * without revoking its token or its shared record (both are the other node's). Unacked events of
     * reliable channels are replayed there; the others are reported undeliverable (resumed_elsewhere).
     */
    const handedOverHere = (session: Session) =>
      // Subscriptions go first, while the connection is still there to leave the channel rooms.
      channels.forget(session).pipe(
        Effect.zipRight(
          Effect.suspend(() => {
            const connection = session.connection
            session.connection = undefined
            connection?.close(CloseCodes.replaced)
            return acks.handedOver(session)
          })
        ),
        // Counted last, so whoever waits on it sees the session fully gone from this node.
        Effect.zipRight(
          Effect.suspend(() => {
            handovers.inc()
            return SubscriptionRef.update(handedOver, (count) => count + 1)
          })
        )
      )

    yield* sweepEvery("recovery window", Duration.seconds(1), detached, (session, now) =>
      session.detachedAt !== undefined && now - session.detachedAt >= windowMillis
        ? end(session, "session_expired", true)
        : undefined
    )

    /** The connection is gone: keep the session for the recovery window, unless another connection took it. */
    const detach = (session: Session, connection: HydrogenConnection) =>
      Effect.zipRight(
        channels.disconnected(session, connection),
        Effect.suspend(() => {
          if (session.connection !== connection) return Effect.void
          session.connection = undefined
          // Nothing to give back on a resume: no reason to hold memory for the window.
          if (session.subscriptions.size === 0 && session.pending.size === 0) return end(session, "session_expired")
          if (windowMillis === 0) return end(session, "session_expired")
          return Effect.map(Clock.currentTimeMillis, (now) => {
            session.detachedAt = now
            detached.add(session)
          })
        })
      )

    const resumeTooLate = protocolError(ErrorCodes.invalidData, "resume must come before any subscribe on a connection")

    const resume = (
      current: Session,
      sessionId: string,
      positions: Readonly<Record<string, RecoverFrom>>
    ): Effect.Effect<ResumeResult, HydrogenError> =>
      Effect.gen(function* () {
        const owner = yield* Effect.catchTag(tokens.get(resumeTokens, sessionId), "TokenStoreUnavailable", () =>
          applicationError(ErrorCodes.storageUnavailable, "session store unavailable: resume again later")
        )
        let previous = Option.isSome(owner) ? sessions.get(sessionId) : undefined
        // A session held by another node (or by a node that died): taken over from the shared record.
        if (cluster && Option.isSome(owner) && !previous && owner.value === ownerOf(current.identity)) {
          if (current.subscriptions.size > 0) return yield* resumeTooLate
          previous = yield* takeOver(sessionId, current)
        }
        if (!previous || previous === current) {
          resumes.inc({ outcome: "unknown" })
          return yield* applicationError(
            ErrorCodes.sessionUnknown,
            "no such session (expired or never existed): subscribe again"
          )
        }
        if (Option.getOrThrow(owner) !== ownerOf(current.identity)) {
          resumes.inc({ outcome: "forbidden" })
          return yield* authenticationError(ErrorCodes.forbidden, "the session belongs to another identity")
        }
        if (current.subscriptions.size > 0) return yield* resumeTooLate
        const connection = current.connection!
        detached.delete(previous)
        previous.detachedAt = undefined
        const displaced = previous.connection
        previous.connection = connection
        if (displaced && displaced !== connection) displaced.close(CloseCodes.replaced)
        yield* end(current, "replaced_by_resume")

        const results: Record<string, SubscribeResult> = {}
        const seen = new Map<string, number>()
        const replayed = new Set<string>()
        for (const subscription of [...previous.subscriptions.values()]) {
          const position = channels.isReliable(subscription.channel) ? positions[subscription.channel] : undefined
          const result = yield* channels.subscribe(previous, {
            channel: subscription.channel,
            filter: subscription.filter,
            priority: subscription.priority,
            recover: position
          })
          results[subscription.channel] = result
          if (position && result.recovery?.recovered) {
            seen.set(subscription.channel, position.seq)
            if (result.recovery.replayed > 0) replayed.add(subscription.channel)
          }
        }
        yield* acks.resumed(previous, seen, replayed)
        resumes.inc({ outcome: "resumed" })
        return { session: previous, channels: results }
      })

    /** Rebuilds a session held elsewhere from its shared record, and tells the other nodes to let it go; undefined when it ended. */
    const takeOver = (sessionId: string, current: Session) =>
      Effect.gen(function* () {
        // This node is ending its copy right now: once it knows who holds the session, the record tells.
        const ending = closing.get(sessionId)
        if (ending) {
          yield* Deferred.await(ending)
          // Kept here: the broker could not say who holds it.
          const kept = sessions.get(sessionId)
          if (kept) return kept
        }
        const subscriptions = yield* cluster!.takeOver(sessionId)
        if (subscriptions === undefined) return undefined
        const session = new Session(sessionId, current.identity, current.connection!)
        for (const subscription of subscriptions) session.subscriptions.set(subscription.channel, subscription)
        held(session)
        yield* cluster!.took(sessionId)
        return session
      })

    // Another node took over one of ours (announced, or found in the record when the announcement was lost).
    if (cluster)
      yield* cluster.onTaken((digest) =>
        Effect.suspend(() => {
          const session = byDigest.get(digest)
          return session && letGo(session) ? handedOverHere(session) : Effect.void
        })
      )

    return {
      create,
      detach,
      resume,
      count: () => sessions.size,
      /** The count of sessions let go to other nodes: now, then after each handover (acks and connection gone). */
      handedOver: handedOver.changes
    }
  })

export type Sessions = Effect.Effect.Success<ReturnType<typeof makeSessions>>
