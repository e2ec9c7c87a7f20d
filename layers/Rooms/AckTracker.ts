import { Effect, FiberMap, Schedule } from "effect"
import type { HydrogenSettings } from "../../src/hydrogen/Config.ts"
import type { Metrics } from "../Observability/Metrics.ts"
import type { PendingAck, Session } from "./HydrogenSession.ts"

/**
 * Guaranteed delivery for events sent with ack required: each is resent on a Schedule until the
 * client acks it or AckMaxAttempts sends went unanswered; then it is reported undeliverable
 * (metric + warning). Attempts count only sends that reached a socket: while a session is
 * detached its events wait for the client to resume, or for the session to expire.
 */
export const makeAckTracker = (settings: HydrogenSettings, metrics: typeof Metrics.Service) => {
  const pendingGauge = metrics.gauge("switchboard_hydrogen_acks_pending", "Events waiting for an ack")
  const redelivered = metrics.counter("switchboard_hydrogen_redeliveries_total", "Events resent because no ack came")
  const acked = metrics.counter("switchboard_hydrogen_acks_total", "Events acknowledged by clients")
  const undeliverable = metrics.counter("switchboard_hydrogen_undeliverable_total", "Events given up on without an ack", ["reason"])

  const giveUp = (session: Session, entry: PendingAck, reason: string) =>
    Effect.suspend(() => {
      if (!session.pending.delete(entry.id)) return Effect.void
      pendingGauge.dec()
      undeliverable.inc({ reason })
      return Effect.logWarning("event undeliverable").pipe(
        Effect.annotateLogs({ session: session.id, channel: entry.channel, event: entry.id, attempts: entry.attempts, reason })
      )
    })

  /** One scheduled step: resend, or give up once the attempts are spent. */
  const step = (session: Session, entry: PendingAck) =>
    Effect.suspend(() => {
      if (!session.pending.has(entry.id)) return Effect.succeed(false)
      if (entry.attempts >= settings.ackMaxAttempts) return giveUp(session, entry, "no_ack").pipe(Effect.as(false))
      if (session.send(entry.text)) {
        entry.attempts++
        redelivered.inc()
      }
      return Effect.succeed(true)
    })

  const redeliver = (session: Session, entry: PendingAck) =>
    Effect.repeat(step(session, entry), {
      schedule: Schedule.spaced(settings.ackRetryInterval),
      while: (again) => again
    }).pipe(Effect.delay(settings.ackRetryInterval), Effect.asVoid)

  return {
    /** Sends (if attached) and starts tracking; called synchronously from delivery. */
    track: (session: Session, id: string, channel: string, seq: number | undefined, text: string) => {
      if (session.pending.has(id)) return
      const entry: PendingAck = { id, channel, seq, text, attempts: session.send(text) ? 1 : 0 }
      session.pending.set(id, entry)
      pendingGauge.inc()
      session.runRedelivery(id, redeliver(session, entry))
    },
    ack: (session: Session, id: string) =>
      Effect.suspend(() => {
        if (!session.pending.delete(id)) return Effect.void
        pendingGauge.dec()
        acked.inc()
        return FiberMap.remove(session.redeliveries, id)
      }),
    /**
     * After a resume: events the client reports as seen (seq at or below its position) count as
     * acked, events that the replay resends wait for their next retry, the rest go out now.
     */
    resumed: (session: Session, seen: ReadonlyMap<string, number>, replayed: ReadonlySet<string>) =>
      Effect.forEach([...session.pending.values()], (entry) => {
        const position = seen.get(entry.channel)
        if (entry.seq !== undefined && position !== undefined && entry.seq <= position) {
          session.pending.delete(entry.id)
          pendingGauge.dec()
          acked.inc()
          return FiberMap.remove(session.redeliveries, entry.id)
        }
        if (!(entry.seq !== undefined && replayed.has(entry.channel)) && session.send(entry.text)) entry.attempts++
        return Effect.void
      }, { discard: true }),
    /** The session ended: whatever is still pending is undeliverable. */
    abandonAll: (session: Session, reason: string) =>
      Effect.forEach([...session.pending.values()], (entry) => giveUp(session, entry, reason), { discard: true })
  }
}

export type AckTracker = ReturnType<typeof makeAckTracker>
