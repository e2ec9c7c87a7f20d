import { describe, expect } from "bun:test"
import { Duration, Effect, HashMap, Logger, LogLevel, TestClock } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { makeAckTracker } from "../../src/hydrogen/Acks.ts"
import { makeConnectionStates } from "../../src/hydrogen/ConnectionStates.ts"
import { anonymous } from "../../src/hydrogen/Permissions.ts"
import { AckedEvent, type HydrogenConnection, Session } from "../../src/hydrogen/Session.ts"
import { it } from "../support/effect.ts"
import { testSettings } from "./support.ts"

/** A session on a stand-in connection that records what was sent to it. */
const sessionWithInbox = (id: string) => {
  const sent: Array<string> = []
  const connection = {
    isOpen: () => true,
    send: (text: string) => (sent.push(text), "sent")
  } as unknown as HydrogenConnection
  return { session: new Session(id, anonymous, connection), sent }
}

describe("hydrogen server-wide sweeps", () => {
  it.effect(
    "ack redelivery visits only sessions with pending events, and forgets them once acked or given up; entries are shared until a resend (TestClock)",
    () =>
      Effect.gen(function* () {
        const settings = testSettings({ ackRetryInterval: Duration.seconds(2), ackMaxAttempts: 2 })
        const acks = yield* makeAckTracker(settings, yield* Metrics)
        const quiet = sessionWithInbox("quiet")
        const acking = sessionWithInbox("acking")
        const silent = sessionWithInbox("silent")
        expect(acks.sessionsWaiting()).toBe(0)
        const event = new AckedEvent(1, "e-1", "jobs", undefined, "event-1", 0)
        acks.track(acking.session, event, false)
        acks.track(silent.session, event, false)
        expect(acking.session.pending.get("e-1")).toBe(silent.session.pending.get("e-1")!)
        expect(acks.sessionsWaiting()).toBe(2)
        acks.ack(acking.session, "e-1")
        yield* TestClock.adjust(Duration.seconds(1))
        expect(acks.sessionsWaiting()).toBe(1)
        yield* TestClock.adjust(Duration.seconds(1))
        expect(silent.sent).toEqual(["event-1", "event-1"])
        expect(silent.session.pending.get("e-1")).toMatchObject({ attempts: 2, sentAt: 2000 })
        expect(event.entry(true)).toMatchObject({ attempts: 1, sentAt: 0 })
        yield* TestClock.adjust(Duration.seconds(2))
        expect(acks.sessionsWaiting()).toBe(0)
        expect(silent.sent.length).toBe(2)
        expect(acking.sent).toEqual(["event-1"])
        expect(quiet.sent).toEqual([])
      }).pipe(Effect.provide(Metrics.Default))
  )
})

describe("hydrogen connection state tracker", () => {
  it.effect("moves are counted always and logged (with the connection's label) only when debug logging is on", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      const states = makeConnectionStates(metrics)
      const lines: Array<string> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ annotations, message }) =>
          lines.push(`${String(message)} ${JSON.stringify(Object.fromEntries(HashMap.toEntries(annotations)))}`)
        )
      )
      const quiet = states.track({ connection: "c1" }, "Established")
      yield* quiet.moveTo("Connected").pipe(Effect.provide(capture), Logger.withMinimumLogLevel(LogLevel.Info))
      expect(lines).toEqual([])
      yield* quiet.moveTo("Inactive").pipe(Effect.provide(capture), Logger.withMinimumLogLevel(LogLevel.Debug))
      expect(lines).toEqual([
        'connection Connected -> Heartbeat {"connection":"c1"}',
        'connection Heartbeat -> Inactive {"connection":"c1"}'
      ])
      expect(quiet.current()).toBe("Inactive")
      const text = yield* metrics.render
      expect(text).toContain('switchboard_hydrogen_state_transitions_total{from="Established",to="Connected"} 1')
      expect(text).toContain('switchboard_hydrogen_connection_state{state="Inactive"} 1')
    }).pipe(Effect.provide(Metrics.Default))
  )
})
