import { describe, expect } from "bun:test"
import { Cause, Duration, Effect, ExecutionStrategy, Exit, Layer, Scope, TestClock } from "effect"
import { ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { MemoryBrokerHub } from "../../layers/Cluster/MemoryBroker.ts"
import { Federation } from "../../layers/Federation/Federation.ts"
import { MemoryStreamStore } from "../../layers/Storage/MemoryStreamStore.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import { MemoryNetwork } from "../../layers/Transport/MemoryTransport.ts"
import { type HydrogenCluster, HydrogenClusterOnFederation } from "../../src/hydrogen/Cluster.ts"
import { sessionRecordRefresh, sessionsSubject } from "../../src/hydrogen/SessionRecords.ts"
import type { HydrogenSettings } from "../../src/hydrogen/Config.ts"
import { it } from "../support/effect.ts"
import {
  type HydrogenNode,
  handedOver,
  hydrogenBackends,
  nodeMetric,
  publishEvents,
  publisher,
  ReliableClient,
  startNode
} from "./clusterNodes.ts"
import { ok } from "./support.ts"

const channel = "orders"

/**
 * The node stops hearing hand-over announcements (the bus subject's broker channel goes): to it, this
 * is what an announcement lost in the broker's at-most-once pub/sub looks like.
 */
const missHandOvers = (node: HydrogenNode) => node.get(ClusterBroker).unsubscribe(`bus/${sessionsSubject}`)

const connection = (scope: Scope.Scope) => Scope.fork(scope, ExecutionStrategy.sequential)

/** What a node let go quietly must leave: no pending ack, nothing undeliverable but `resumedElsewhere`. */
const letGoQuietly = (node: HydrogenNode, resumedElsewhere = 0) =>
  Effect.gen(function* () {
    expect(yield* nodeMetric(node, "switchboard_hydrogen_sessions")).toBe(0)
    expect(yield* nodeMetric(node, "switchboard_hydrogen_acks_pending")).toBe(0)
    expect(yield* nodeMetric(node, "switchboard_hydrogen_sessions_handed_over_total")).toBe(1)
    for (const reason of ["session_expired", "no_ack"])
      expect(yield* nodeMetric(node, `switchboard_hydrogen_undeliverable_total{reason="${reason}"}`)).toBe(0)
    expect(yield* nodeMetric(node, 'switchboard_hydrogen_undeliverable_total{reason="resumed_elsewhere"}')).toBe(
      resumedElsewhere
    )
  })

for (const backend of hydrogenBackends()) {
  describe(`Hydrogen cluster on ${backend.name}: a lost hand-over message`, () => {
    const test = (name: string, body: () => Effect.Effect<void, unknown, Scope.Scope>) =>
      backend.live
        ? it.skipIf(backend.skip).live(name, body, 30_000)
        : it.skipIf(backend.skip).effect(name, body, 30_000)

    // Lets the recovery window pass: real time on a broker (the test waits for an event), TestClock on memory.
    const windowPasses = backend.live
      ? Effect.void
      : Effect.forEach([1, 2, 3, 4], () => Effect.zipRight(TestClock.adjust("1 second"), Effect.yieldNow()), {
          discard: true
        })

    test("the old node finds the new holder in the record at its window's end and lets go; resume works after", () =>
      Effect.gen(function* () {
        const network = yield* Effect.provide(MemoryNetwork, MemoryNetwork.Default)
        const nodeLayer = yield* backend.cluster()
        const settings = { ackRetryInterval: Duration.hours(1), recoveryWindow: Duration.seconds(1) }
        const [a, b, c] = [
          yield* startNode(network, nodeLayer("node-a"), settings),
          yield* startNode(network, nodeLayer("node-b"), settings),
          yield* startNode(network, nodeLayer("node-c"), settings)
        ]
        yield* missHandOvers(a)
        const scope = yield* Effect.scope
        const consumer = new ReliableClient(channel, network)
        const onA = yield* connection(scope)
        yield* consumer.join(a, onA)
        const toA = consumer.client!
        const source = yield* publisher(c, scope)
        yield* publishEvents(source, channel, 1, 3, true)
        yield* consumer.until(3)

        // The client resumes on B while its connection to A is still open: A's window starts only when it closes.
        const onB = yield* connection(scope)
        expect(yield* consumer.join(b, onB)).toEqual({ recovered: true, replayed: 0 })
        yield* publishEvents(source, channel, 4, 3, true)
        yield* consumer.until(6)
        yield* ok(consumer.client!, "system", "ping")
        expect(yield* nodeMetric(b, "switchboard_hydrogen_acks_pending")).toBe(0)
        // A never heard of the hand-over: it still serves its copy (4..6 arrive there too, unacked).
        for (const seq of [4, 5, 6]) expect(yield* toA.nextJson("10 seconds")).toMatchObject({ seq, ack: true })
        expect(yield* nodeMetric(a, "switchboard_hydrogen_sessions_handed_over_total")).toBe(0)
        expect(yield* nodeMetric(a, "switchboard_hydrogen_acks_pending")).toBe(3)

        // A's connection goes; at its window's end A finds B holding the session and lets its copy go quietly.
        yield* Scope.close(onA, Exit.void)
        yield* windowPasses
        yield* handedOver(a, 1)
        yield* letGoQuietly(a)

        // The token and the record are intact: the session resumes on C, nothing lost or twice.
        yield* publishEvents(source, channel, 7, 2, true)
        expect(yield* consumer.join(c, scope)).toEqual({ recovered: true, replayed: 2 })
        yield* consumer.until(8)
        consumer.check(8)
        yield* ok(consumer.client!, "system", "ping")
        expect(yield* nodeMetric(c, "switchboard_hydrogen_acks_pending")).toBe(0)
        // B heard C's announcement as usual.
        yield* handedOver(b, 1)
      }))
  })
}

describe("Hydrogen cluster: a lost hand-over message (memory hub, TestClock)", () => {
  const nodes = (overrides: Partial<HydrogenSettings>, hub = new MemoryBrokerHub()) =>
    Effect.gen(function* () {
      const shared = Layer.succeedContext(yield* Layer.build(Layer.merge(MemoryTokensLive, MemoryStreamStore)))
      const network = yield* Effect.provide(MemoryNetwork, MemoryNetwork.Default)
      const node = (id: string) =>
        startNode(network, Layer.merge(Layer.succeed(ClusterBroker, hub.node(id)), shared), {
          ackRetryInterval: Duration.hours(1),
          ...overrides
        })
      return { network, nodes: [yield* node("a"), yield* node("b"), yield* node("c")] as const }
    })
  const advance = (seconds: number) =>
    Effect.forEach(
      Array.from({ length: seconds }),
      () => Effect.zipRight(TestClock.adjust("1 second"), Effect.yieldNow()),
      { discard: true }
    )

  it.effect(
    "the client left A first: its unacked events go quietly at A's window end, a non-reliable one as resumed_elsewhere",
    () =>
      Effect.gen(function* () {
        // A window shorter than the record sweep: the window's end is what finds the new holder.
        const {
          network,
          nodes: [a, b, c]
        } = yield* nodes({ recoveryWindow: Duration.seconds(5) })
        yield* missHandOvers(a)
        const scope = yield* Effect.scope
        const consumer = new ReliableClient(channel, network)
        const onA = yield* connection(scope)
        yield* consumer.join(a, onA)
        yield* ok(consumer.client!, "subscriptions", "subscribe", { channel: "news" })
        const source = yield* publisher(c, scope)
        yield* publishEvents(source, channel, 1, 2, true)
        yield* consumer.until(2)
        // Received on A, never acked: a non-reliable event and a reliable one.
        yield* publishEvents(source, "news", 1, 1, true)
        yield* publishEvents(source, channel, 3, 1, true)
        expect(yield* consumer.client!.nextJson("10 seconds")).toMatchObject({ channel: "news", ack: true })
        expect(yield* consumer.client!.nextJson("10 seconds")).toMatchObject({ channel, seq: 3, ack: true })
        expect(yield* nodeMetric(a, "switchboard_hydrogen_acks_pending")).toBe(2)
        yield* Scope.close(onA, Exit.void)

        const onB = yield* connection(scope)
        expect(yield* consumer.join(b, onB)).toEqual({ recovered: true, replayed: 1 })
        expect(yield* nodeMetric(a, "switchboard_hydrogen_sessions_handed_over_total")).toBe(0)
        yield* advance(7)
        yield* handedOver(a, 1)
        yield* letGoQuietly(a, 1)

        yield* Scope.close(onB, Exit.void)
        yield* publishEvents(source, channel, 4, 2, true)
        expect(yield* consumer.join(c, scope)).toEqual({ recovered: true, replayed: 2 })
        yield* consumer.until(5)
        consumer.check(5)
        yield* ok(consumer.client!, "system", "ping")
        expect(yield* nodeMetric(c, "switchboard_hydrogen_acks_pending")).toBe(0)
      })
  )

  it.effect(
    "the broker is away when A's window ends: A keeps its copy until it can read the holder, then lets go",
    () =>
      Effect.gen(function* () {
        const hub = new MemoryBrokerHub()
        const {
          network,
          nodes: [a, b, c]
        } = yield* nodes({ recoveryWindow: Duration.seconds(5) }, hub)
        yield* missHandOvers(a)
        const scope = yield* Effect.scope
        const consumer = new ReliableClient(channel, network)
        const onA = yield* connection(scope)
        yield* consumer.join(a, onA)
        const source = yield* publisher(c, scope)
        yield* publishEvents(source, channel, 1, 2, true)
        yield* consumer.until(2)
        yield* Scope.close(onA, Exit.void)
        const onB = yield* connection(scope)
        expect(yield* consumer.join(b, onB)).toEqual({ recovered: true, replayed: 0 })

        hub.setDown(true)
        yield* advance(7)
        // Nothing decided while the record cannot be read: no token revoked, nothing reported.
        expect(yield* nodeMetric(a, "switchboard_hydrogen_sessions")).toBe(1)
        expect(yield* nodeMetric(a, "switchboard_hydrogen_sessions_handed_over_total")).toBe(0)
        expect(yield* nodeMetric(a, 'switchboard_hydrogen_undeliverable_total{reason="session_expired"}')).toBe(0)
        hub.setDown(false)
        yield* advance(2)
        yield* handedOver(a, 1)
        yield* letGoQuietly(a)

        yield* Scope.close(onB, Exit.void)
        yield* publishEvents(source, channel, 3, 2, true)
        expect(yield* consumer.join(c, scope)).toEqual({ recovered: true, replayed: 2 })
        yield* consumer.until(4)
        consumer.check(4)
      })
  )

  it.effect("A still serves the session: its record sweep finds B holding it and closes A's connection (4004)", () =>
    Effect.gen(function* () {
      const {
        network,
        nodes: [a, b, c]
      } = yield* nodes({})
      yield* missHandOvers(a)
      const scope = yield* Effect.scope
      const consumer = new ReliableClient(channel, network)
      yield* consumer.join(a, scope)
      const toA = consumer.client!
      const source = yield* publisher(c, scope)
      yield* publishEvents(source, channel, 1, 2, true)
      yield* consumer.until(2)
      const onB = yield* connection(scope)
      expect(yield* consumer.join(b, onB)).toEqual({ recovered: true, replayed: 0 })
      yield* publishEvents(source, channel, 3, 1, true)
      yield* consumer.until(3)
      expect(yield* toA.nextJson("10 seconds")).toMatchObject({ seq: 3 })

      // No window ends here (A's copy stays attached): the sweep that refreshes A's records notices.
      yield* advance(Duration.toSeconds(sessionRecordRefresh) + 1)
      expect((yield* toA.closed).code).toBe(4004)
      yield* handedOver(a, 1)
      yield* letGoQuietly(a)

      yield* Scope.close(onB, Exit.void)
      yield* publishEvents(source, channel, 4, 1, true)
      expect(yield* consumer.join(c, scope)).toEqual({ recovered: true, replayed: 1 })
      yield* consumer.until(4)
      consumer.check(4)
    })
  )
})

describe("Hydrogen cluster composition", () => {
  it.effect("a node needs the broker's held records: Hydrogen's bus without the ClusterBroker is refused", () =>
    Effect.gen(function* () {
      const bus = Layer.succeed(Federation, {
        publish: () => Effect.void,
        subscribe: () => Effect.never,
        link: () => Effect.never
      })
      // @ts-expect-error it requires the ClusterBroker: without its records no holder would be checked
      const withoutBroker: Layer.Layer<HydrogenCluster> = HydrogenClusterOnFederation.pipe(Layer.provide(bus))
      const exit = yield* Effect.exit(Layer.build(withoutBroker))
      expect(Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "built").toContain("switchboard/ClusterBroker")
      // @ts-expect-error the records are part of a HydrogenCluster, not an option
      const noRecords: HydrogenCluster["Type"] = {
        publish: () => Effect.void,
        subscribe: () => Effect.never,
        onReconnect: () => {}
      }
      expect(noRecords.records).toBeUndefined()
    })
  )
})
