import { expect } from "bun:test"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { BrokerClaimsLive } from "../../layers/Cluster/Claims.ts"
import { BrokerReplayCountersLive } from "../../layers/Cluster/ReplayCounters.ts"
import { makeBrokerFederation } from "../../layers/Federation/BrokerFederation.ts"
import { Federation } from "../../layers/Federation/Federation.ts"
import { memoryDialer } from "../../layers/Federation/InProcessFederation.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { BrokerRoomsLive } from "../../layers/Rooms/BrokerRooms.ts"
import { MemoryNetwork } from "../../layers/Transport/MemoryTransport.ts"
import type { Incoming } from "../../src/neighbourhood/Client.ts"
import { serveNeighbourhood } from "../../src/neighbourhood/Server.ts"
import type { ClusterBackend } from "../layers/Cluster/backends.ts"
import { nodeTtlMillis } from "../layers/Cluster/backends.ts"
import { countingCalls } from "./brokerCalls.ts"
import { addressOf, configFor, portOf, serverKeys, step, type TestClient } from "./support.ts"

/** The tests poll client lists while a real broker catches up: the per-client message rate is not under test. */
export const pollingLimits = { messagesPerSecond: 10_000, messageBurst: 10_000 }

export type Brokers = Effect.Effect.Success<ReturnType<ClusterBackend["cluster"]>>

export const serverA = addressOf(0)
export const serverB = addressOf(1)

/**
 * One node of server `i` (0: A, 1: B) on `port`, sharing its room, replay counters, link claims and bus
 * with the other nodes of its server through `broker`; its neighbour is the other server, dialled on
 * portOf(1 - i).
 */
export const startNode = (broker: Layer.Layer<ClusterBroker>, i: 0 | 1, nodeId: string, port: number) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const network = yield* MemoryNetwork
    const brokerContext = yield* Layer.buildWithScope(countingCalls(broker), scope)
    const shared = yield* Layer.buildWithScope(
      Layer.mergeAll(
        BrokerRoomsLive({ nodeTtl: nodeTtlMillis }),
        BrokerReplayCountersLive,
        BrokerClaimsLive({ nodeTtl: nodeTtlMillis }),
        Layer.effect(Federation, makeBrokerFederation(memoryDialer(network)))
      ).pipe(Layer.provide(Layer.succeedContext(brokerContext))),
      scope
    )
    const other = 1 - i
    const server = yield* serveNeighbourhood({
      config: configFor(i, 2, { port, limits: pollingLimits }),
      identity: serverKeys[i]!.identity,
      neighbours: [
        {
          address: addressOf(other),
          url: `ws://memory:${portOf(other)}/`,
          publicKeyPem: serverKeys[other]!.identity.publicPem
        }
      ],
      name: nodeId
    }).pipe(Effect.provide(shared), Scope.extend(scope))
    const neighbour = () => server.mesh.neighbours.get(addressOf(other))!
    return {
      nodeId,
      port,
      server,
      /** Whether this node's own connections reach the neighbour (the link is held here and up). */
      linked: () => neighbour().outbound !== undefined || neighbour().inbound !== undefined,
      /** A clean stop: the node releases its claims and says so. */
      stop: Scope.close(scope, Exit.void),
      /** A crash: the broker connection goes first, so nothing is released or announced. */
      kill: Effect.zipRight(Context.get(brokerContext, ClusterBroker).sever, Scope.close(scope, Exit.void))
    }
  })

export type Node = Effect.Effect.Success<ReturnType<typeof startNode>>

/** A counter of the test's registry (every server of the test shares it), by name and some of its labels. */
export const metricValue = (name: string, labels: ReadonlyArray<string>) =>
  Effect.map(
    Effect.flatMap(Metrics, (metrics) => metrics.render),
    (text) => {
      const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)))
      return Number(line?.slice(line.lastIndexOf(" ") + 1) ?? 0)
    }
  )

/** How many of A's server_hellos the node or server `name` of B accepted so far. */
export const linksAcceptedFromA = (name: string) =>
  metricValue("switchboard_neighbourhood_links_opened_total", [
    `server="${name}"`,
    `neighbour="${serverA}"`,
    `direction="inbound"`
  ])

export const expectPublic = (c: TestClient, sender: TestClient, message: string) =>
  Effect.gen(function* () {
    expect(yield* c.next).toMatchObject({ kind: "public_chat", sender: sender.client.fingerprint, message })
  })

/** Steps the clock until the client's next frame arrives (at most `steps`), and returns it. */
export const nextWithin = (c: TestClient, steps: number, label: string) =>
  Effect.gen(function* () {
    const read = Effect.flatMap(c.socket.next(`${steps + 10} seconds`), (frame) =>
      Effect.promise(() => c.client.read(typeof frame === "string" ? frame : new TextDecoder().decode(frame)))
    )
    const next = yield* Effect.fork(read)
    for (let i = 0; i < steps; i++) {
      const done = yield* Fiber.poll(next)
      if (done._tag === "Some") return yield* Fiber.join(next)
      yield* step
    }
    const done = yield* Fiber.poll(next)
    if (done._tag === "Some") return yield* Fiber.join(next)
    yield* Fiber.interrupt(next)
    return yield* Effect.dieMessage(`never happened: ${label}`) as Effect.Effect<Incoming>
  })
