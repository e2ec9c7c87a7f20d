import { Clock, Duration, Effect } from "effect"
import type { HydrogenSettings } from "./Config.ts"
import { applicationError, authenticationError, ErrorCodes, type HydrogenError, protocolError } from "./Errors.ts"
import type { Identity } from "./Permissions.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import type { AckTracker } from "./Acks.ts"
import type { RecoverFrom } from "./Recovery.ts"
import type { Channels, SubscribeResult } from "./Channels.ts"
import { type HydrogenConnection, Session } from "./Session.ts"
import { sweepEvery } from "../shared/Sweeps.ts"

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
 */
export const makeSessions = (deps: {
  readonly settings: HydrogenSettings
  readonly channels: Channels
  readonly acks: AckTracker
  readonly metrics: typeof Metrics.Service
}) =>
  Effect.gen(function* () {
    const { settings, channels, acks } = deps
    const sessions = new Map<string, Session>()
    /** Sessions waiting for a resume within the recovery window. */
    const detached = new Set<Session>()
    const windowMillis = Duration.toMillis(settings.recoveryWindow)
    const sessionGauge = deps.metrics.gauge("switchboard_hydrogen_sessions", "Live sessions, attached or waiting for a resume")
    const resumes = deps.metrics.counter("switchboard_hydrogen_resumes_total", "Session resume attempts", ["outcome"])

    const create = (identity: Identity, connection: HydrogenConnection) =>
      Effect.sync(() => {
        const session = new Session(crypto.randomUUID(), identity, connection)
        sessions.set(session.id, session)
        sessionGauge.inc()
        return session
      })

    const end = (session: Session, reason: string) =>
      Effect.suspend(() => {
        if (!sessions.delete(session.id)) return Effect.void
        detached.delete(session)
        sessionGauge.dec()
        return Effect.zipRight(channels.forget(session), acks.abandonAll(session, reason))
      })

    yield* sweepEvery("recovery window", Duration.seconds(1), detached, (session, now) =>
      session.detachedAt !== undefined && now - session.detachedAt >= windowMillis ? end(session, "session_expired") : undefined)

    /** The connection is gone: keep the session for the recovery window, unless another connection took it. */
    const detach = (session: Session, connection: HydrogenConnection) =>
      Effect.zipRight(channels.disconnected(session, connection), Effect.suspend(() => {
        if (session.connection !== connection) return Effect.void
        session.connection = undefined
        // Nothing to give back on a resume: no reason to hold memory for the window.
        if (session.subscriptions.size === 0 && session.pending.size === 0) return end(session, "session_expired")
        if (windowMillis === 0) return end(session, "session_expired")
        return Effect.map(Clock.currentTimeMillis, (now) => {
          session.detachedAt = now
          detached.add(session)
        })
      }))

    const resume = (current: Session, sessionId: string, positions: Readonly<Record<string, RecoverFrom>>): Effect.Effect<ResumeResult, HydrogenError> =>
      Effect.gen(function* () {
        const previous = sessions.get(sessionId)
        if (!previous || previous === current) {
          resumes.inc({ outcome: "unknown" })
          return yield* applicationError(ErrorCodes.sessionUnknown, "no such session (expired or never existed): subscribe again")
        }
        if (previous.identity.name !== current.identity.name || previous.identity.kind !== current.identity.kind) {
          resumes.inc({ outcome: "forbidden" })
          return yield* authenticationError(ErrorCodes.forbidden, "the session belongs to another identity")
        }
        if (current.subscriptions.size > 0) {
          return yield* protocolError(ErrorCodes.invalidData, "resume must come before any subscribe on a connection")
        }
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
            channel: subscription.channel, filter: subscription.filter, priority: subscription.priority, recover: position
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

    return { create, detach, resume, count: () => sessions.size }
  })

export type Sessions = Effect.Effect.Success<ReturnType<typeof makeSessions>>
