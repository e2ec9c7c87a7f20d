import { describe, expect } from "bun:test"
import type { JetStreamClient } from "@nats-io/jetstream"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Deferred, Effect, Fiber } from "effect"
import { makeNatsStreamStore, natsHistoryStream } from "../../../layers/Storage/NatsStreamStore.ts"
import { it } from "../../support/effect.ts"
import { natsAvailable, natsPrefix, natsUrl } from "../Cluster/backends.ts"
import { tcpProxy } from "../Cluster/TcpProxy.ts"

/** The store on NATS through a proxy the test cuts; `beforePublish` runs before each entry's publish is sent. */
const proxiedStore = (prefix: string, beforePublish: () => Promise<void> = async () => {}) =>
  Effect.gen(function* () {
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        const admin = await connect({ servers: natsUrl })
        const manager = await jetstreamManager(admin)
        await manager.streams.delete(natsHistoryStream(prefix)).catch(() => false)
        await admin.close()
      })
    )
    const proxy = yield* Effect.acquireRelease(
      Effect.promise(() => tcpProxy(4222)),
      (proxy) => Effect.promise(() => proxy.cut())
    )
    const store = yield* makeNatsStreamStore({
      url: `127.0.0.1:${proxy.port}`,
      prefix,
      wrapClient: (client) =>
        new Proxy(client, {
          get: (target, key) => {
            const value = Reflect.get(target, key)
            if (key !== "publish") return typeof value === "function" ? value.bind(target) : value
            return async (...args: Parameters<JetStreamClient["publish"]>) => {
              if (args[2]?.msgID !== undefined) await beforePublish()
              return target.publish(...args)
            }
          }
        })
    }).pipe(Effect.orDie)
    return { proxy, store }
  })

// A bound well below the NATS client's 5 s request timeout, which an append during a cut used to wait out.
const atOnce = <A, E>(call: Effect.Effect<A, E>) =>
  call.pipe(Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error("the append waited for NATS") }))

describe("NATS history while its connection is cut (real JetStream)", () => {
  const test = it.skipIf(!natsAvailable).live

  test("an append during a cut fails at once with StorageError (what publishers answer storage_unavailable)", () =>
    Effect.gen(function* () {
      const { proxy, store } = yield* proxiedStore(natsPrefix("history-cut"))
      expect((yield* store.append("room", "before", {})).seq).toBe(1)
      yield* Effect.promise(() => proxy.cut())
      expect(yield* Effect.flip(atOnce(store.append("room", "during", {})))).toMatchObject({ _tag: "StorageError" })
      expect(yield* Effect.flip(atOnce(store.readAfter("room", 0)))).toMatchObject({ _tag: "StorageError" })
    }))

  test("an append whose publish is in flight when the connection drops fails at once, its outcome unsure", () =>
    Effect.gen(function* () {
      const publishing = yield* Deferred.make<void>()
      const cutDone = Promise.withResolvers<void>()
      const { proxy, store } = yield* proxiedStore(natsPrefix("history-drop"), async () => {
        Deferred.unsafeDone(publishing, Effect.void)
        // Sent only once the connection is gone: the answer cannot come before the drop is seen.
        await cutDone.promise
      })
      const append = yield* Effect.fork(store.appendMany("room", ["m1", "m2"], {}))
      yield* Deferred.await(publishing)
      yield* Effect.promise(() => proxy.cut())
      cutDone.resolve()
      const failure = yield* Effect.flip(atOnce(Fiber.join(append)))
      expect(failure).toMatchObject({ _tag: "PartialAppend", stored: [], unsure: 1 })
    }))
})
