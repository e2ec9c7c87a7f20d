import { describe, expect } from "bun:test"
import { Deferred, Duration, Effect, Layer, TestClock } from "effect"
import { MemoryStreamStore } from "../../layers/Storage/MemoryStreamStore.ts"
import { SqlStreamStore } from "../../layers/Storage/SqlStreamStore.ts"
import { StreamStore } from "../../layers/Storage/StreamStore.ts"
import { mysqlAvailable, throwawayMysql } from "../layers/Storage/backends.ts"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { it } from "../support/effect.ts"
import {
  adminKey,
  type Client,
  command,
  connectHydrogen,
  disconnect,
  metric,
  ok,
  post,
  readerKey,
  startTestHydrogen,
  type TestHydrogen
} from "./support.ts"

const publishOrders = (hydrogen: TestHydrogen, from: number, to: number) =>
  post(hydrogen, "/api/batch", {
    publications: Array.from({ length: to - from + 1 }, (_, i) => ({
      channel: "orders",
      action: "created",
      data: { n: from + i }
    }))
  })

const nextEvents = (client: Client, n: number) => Effect.forEach(Array.from({ length: n }), () => client.nextJson())

const mysql = throwawayMysql("hydrogen")

/** Memory history whose every call first yields to other fibers 1-4 times, so replay and live delivery interleave at every step. */
const slowStore = Layer.effect(
  StreamStore,
  Effect.map(StreamStore, (store) => {
    const delay = Effect.suspend(() => Effect.repeatN(Effect.yieldNow(), Math.floor(Math.random() * 4)))
    return StreamStore.of({
      append: (stream, payload, bounds) => Effect.zipRight(delay, store.append(stream, payload, bounds)),
      appendMany: (stream, payloads, bounds) => Effect.zipRight(delay, store.appendMany(stream, payloads, bounds)),
      readAfter: (stream, afterSeq, limit) => Effect.zipRight(delay, store.readAfter(stream, afterSeq, limit)),
      position: (stream) => Effect.zipRight(delay, store.position(stream)),
      remove: (stream) => Effect.zipRight(delay, store.remove(stream))
    })
  })
).pipe(Layer.provide(MemoryStreamStore))

describe("hydrogen guaranteed delivery", () => {
  it.effect("unacked events are redelivered on schedule, then reported undeliverable (TestClock)", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen({ ackRetryInterval: Duration.seconds(2), ackMaxAttempts: 3 })
      const silent = yield* connectHydrogen(hydrogen, readerKey)
      const acking = yield* connectHydrogen(hydrogen, readerKey)
      yield* ok(silent, "subscriptions", "subscribe", { channel: "jobs" })
      yield* ok(acking, "subscriptions", "subscribe", { channel: "jobs", filter: { kind: "build" } })
      yield* post(hydrogen, "/api/publish", { channel: "jobs", action: "run", data: { kind: "build" }, ack: true })
      const first = yield* silent.nextJson()
      const theirs = yield* acking.nextJson()
      expect(theirs.id).toBe(first.id)
      yield* acking.send(JSON.stringify({ type: "ack", id: theirs.id }))
      yield* ok(acking, "system", "ping")
      for (let attempt = 2; attempt <= 3; attempt++) {
        yield* TestClock.adjust(Duration.seconds(2))
        const again = yield* silent.nextJson()
        expect(again).toEqual(first)
      }
      yield* TestClock.adjust(Duration.seconds(2))
      // the next frames are the pongs: no third resend, nothing to the client that acked
      expect((yield* command(silent, "system", "ping")).events).toEqual([])
      expect((yield* command(acking, "system", "ping")).events).toEqual([])
      expect(yield* metric(hydrogen, `switchboard_hydrogen_undeliverable_total{reason="no_ack"}`)).toBe(1)
      expect(yield* metric(hydrogen, "switchboard_hydrogen_redeliveries_total")).toBe(2)
      expect(yield* metric(hydrogen, "switchboard_hydrogen_acks_pending")).toBe(0)
      yield* TestClock.adjust(Duration.seconds(10))
      expect((yield* command(silent, "system", "ping")).events).toEqual([])
    })
  )

  it.effect("after a forced disconnect, resume replays exactly the missed events in order, then live ones", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const first = yield* connectHydrogen(hydrogen, readerKey)
      const subscribed = yield* ok(first, "subscriptions", "subscribe", { channel: "orders" })
      expect(typeof subscribed.epoch).toBe("string")
      expect(subscribed).toMatchObject({ channel: "orders", reliable: true, seq: 0 })
      yield* publishOrders(hydrogen, 1, 3)
      const seen = yield* nextEvents(first, 3)
      expect(seen.map((e) => e.seq)).toEqual([1, 2, 3])
      expect(seen[2].epoch).toBe(subscribed.epoch)
      yield* disconnect(hydrogen, first, subscribed.session)
      yield* publishOrders(hydrogen, 4, 6)
      const again = yield* connectHydrogen(hydrogen, readerKey)
      const { response, events } = yield* command(again, "system", "resume", {
        session: subscribed.session,
        positions: { orders: { epoch: subscribed.epoch, seq: 3 } }
      })
      expect(events.map((e) => [e.seq, e.data.n])).toEqual([
        [4, 4],
        [5, 5],
        [6, 6]
      ])
      expect(response.data).toEqual({
        session: subscribed.session,
        channels: {
          orders: {
            channel: "orders",
            reliable: true,
            epoch: subscribed.epoch,
            seq: 6,
            recovery: { recovered: true, replayed: 3 }
          }
        }
      })
      yield* publishOrders(hydrogen, 7, 7)
      expect((yield* again.nextJson()).seq).toBe(7)
      expect((yield* command(again, "system", "ping")).events).toEqual([])
      expect((yield* ok(again, "system", "whoami")).session).toBe(subscribed.session)
    })
  )

  it.effect(
    "subscribe with recover works without a session; gaps beyond history and other epochs are reported explicitly",
    () =>
      Effect.gen(function* () {
        const hydrogen = yield* startTestHydrogen({ historySize: 5 })
        yield* publishOrders(hydrogen, 1, 12)
        const client = yield* connectHydrogen(hydrogen, readerKey)
        const probe = yield* ok(client, "subscriptions", "subscribe", { channel: "orders" })
        yield* ok(client, "subscriptions", "unsubscribe", { channel: "orders" })
        const recent = yield* command(client, "subscriptions", "subscribe", {
          channel: "orders",
          recover: { epoch: probe.epoch, seq: 9 }
        })
        expect(recent.events.map((e) => e.seq)).toEqual([10, 11, 12])
        expect(recent.response.data.recovery).toEqual({ recovered: true, replayed: 3 })
        const trimmed = yield* command(client, "subscriptions", "subscribe", {
          channel: "orders",
          recover: { epoch: probe.epoch, seq: 2 }
        })
        expect(trimmed.events).toEqual([])
        expect(trimmed.response.data.recovery).toEqual({
          recovered: false,
          reason: "history_trimmed",
          first: 8,
          last: 12
        })
        const foreign = yield* command(client, "subscriptions", "subscribe", {
          channel: "orders",
          recover: { epoch: "other-epoch", seq: 11 }
        })
        expect(foreign.response.data.recovery).toMatchObject({ recovered: false, reason: "epoch_changed" })
        const ahead = yield* command(client, "subscriptions", "subscribe", {
          channel: "orders",
          recover: { epoch: probe.epoch, seq: 99 }
        })
        expect(ahead.response.data.recovery).toMatchObject({ recovered: false, reason: "unknown_position" })
        const plain = yield* command(client, "subscriptions", "subscribe", {
          channel: "news",
          recover: { epoch: probe.epoch, seq: 1 }
        })
        expect(plain.response.error.code).toBe("invalid_data")
        // still subscribed live after all that
        yield* publishOrders(hydrogen, 13, 13)
        expect((yield* client.nextJson()).seq).toBe(13)
      })
  )

  it.effect("a filtered subscription on a reliable channel recovers only the matching events", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const client = yield* connectHydrogen(hydrogen, readerKey)
      const start = yield* ok(client, "subscriptions", "subscribe", { channel: "orders", filter: { n: { gte: 3 } } })
      yield* ok(client, "subscriptions", "subscribe", { channel: "presence" })
      yield* disconnect(hydrogen, client, start.session)
      yield* publishOrders(hydrogen, 1, 5)
      const back = yield* connectHydrogen(hydrogen, readerKey)
      const { response, events } = yield* command(back, "system", "resume", {
        session: start.session,
        positions: { orders: { epoch: start.epoch, seq: 0 } }
      })
      expect(events.map((e) => e.data.n)).toEqual([3, 4, 5])
      expect(response.data.channels.orders.recovery).toEqual({ recovered: true, replayed: 3 })
      yield* publishOrders(hydrogen, 6, 6)
      expect((yield* back.nextJson()).data.n).toBe(6)
    })
  )

  it.effect("sessions end after the recovery window; unacked events are then undeliverable (TestClock)", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen({
        recoveryWindow: Duration.seconds(30),
        ackRetryInterval: Duration.seconds(5)
      })
      const client = yield* connectHydrogen(hydrogen, readerKey)
      const { session } = yield* ok(client, "subscriptions", "subscribe", { channel: "jobs" })
      yield* disconnect(hydrogen, client, session)
      yield* post(hydrogen, "/api/publish", { channel: "jobs", action: "run", ack: true })
      yield* TestClock.adjust(Duration.seconds(31))
      const late = yield* connectHydrogen(hydrogen, readerKey)
      expect((yield* command(late, "system", "resume", { session })).response.error.code).toBe("session_unknown")
      expect(yield* metric(hydrogen, `switchboard_hydrogen_undeliverable_total{reason="session_expired"}`)).toBe(1)
      // the session's resume token was revoked with it: only the late client's own is held
      expect(yield* hydrogen.tokens.count("hydrogen/session")).toBe(1)
    })
  )

  it.effect(
    "unacked events wait for a resumed session and are resent; a session cannot be taken by another identity",
    () =>
      Effect.gen(function* () {
        const hydrogen = yield* startTestHydrogen()
        const client = yield* connectHydrogen(hydrogen, readerKey)
        const { session } = yield* ok(client, "subscriptions", "subscribe", { channel: "jobs" })
        yield* disconnect(hydrogen, client, session)
        const published = (yield* post(hydrogen, "/api/publish", {
          channel: "jobs",
          action: "run",
          data: { j: 1 },
          ack: true
        })).body
        const intruder = yield* connectHydrogen(hydrogen, adminKey)
        expect((yield* command(intruder, "system", "resume", { session })).response.error).toMatchObject({
          category: "authentication",
          code: "forbidden"
        })
        const back = yield* connectHydrogen(hydrogen, readerKey)
        const { response, events } = yield* command(back, "system", "resume", { session })
        expect(response.data.channels.jobs.reliable).toBe(false)
        const resent = events.length > 0 ? events[0] : yield* back.nextJson()
        expect(resent).toMatchObject({ id: published.id, ack: true, data: { j: 1 } })
      })
  )

  it.effect("a resume while the old connection is still open replaces it (4004)", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const old = yield* connectHydrogen(hydrogen, readerKey)
      const { session, epoch } = yield* ok(old, "subscriptions", "subscribe", { channel: "orders" })
      const fresh = yield* connectHydrogen(hydrogen, readerKey)
      yield* ok(fresh, "system", "resume", { session, positions: { orders: { epoch, seq: 0 } } })
      expect((yield* old.closed).code).toBe(CloseCodes.replaced)
      yield* publishOrders(hydrogen, 1, 1)
      expect((yield* fresh.nextJson()).seq).toBe(1)
    })
  )

  const jitter = (store: Layer.Layer<StreamStore>) =>
    Effect.gen(function* () {
      const total = 400
      const hydrogen = yield* startTestHydrogen({ historySize: total }, store)
      // The publisher starts once every client has subscribed, and keeps at most two batches of 10
      // ahead of the slowest client, so events keep flowing while clients are cut.
      const clients = 4
      const subscribed = yield* Effect.makeLatch(false)
      let waiting = clients
      const batches = total / 10
      const reached = yield* Effect.forEach(Array.from({ length: batches + 1 }), () => Deferred.make<void>())
      const pending = Array.from({ length: batches + 1 }, () => clients)
      const passed = (seq: number) => {
        if (seq % 10 === 0 && --pending[seq / 10]! === 0) Deferred.unsafeDone(reached[seq / 10]!, Effect.void)
      }
      const runClient = (index: number) =>
        Effect.gen(function* () {
          let client = yield* connectHydrogen(hydrogen, readerKey)
          const start = yield* ok(client, "subscriptions", "subscribe", { channel: "orders" })
          if (--waiting === 0) yield* subscribed.open
          const received: Array<number> = []
          let cuts = 0
          const take = (event: any) => {
            if (event.type !== "event") return
            const expected = (received[received.length - 1] ?? start.seq) + 1
            if (event.seq !== expected) throw new Error(`client ${index}: got seq ${event.seq}, expected ${expected}`)
            received.push(event.seq)
            passed(event.seq)
          }
          let sinceCut = 0
          while ((received[received.length - 1] ?? start.seq) < total) {
            take(yield* client.nextJson("5 seconds"))
            if (++sinceCut >= 23 + index * 7) {
              sinceCut = 0
              cuts++
              yield* client.close()
              client = yield* connectHydrogen(hydrogen, readerKey)
              const last = received[received.length - 1] ?? start.seq
              const { response, events } = yield* command(client, "system", "resume", {
                session: start.session,
                positions: { orders: { epoch: start.epoch, seq: last } }
              })
              // replayed events count toward the next cut too, however far the publisher got meanwhile
              for (const event of events) take(event)
              sinceCut += events.length
              if (response.error || !response.data.channels.orders.recovery?.recovered) {
                throw new Error(`client ${index}: resume failed ${JSON.stringify(response)}`)
              }
            }
          }
          return { received, cuts, first: start.seq }
        })
      const publisher = Effect.gen(function* () {
        yield* subscribed.await
        for (let batch = 1; batch <= batches; batch++) {
          if (batch > 2) yield* Deferred.await(reached[batch - 2]!)
          yield* publishOrders(hydrogen, batch * 10 - 9, batch * 10)
        }
      })
      const [, ...results] = yield* Effect.all(
        [publisher, ...Array.from({ length: clients }, (_, i) => runClient(i))],
        { concurrency: "unbounded" }
      )
      for (const result of results) {
        expect(result.cuts).toBeGreaterThan(3)
        expect(result.received).toEqual(Array.from({ length: total - result.first }, (_, i) => result.first + i + 1))
      }
    })

  it.effect(
    "jitter: clients cut repeatedly while events flow get 100 % of a reliable channel, in order, without duplicates",
    () => jitter(MemoryStreamStore),
    30_000
  )

  it.effect(
    "jitter with a store whose every operation first yields to other fibers (replay and live interleave)",
    () => jitter(slowStore),
    30_000
  )

  it.skipIf(!mysqlAvailable).live(
    "jitter with history in MariaDB (StreamStore over SQL, memory transport)",
    () => jitter(SqlStreamStore.pipe(Layer.provide(mysql.layer), Layer.orDie)),
    30_000
  )
})
