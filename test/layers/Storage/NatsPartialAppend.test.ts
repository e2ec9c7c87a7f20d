import { describe, expect } from "bun:test"
import { type JetStreamClient, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Context, Effect, Layer } from "effect"
import { makeNatsStreamStore, natsHistoryStream } from "../../../layers/Storage/NatsStreamStore.ts"
import { StreamStore } from "../../../layers/Storage/StreamStore.ts"
import { it } from "../../support/effect.ts"
import { natsAvailable, natsPrefix, natsUrl } from "../Cluster/backends.ts"

const pairs = (entries: ReadonlyArray<{ readonly seq: number; readonly payload: string }>) =>
  entries.map(({ seq, payload }) => [seq, payload] as const)
const batch = ["m1", "m2", "m3", "m4", "m5"]

/** An admin connection, and the prefix's JetStream stream deleted when the test ends. */
const jetStreamOf = (prefix: string) =>
  Effect.gen(function* () {
    const admin = yield* Effect.acquireRelease(
      Effect.promise(() => connect({ servers: natsUrl })),
      (connection) => Effect.promise(() => connection.close())
    )
    const manager = yield* Effect.promise(() => jetstreamManager(admin))
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => manager.streams.delete(natsHistoryStream(prefix)).catch(() => false))
    )
    return manager
  })

/** The store on NATS, its client's publishes of entries (those with a msgID) passed through `publish`. */
const storeWith = (
  prefix: string,
  publish?: (n: number, send: () => ReturnType<JetStreamClient["publish"]>) => unknown
) =>
  Effect.map(
    Layer.build(
      Layer.scoped(
        StreamStore,
        makeNatsStreamStore({
          url: natsUrl,
          prefix,
          wrapClient: (client) => {
            let entries = 0
            return new Proxy(client, {
              get: (target, key) => {
                const value = Reflect.get(target, key)
                if (key !== "publish" || publish === undefined)
                  return typeof value === "function" ? value.bind(target) : value
                return (...args: Parameters<JetStreamClient["publish"]>) =>
                  args[2]?.msgID === undefined
                    ? target.publish(...args)
                    : publish(++entries, () => target.publish(...args))
              }
            })
          }
        })
      ).pipe(Layer.orDie)
    ),
    (context) => Context.get(context, StreamStore)
  )

describe("NATS StreamStore: a batch that fails partway (real JetStream)", () => {
  const test = it.skipIf(!natsAvailable).live

  test("a stream limit refusing the 4th entry: the first three are reported stored with their seqs, nothing else is", () =>
    Effect.gen(function* () {
      const prefix = natsPrefix("partial-limit")
      const manager = yield* jetStreamOf(prefix)
      const name = natsHistoryStream(prefix)
      // The epoch marker and three entries fit; the fourth entry is refused by the server.
      yield* Effect.promise(() =>
        manager.streams.add({
          name,
          subjects: [`${prefix}.history.>`],
          allow_direct: true,
          max_msgs: 4,
          discard: "new" as never
        })
      )
      const store = yield* storeWith(prefix)
      const failure = yield* Effect.flip(store.appendMany("room", batch, {}))
      expect(failure._tag).toBe("PartialAppend")
      if (failure._tag !== "PartialAppend") return
      expect(failure.unsure).toBe(0)
      expect(pairs(failure.stored)).toEqual([
        [1, "m1"],
        [2, "m2"],
        [3, "m3"]
      ])
      expect(pairs(yield* store.readAfter("room", 0))).toEqual(pairs(failure.stored))
      expect((yield* store.position("room")).last).toBe(3)
      // Room again: the rest goes on from seq 4, nothing twice.
      yield* Effect.promise(() => manager.streams.update(name, { max_msgs: -1 }))
      expect(pairs(yield* store.appendMany("room", batch.slice(3), {}))).toEqual([
        [4, "m4"],
        [5, "m5"]
      ])
      expect(pairs(yield* store.readAfter("room", 0)).map(([, payload]) => payload)).toEqual(batch)
    }))

  test("the 3rd entry stored but its answer lost: sent again under its msgID, stored once, the batch completes", () =>
    Effect.gen(function* () {
      const prefix = natsPrefix("partial-ack")
      const manager = yield* jetStreamOf(prefix)
      const store = yield* storeWith(prefix, async (n, send) => {
        const ack = await send()
        if (n === 3) throw new Error(`answer lost (really stored at ${ack.seq})`)
        return ack
      })
      expect(pairs(yield* store.appendMany("room", batch, {}))).toEqual(batch.map((payload, i) => [i + 1, payload]))
      expect(pairs(yield* store.readAfter("room", 0))).toEqual(batch.map((payload, i) => [i + 1, payload]))
      // Five entries (the first append purged the epoch marker below them): no message stored twice.
      const info = yield* Effect.promise(() => manager.streams.info(natsHistoryStream(prefix)))
      expect(info.state.messages).toBe(5)
    }))

  test("no answer for the 3rd entry, twice: two reported stored, the 3rd unsure, the history holds exactly the two", () =>
    Effect.gen(function* () {
      const prefix = natsPrefix("partial-unsure")
      yield* jetStreamOf(prefix)
      const store = yield* storeWith(prefix, (n, send) =>
        n >= 3 ? Promise.reject(new Error("connection lost")) : send()
      )
      const failure = yield* Effect.flip(store.appendMany("room", batch, {}))
      expect(failure).toMatchObject({ _tag: "PartialAppend", unsure: 1 })
      if (failure._tag !== "PartialAppend") return
      expect(pairs(failure.stored)).toEqual([
        [1, "m1"],
        [2, "m2"]
      ])
      expect(pairs(yield* store.readAfter("room", 0))).toEqual(pairs(failure.stored))
    }))
})
