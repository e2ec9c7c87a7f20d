import { describe, expect } from "bun:test"
import { Duration, Effect, Logger, LogLevel, TestClock } from "effect"
import { it } from "../support/effect.ts"
import {
  type Client,
  connectHydrogen,
  disconnect,
  metric,
  ok,
  post,
  readerKey,
  startTestHydrogen,
  type TestHydrogen
} from "./support.ts"

const channel = "reliable.churn"
const room = `hydrogen/${channel}`

/** Publishes one acked event on the channel and has `steady` ack it. */
const publishAcked = (hydrogen: TestHydrogen, steady: Client, n: number) =>
  Effect.gen(function* () {
    yield* post(hydrogen, "/api/publish", { channel, action: "tick", data: { n }, ack: true })
    const event = yield* steady.nextJson()
    expect(event.data).toEqual({ n })
    yield* steady.send(JSON.stringify({ type: "ack", id: event.id }))
  })

/** `cycles` clients that subscribe to the reliable channel and go, with an acked event after each. */
const churn = (hydrogen: TestHydrogen, steady: Client, cycles: number) =>
  Effect.forEach(
    Array.from({ length: cycles }, (_, i) => i),
    (i) =>
      Effect.gen(function* () {
        const client = yield* connectHydrogen(hydrogen, readerKey)
        const { session } = yield* ok(client, "subscriptions", "subscribe", { channel })
        yield* disconnect(hydrogen, client, session)
        yield* publishAcked(hydrogen, steady, i)
      }),
    { discard: true }
  )

/** What the server holds for sessions: sessions, resume tokens, pending acks, room members. */
const held = (hydrogen: TestHydrogen) =>
  Effect.all({
    sessions: metric(hydrogen, "switchboard_hydrogen_sessions"),
    tokens: hydrogen.tokens.count("hydrogen/session"),
    pendingAcks: metric(hydrogen, "switchboard_hydrogen_acks_pending"),
    roomMembers: Effect.sync(() => hydrogen.rooms.localCount(room))
  })

describe("hydrogen session churn on a reliable channel", () => {
  it.effect(
    "churned sessions are held for the recovery window only: past it sessions, tokens, pending acks and channel members are back to the baseline after N and 2N cycles (TestClock)",
    () =>
      Effect.gen(function* () {
        const hydrogen = yield* startTestHydrogen({
          recoveryWindow: Duration.seconds(10),
          ackRetryInterval: Duration.seconds(60)
        })
        const steady = yield* connectHydrogen(hydrogen, readerKey)
        yield* ok(steady, "subscriptions", "subscribe", { channel })
        // Settles the steady client's ack, then lets the recovery sweep run past the window.
        const pastWindow = Effect.zipRight(ok(steady, "system", "ping"), TestClock.adjust(Duration.seconds(12)))
        const baseline = { sessions: 1, tokens: 1, pendingAcks: 0, roomMembers: 1 }
        expect(yield* held(hydrogen)).toEqual(baseline)

        yield* churn(hydrogen, steady, 10)
        yield* ok(steady, "system", "ping")
        // Inside the window: each churned session is held with the events it missed (the i-th missed 10 - i).
        expect(yield* held(hydrogen)).toEqual({ sessions: 11, tokens: 11, pendingAcks: 55, roomMembers: 1 })
        yield* pastWindow
        expect(yield* held(hydrogen)).toEqual(baseline)
        expect(yield* metric(hydrogen, `switchboard_hydrogen_undeliverable_total{reason="session_expired"}`)).toBe(55)

        yield* churn(hydrogen, steady, 20)
        yield* pastWindow
        expect(yield* held(hydrogen)).toEqual(baseline)
        // Ended sessions are gone from the channel too: the next acked event waits for the steady client only.
        yield* post(hydrogen, "/api/publish", { channel, action: "tick", data: { n: -1 }, ack: true })
        expect(yield* metric(hydrogen, "switchboard_hydrogen_acks_pending")).toBe(1)
        expect(hydrogen.server.subscriberCount(room)).toBe(1)
        // Each expired session's missed events are logged as undeliverable warnings: not this test's concern.
      }).pipe(Logger.withMinimumLogLevel(LogLevel.Error))
  )
})
