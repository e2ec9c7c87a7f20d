import { Clock, Duration, Effect } from "effect"
import type { HydrogenSettings } from "./Config.ts"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import type { AckedEvent, PendingAck, Session } from "./Session.ts"
import { sweepEvery } from "../shared/Sweeps.ts"
import { eventOrdinal } from "./EventIds.ts"
import { plainAckIdStart, plainAckOrdinal } from "./Envelope.ts"

/**
 * Guaranteed delivery for events sent with ack required: each is resent on a Schedule until the
 * client acks it or AckMaxAttempts sends went unanswered; then it is reported undeliverable
 * (metric + warning). One server-wide sweep (every half AckRetryMs) visits only the sessions with
 * pending events and resends what has waited AckRetryMs, so tracking an event costs an array slot
 * in the session's PendingAcks (indexed by the event's ordinal) and a session with nothing pending
 * costs nothing.
 * Attempts count only sends that reached a socket: while a session is detached its events wait
 * for the client to resume, or for the session to expire.
 */
export const makeAckTracker = (settings: HydrogenSettings, metrics: typeof Metrics.Service) =>
  Effect.gen(function* () {
    const pendingGauge = metrics.gauge("switchboard_hydrogen_acks_pending", "Events waiting for an ack")
    const redelivered = metrics.counter("switchboard_hydrogen_redeliveries_total", "Events resent because no ack came")
    const acked = metrics.counter("switchboard_hydrogen_acks_total", "Events acknowledged by clients")
    const undeliverable = metrics.counter(
      "switchboard_hydrogen_undeliverable_total",
      "Events given up on without an ack",
      ["reason"]
    )
    const retryMillis = Duration.toMillis(settings.ackRetryInterval)
    /**
     * Sessions with pending events: the only ones the sweep visits. A session leaves at the first
     * sweep that finds it empty, not at each ack (no Set churn per ack at tens of thousands a second).
     */
    const waiting = new Set<Session>()

    const giveUp = (session: Session, entry: PendingAck, reason: string) =>
      Effect.suspend(() => {
        if (!session.pending.take(entry.ordinal, entry.id)) return Effect.void
        pendingGauge.dec()
        forgetIfDone(session)
        undeliverable.inc({ reason })
        return Effect.logWarning("event undeliverable").pipe(
          Effect.annotateLogs({
            session: session.id,
            channel: entry.channel,
            event: entry.id,
            attempts: entry.attempts,
            reason
          })
        )
      })

    /** Resends what waited a full interval, gives up on what used all its attempts. */
    const visit = (session: Session, now: number): Effect.Effect<void> | void => {
      let givingUp: Array<PendingAck> | undefined
      for (const entry of session.pending.values()) {
        if (now - entry.sentAt < retryMillis) continue
        if (entry.attempts >= settings.ackMaxAttempts) {
          ;(givingUp ??= []).push(entry)
        } else if (session.send(entry.text)) {
          resent(session, entry, now)
          redelivered.inc()
        }
      }
      if (!givingUp) return forgetIfDone(session)
      return Effect.forEach(givingUp, (entry) => giveUp(session, entry, "no_ack"), { discard: true })
    }
    /** Entries may be shared between sessions: a resend replaces this session's entry. */
    const resent = (session: Session, entry: PendingAck, now: number) =>
      session.pending.replace({ ...entry, attempts: entry.attempts + 1, sentAt: now })
    const forgetIfDone = (session: Session) => {
      if (session.pending.size === 0) waiting.delete(session)
    }
    yield* sweepEvery("ack redelivery", Duration.millis(retryMillis / 2), waiting, visit)

    return {
      /**
       * Starts tracking an event for a session (synchronously, from delivery). `sent`: it already
       * went out through the native topic; otherwise it is sent here when the session is attached.
       */
      track: (session: Session, event: AckedEvent, sent: boolean) => {
        const pending = session.pending
        if (pending.has(event.ordinal, event.id)) return
        const delivered = sent ? session.connection !== undefined : session.send(event.text)
        pending.add(event.entry(delivered))
        pendingGauge.inc()
        // A session is in `waiting` whenever it has pending events: it joins when it gets its first.
        if (pending.size === 1) waiting.add(session)
      },
      /** Ends the wait for an event; false when it was not pending (unknown, or acked already). */
      ack: (session: Session, id: string): boolean => {
        const ordinal = eventOrdinal(id)
        if (ordinal === undefined || !session.pending.take(ordinal, id)) return false
        pendingGauge.dec()
        acked.inc()
        return true
      },
      /**
       * `ack` for a message that may be a plain ack (`{"type":"ack","id":"…"}`), the most frequent
       * client message: false when it is not one or names nothing pending (then decode it fully).
       */
      ackPlain: (session: Session, text: string): boolean => {
        const ordinal = plainAckOrdinal(text)
        if (ordinal < 0 || !session.pending.takeWritten(ordinal, text, plainAckIdStart)) return false
        pendingGauge.dec()
        acked.inc()
        return true
      },
      /**
       * After a resume: events the client reports as seen (seq at or below its position) count as
       * acked, events that the replay resent wait for their next retry, the rest go out now.
       */
      resumed: (session: Session, seen: ReadonlyMap<string, number>, replayed: ReadonlySet<string>) =>
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          for (const entry of session.pending.values()) {
            const position = seen.get(entry.channel)
            if (entry.seq !== undefined && position !== undefined && entry.seq <= position) {
              session.pending.take(entry.ordinal, entry.id)
              pendingGauge.dec()
              acked.inc()
            } else if (entry.seq !== undefined && replayed.has(entry.channel)) {
              session.pending.replace({ ...entry, sentAt: now })
            } else if (session.send(entry.text)) {
              resent(session, entry, now)
            }
          }
        }),
      /** How many sessions the redelivery sweep visits (those with pending events). */
      sessionsWaiting: () => waiting.size,
      /**
       * Another node took the session over: events of reliable channels go quietly (that node replays
       * and tracks them), the others are reported undeliverable with reason resumed_elsewhere.
       */
      handedOver: (session: Session) =>
        Effect.suspend(() => {
          const unsequenced: Array<PendingAck> = []
          for (const entry of [...session.pending.values()]) {
            if (entry.seq === undefined) unsequenced.push(entry)
            else if (session.pending.take(entry.ordinal, entry.id)) pendingGauge.dec()
          }
          forgetIfDone(session)
          return Effect.forEach(unsequenced, (entry) => giveUp(session, entry, "resumed_elsewhere"), { discard: true })
        }),
      /** The session ended: whatever is still pending is undeliverable. */
      abandonAll: (session: Session, reason: string) =>
        Effect.forEach(session.pending.values(), (entry) => giveUp(session, entry, reason), { discard: true })
    }
  })

export type AckTracker = Effect.Effect.Success<ReturnType<typeof makeAckTracker>>
