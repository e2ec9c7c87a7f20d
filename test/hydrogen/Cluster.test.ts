import { describe, expect } from "bun:test"
import { Duration, Effect, ExecutionStrategy, Exit, Layer, Scope, TestClock } from "effect"
import { ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { MemoryBrokerHub } from "../../layers/Cluster/MemoryBroker.ts"
import { MemoryStreamStore } from "../../layers/Storage/MemoryStreamStore.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import { MemoryNetwork } from "../../layers/Transport/MemoryTransport.ts"
import { sessionDigest, sessionRecordTtlMillis } from "../../src/hydrogen/SessionRecords.ts"
import { it } from "../support/effect.ts"
import {
  type HydrogenNode,
  handedOver,
  hydrogenBackends,
  nodeMetric,
  type Publisher,
  publishEvents,
  publisher,
  ReliableClient,
  startNode
} from "./clusterNodes.ts"
import { command, ok } from "./support.ts"

const channel = "orders"

const publishRun = (client: Publisher, from: number, count: number, ack = false) =>
  publishEvents(client, channel, from, count, ack)

for (const backend of hydrogenBackends()) {
  describe(`Hydrogen cluster on ${backend.name}`, () => {
    const test = (name: string, body: () => Effect.Effect<void, unknown, Scope.Scope>) =>
      backend.live
        ? it.skipIf(backend.skip).live(name, body, 30_000)
        : it.skipIf(backend.skip).effect(name, body, 30_000)

    const cluster = (count: number) =>
      Effect.gen(function* () {
        const network = yield* Effect.provide(MemoryNetwork, MemoryNetwork.Default)
        const nodeLayer = yield* backend.cluster()
        const nodes: Array<HydrogenNode> = []
        for (let i = 0; i < count; i++)
          nodes.push(yield* startNode(network, nodeLayer(`node-${i}`), { ackRetryInterval: Duration.hours(1) }))
        return { network, nodes }
      })

    test("events published on two nodes reach the subscribers of every node once and in seq order", () =>
      Effect.gen(function* () {
        const { network, nodes } = yield* cluster(3)
        const scope = yield* Effect.scope
        const subscribers = nodes.map(() => new ReliableClient(channel, network))
        for (const [i, subscriber] of subscribers.entries()) yield* subscriber.join(nodes[i]!, scope)
        // Served per client on node C: only B's events (n >= 100), and at high priority.
        const filtered = new ReliableClient(channel, network, { filter: { n: { gte: 100 } } })
        const high = new ReliableClient(channel, network, { priority: "high" })
        yield* filtered.join(nodes[2]!, scope)
        yield* high.join(nodes[2]!, scope)
        const [onA, onB] = [yield* publisher(nodes[0]!, scope), yield* publisher(nodes[1]!, scope)]
        yield* Effect.all([publishRun(onA, 0, 60), publishRun(onB, 100, 60)], { concurrency: 2, discard: true })
        for (const subscriber of [...subscribers, high]) {
          yield* subscriber.until(120)
          subscriber.check(120)
        }
        yield* filtered.untilCount(60)
        expect(filtered.order).toEqual([...filtered.order].sort((x, y) => x - y))
        expect(new Set(filtered.order).size).toBe(60)
        expect([...filtered.numbers].sort()).toEqual(Array.from({ length: 60 }, (_, i) => 100 + i).sort())
      }))

    test("a client cut again and again resumes on the next node: nothing lost, nothing twice, acks where it is", () =>
      Effect.gen(function* () {
        const { network, nodes } = yield* cluster(3)
        const scope = yield* Effect.scope
        const consumer = new ReliableClient(channel, network)
        let connection = yield* Scope.fork(scope, ExecutionStrategy.sequential)
        yield* consumer.join(nodes[0]!, connection)
        const source = yield* publisher(nodes[1]!, scope)
        const batches = 8
        const size = 25
        // Per node: how many times the session left it for another node.
        const left = nodes.map(() => 0)
        for (let batch = 1; batch <= batches; batch++) {
          yield* publishRun(source, batch * 1000, size, true)
          // Read part of the batch, then the connection dies; the rest is in flight to a dead socket.
          yield* consumer.until(batch * size - 7)
          yield* Scope.close(connection, Exit.void)
          connection = yield* Scope.fork(scope, ExecutionStrategy.sequential)
          const recovery = yield* consumer.join(nodes[batch % nodes.length]!, connection)
          expect(recovery).toMatchObject({ recovered: true })
          left[(batch - 1) % nodes.length]! += 1
        }
        yield* consumer.until(batches * size)
        consumer.check(batches * size)
        // Acks reached the node holding the session; the nodes it left let their copies go.
        yield* ok(consumer.client!, "system", "ping")
        for (const [i, node] of nodes.entries()) {
          yield* handedOver(node, left[i]!)
          expect(yield* nodeMetric(node, "switchboard_hydrogen_acks_pending")).toBe(0)
          expect(yield* nodeMetric(node, "switchboard_hydrogen_sessions_handed_over_total")).toBe(left[i]!)
        }
        for (const node of nodes)
          expect(yield* nodeMetric(node, 'switchboard_hydrogen_undeliverable_total{reason="no_ack"}')).toBe(0)
      }))

    test("an event sent on one node and acked on another after a resume is acked there", () =>
      Effect.gen(function* () {
        const { network, nodes } = yield* cluster(2)
        const [a, b] = [nodes[0]!, nodes[1]!]
        const scope = yield* Effect.scope
        const consumer = new ReliableClient(channel, network)
        const first = yield* Scope.fork(scope, ExecutionStrategy.sequential)
        yield* consumer.join(a, first)
        yield* publishRun(yield* publisher(a, scope), 1, 1, true)
        // Received on A but neither processed nor acked: the client resumes on B from seq 0.
        const event = yield* consumer.client!.nextJson("10 seconds")
        expect(event).toMatchObject({ seq: 1, ack: true })
        expect(yield* nodeMetric(a, "switchboard_hydrogen_acks_pending")).toBe(1)
        yield* Scope.close(first, Exit.void)
        const recovery = yield* consumer.join(b, scope)
        expect(recovery).toEqual({ recovered: true, replayed: 1 })
        expect(consumer.order).toEqual([1])
        yield* ok(consumer.client!, "system", "ping")
        expect(yield* nodeMetric(b, "switchboard_hydrogen_acks_total")).toBe(1)
        expect(yield* nodeMetric(b, "switchboard_hydrogen_acks_pending")).toBe(0)
        // A let its copy go when B took the session over.
        yield* handedOver(a, 1)
        expect(yield* nodeMetric(a, "switchboard_hydrogen_acks_pending")).toBe(0)
        // Only the publisher's session is left on A, and nothing was reported undeliverable.
        expect(yield* nodeMetric(a, "switchboard_hydrogen_sessions")).toBe(1)
        expect(yield* nodeMetric(a, 'switchboard_hydrogen_undeliverable_total{reason="resumed_elsewhere"}')).toBe(0)
      }))

    test("node kill: 3 nodes, one dies, its clients resume on the others; acked loss 0, no duplicates", () =>
      Effect.gen(function* () {
        const { network, nodes } = yield* cluster(3)
        const scope = yield* Effect.scope
        const consumers = Array.from({ length: 6 }, () => new ReliableClient(channel, network))
        for (const [i, consumer] of consumers.entries()) yield* consumer.join(nodes[i % 3]!, scope)
        const source = yield* publisher(nodes[0]!, scope)
        for (let batch = 1; batch <= 10; batch++) {
          yield* publishRun(source, batch * 1000, 20, true)
          if (batch === 5) {
            const victim = nodes[2]!
            yield* victim.get(ClusterBroker).sever
            yield* Scope.close(victim.scope, Exit.void)
            for (const [i, consumer] of consumers.entries()) {
              if (i % 3 !== 2) continue
              expect(yield* consumer.client!.closed).toMatchObject({ code: 1001 })
              const recovery = yield* consumer.join(nodes[i % 2]!, scope)
              expect(recovery).toMatchObject({ recovered: true })
            }
          }
        }
        for (const consumer of consumers) {
          yield* consumer.until(200)
          consumer.check(200)
        }
      }))
  })
}

describe("Hydrogen cluster: broker outage (memory hub, TestClock)", () => {
  it.effect(
    "reliable events whose announcements were lost in an outage arrive, in order, when the broker is back",
    () =>
      Effect.gen(function* () {
        const hub = new MemoryBrokerHub()
        const shared = Layer.succeedContext(yield* Layer.build(Layer.merge(MemoryTokensLive, MemoryStreamStore)))
        const network = yield* Effect.provide(MemoryNetwork, MemoryNetwork.Default)
        const node = (id: string) => startNode(network, Layer.merge(Layer.succeed(ClusterBroker, hub.node(id)), shared))
        const [a, b] = [yield* node("a"), yield* node("b")]
        const scope = yield* Effect.scope
        const subscriber = new ReliableClient(channel, network)
        yield* subscriber.join(b, scope)
        const source = yield* publisher(a, scope)
        yield* publishRun(source, 1, 1)
        yield* subscriber.until(1)
        hub.setDown(true)
        yield* publishRun(source, 2, 2)
        expect(yield* nodeMetric(a, "switchboard_cluster_undelivered_total")).toBe(2)
        // Stored but not announced: nothing reached B (the ping's answer is the next frame).
        const { events } = yield* command(subscriber.client!, "system", "ping")
        expect(events).toEqual([])
        hub.setDown(false)
        yield* subscriber.until(3)
        subscriber.check(3)
      })
  )
})

describe("Hydrogen cluster: session records expire with their node (memory hub, TestClock)", () => {
  it.effect("a live node keeps its sessions' records past the TTL; a dead node's records expire", () =>
    Effect.gen(function* () {
      const hub = new MemoryBrokerHub()
      const shared = Layer.succeedContext(yield* Layer.build(Layer.merge(MemoryTokensLive, MemoryStreamStore)))
      const network = yield* Effect.provide(MemoryNetwork, MemoryNetwork.Default)
      const node = (id: string) => startNode(network, Layer.merge(Layer.succeed(ClusterBroker, hub.node(id)), shared))
      const [a, b, c] = [yield* node("a"), yield* node("b"), yield* node("c")]
      const scope = yield* Effect.scope
      const kept = new ReliableClient(channel, network)
      yield* kept.join(a, scope)
      const orphan = new ReliableClient(channel, network)
      yield* orphan.join(c, scope)
      const records = hub.node("observer").records
      const recordOf = (session: string) => `hydrogen-session:${sessionDigest(session)}`
      expect(yield* records.get(recordOf(orphan.session))).toBeDefined()

      // Node C dies; A lives on, refreshing its sessions' records, through three TTLs.
      yield* c.get(ClusterBroker).sever
      yield* Scope.close(c.scope, Exit.void)
      expect((yield* orphan.client!.closed).code).toBe(1001)
      for (let step = 0; step < (3 * sessionRecordTtlMillis) / 10_000; step++) {
        yield* TestClock.adjust("10 seconds")
        yield* Effect.yieldNow()
      }
      expect(yield* records.get(recordOf(kept.session))).toBeDefined()
      expect(yield* records.get(recordOf(orphan.session))).toBeUndefined()

      // A's session resumes on B with its subscription; C's comes back without any.
      expect(yield* kept.join(b, scope)).toMatchObject({ recovered: true })
      const client = yield* publisher(b, scope)
      const { response } = yield* command(client, "system", "resume", { session: orphan.session, positions: {} })
      expect(response.data?.channels ?? {}).toEqual({})
    })
  )
})
