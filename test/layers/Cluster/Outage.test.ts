import { describe, expect } from "bun:test"
import { Deferred, Effect, Layer } from "effect"
import { ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { MemoryBrokerHub } from "../../../layers/Cluster/MemoryBroker.ts"
import { makeRedisBroker } from "../../../layers/Cluster/RedisBroker.ts"
import { MemoryNetwork } from "../../../layers/Transport/MemoryTransport.ts"
import { it } from "../../support/effect.ts"
import { cleanRedisAfterAll, natsAvailable, natsUrl, redisAvailable, runPrefix } from "./backends.ts"
import { destroyNatsBuckets, makeNatsBroker } from "../../../layers/Cluster/NatsBroker.ts"
import { connect } from "@nats-io/transport-node"
import { tcpProxy } from "./TcpProxy.ts"
import { clientsCrossing, eventually, nextDisconnect, nextReconnect, roomNode } from "./outageNodes.ts"

const prefix = runPrefix("outage")
// The real-broker cases use a prefix without colons (NATS subjects and buckets are named from it).
cleanRedisAfterAll(prefix.replaceAll(":", "-"))

describe("broker outages", () => {
  it.effect(
    "memory broker down: local delivery goes on, cross-node messages are counted, delivery resumes when it returns",
    () =>
      Effect.gen(function* () {
        const network = yield* MemoryNetwork
        const hub = new MemoryBrokerHub()
        const a = yield* roomNode(network, Layer.succeed(ClusterBroker, hub.node("a")))
        const b = yield* roomNode(network, Layer.succeed(ClusterBroker, hub.node("b")))
        const a1 = yield* a.connect("a1")
        const a2 = yield* a.connect("a2")
        const b1 = yield* b.connect("b1")
        hub.setDown(true)
        yield* a1.send("while down")
        expect(yield* a2.next()).toBe("while down")
        expect(a.undelivered()).toBe(1)
        hub.setDown(false)
        yield* a1.send("after")
        expect(yield* b1.next()).toBe("after")
        expect(yield* a2.next()).toBe("after")
      }).pipe(Effect.provide(MemoryNetwork.Default))
  )

  const realBrokers = [
    {
      name: "Redis",
      skip: !redisAvailable,
      port: 6379,
      broker: (url: string, clusterPrefix: string, nodeId: string) =>
        makeRedisBroker({ url: `redis://${url}`, prefix: `${clusterPrefix}:`, nodeId }),
      cleanup: (_clusterPrefix: string) => Effect.void
    },
    {
      name: "NATS",
      skip: !natsAvailable,
      port: 4222,
      broker: (url: string, clusterPrefix: string, nodeId: string) =>
        makeNatsBroker({ url, prefix: clusterPrefix, nodeId }),
      cleanup: (clusterPrefix: string) =>
        Effect.acquireUseRelease(
          Effect.promise(() => connect({ servers: natsUrl })),
          (admin) => destroyNatsBuckets(admin, clusterPrefix),
          (admin) => Effect.promise(() => admin.close())
        )
    }
  ]
  /** Node a reaches the broker through a proxy the test cuts; node b directly. */
  const proxiedPair = (real: (typeof realBrokers)[number]) =>
    Effect.gen(function* () {
      const network = yield* MemoryNetwork
      // Released after the nodes (finalizers run in reverse), so they close over a live connection.
      const proxy = yield* Effect.acquireRelease(
        Effect.promise(() => tcpProxy(real.port)),
        (proxy) => Effect.promise(() => proxy.cut())
      )
      const clusterPrefix = `${prefix.replaceAll(":", "-")}${crypto.randomUUID().slice(0, 6)}`
      yield* Effect.addFinalizer(() => real.cleanup(clusterPrefix))
      const viaProxy = real.broker(`127.0.0.1:${proxy.port}`, clusterPrefix, "a")
      const direct = real.broker(`127.0.0.1:${real.port}`, clusterPrefix, "b")
      const a = yield* roomNode(network, Layer.scoped(ClusterBroker, viaProxy).pipe(Layer.orDie))
      const b = yield* roomNode(network, Layer.scoped(ClusterBroker, direct).pipe(Layer.orDie))
      return { proxy, a, b }
    })
  for (const real of realBrokers)
    it.skipIf(real.skip).live(
      `${real.name} connection cut: clients stay connected, local delivery goes on, lost messages are counted, the node resubscribes when it is back`,
      () =>
        Effect.gen(function* () {
          const { proxy, a, b } = yield* proxiedPair(real)
          const { a1, a2, b1 } = yield* clientsCrossing(a, b)

          const reconnected = yield* nextReconnect(a.broker)
          const disconnected = yield* Deferred.make<void>()
          a.broker.onDisconnect(() => Deferred.unsafeDone(disconnected, Effect.void))
          yield* Effect.promise(() => proxy.cut())
          yield* Deferred.await(disconnected)
          expect(a.broker.isUp()).toBe(false)
          // A publish in flight at the cut is counted as lost too (it is never resent, so never doubled).
          const lostBefore = a.undelivered()
          yield* a1.send("during")
          expect(yield* a2.next()).toBe("during")
          expect(a.undelivered()).toBe(lostBefore + 1)

          yield* Effect.promise(() => proxy.restore())
          yield* reconnected
          // Resubscribed: b1's next message reaches node a again, and a's reaches b.
          yield* b1.send("back from b")
          expect(yield* a1.next()).toBe("back from b")
          expect(yield* a2.next()).toBe("back from b")
          yield* a2.send("back from a")
          expect(yield* b1.next()).toBe("back from a")
          expect(yield* a1.next()).toBe("back from a")
          expect(a.undelivered()).toBe(lostBefore + 1)
        }).pipe(Effect.provide(MemoryNetwork.Default))
    )

  for (const real of realBrokers)
    it.skipIf(real.skip).live(
      `${real.name} connection cut: a join on the cut node does not wait for the broker; its presence reaches the other node once it is back`,
      () =>
        Effect.gen(function* () {
          const { proxy, a, b } = yield* proxiedPair(real)
          yield* a.connect("a1")
          yield* b.connect("b1")
          const reconnected = yield* nextReconnect(a.broker)
          const disconnected = yield* nextDisconnect(a.broker)
          yield* Effect.promise(() => proxy.cut())
          yield* disconnected
          // A bound well below the NATS client's 5 s JetStream timeout, which a presence write used to wait out.
          yield* a.connect("a2").pipe(
            Effect.timeoutFail({
              duration: "2 seconds",
              onTimeout: () => new Error("the join waited for the broker")
            })
          )
          yield* Effect.promise(() => proxy.restore())
          yield* reconnected
          // The deferred presence write is made at the node's next heartbeat.
          const members = yield* eventually(
            "a2 listed on node b",
            Effect.map(b.broker.presence.list("r"), (entries) => (entries.length === 3 ? entries : undefined))
          )
          expect(members.length).toBe(3)
        }).pipe(Effect.provide(MemoryNetwork.Default))
    )
})
