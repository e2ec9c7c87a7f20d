import { describe, expect } from "bun:test"
import { Clock, Effect } from "effect"
import {
  type ClusterBackend,
  cleanRedisAfterAll,
  memoryBackend,
  natsBackend,
  natsPrefix,
  redisBackend,
  runPrefix
} from "../layers/Cluster/backends.ts"
import { it } from "../support/effect.ts"
import { expectPublic, linksAcceptedFromA, serverA, serverB, startNode } from "./clusterLinksSupport.ts"
import { advanceUntil, clientPems, connectClient, listConverges, MeshTestLayer, portOf, step } from "./support.ts"

const prefix = runPrefix("nbh-link-pairs")
cleanRedisAfterAll(prefix)

/**
 * Server A (server0) on a1 and a2, server B (server1) on b1 and b2, each on a cluster of its own. a1 and
 * b1 start first and take their links; each neighbour list names the other server's second node (a2 on
 * portOf(0), b2 on portOf(1)), so every dial lands on a node that does not hold the link.
 */
const twoClusteredServers = (backend: ClusterBackend) =>
  Effect.gen(function* () {
    const clusterOfA = yield* backend.cluster()
    const clusterOfB = yield* backend.cluster()
    const a1 = yield* startNode(clusterOfA.broker("a1"), 0, "a1", 9120)
    const b1 = yield* startNode(clusterOfB.broker("b1"), 1, "b1", 9121)
    const startedAt = yield* Clock.currentTimeMillis
    const a2 = yield* startNode(clusterOfA.broker("a2"), 0, "a2", portOf(0))
    const b2 = yield* startNode(clusterOfB.broker("b2"), 1, "b2", portOf(1))
    return { a1, a2, b1, b2, nodes: [a1, a2, b1, b2], startedAt }
  })

const scenarios = (backend: ClusterBackend) =>
  describe(`Neighbourhood between two servers on two nodes each (${backend.name})`, () => {
    const test = it.skipIf(backend.skip).effect

    test("the link comes up at A's holder's first dials, on the B node they reach, and stays the one link", () =>
      Effect.gen(function* () {
        const { a1, a2, b1, b2, startedAt } = yield* twoClusteredServers(backend)
        // B's holder gives the link up to b2, which A's dial reached: no wait for a dial to land on b1.
        yield* advanceUntil(() => a1.linked() && b2.linked(), "A and B linked", 30)
        if (!backend.live) expect((yield* Clock.currentTimeMillis) - startedAt).toBeLessThanOrEqual(2_000)
        for (let i = 0; i < 100; i++) {
          yield* step
          expect([a1.linked(), a2.linked(), b1.linked(), b2.linked()]).toEqual([true, false, false, true])
        }
        expect(yield* linksAcceptedFromA("b2")).toBe(1)
        expect(yield* linksAcceptedFromA("b1")).toBe(0)
      }).pipe(Effect.provide(MeshTestLayer)))

    test("clients on every node of both servers list each other and hear each public chat once", () =>
      Effect.gen(function* () {
        const { a1, a2, b1, b2 } = yield* twoClusteredServers(backend)
        yield* advanceUntil(() => a1.linked() && b2.linked(), "A and B linked", 30)
        const [alice, bob, carol, dave] = yield* Effect.forEach([a1, a2, b1, b2], (node, i) =>
          connectClient(node.port, clientPems[i]!)
        )
        const everyone = [alice!, bob!, carol!, dave!]
        const expected = {
          [serverA]: [alice!.client.fingerprint, bob!.client.fingerprint],
          [serverB]: [carol!.client.fingerprint, dave!.client.fingerprint]
        }
        for (const c of everyone) yield* listConverges(c, expected)
        // From a node of each server that does not hold the link: handed to the holder, sent on the one link.
        yield* bob!.send(bob!.client.publicChat("from a2"))
        for (const c of [alice!, carol!, dave!]) yield* expectPublic(c, bob!, "from a2")
        yield* carol!.send(carol!.client.publicChat("from b1"))
        for (const c of [alice!, bob!, dave!]) yield* expectPublic(c, carol!, "from b1")
        for (const c of everyone) yield* c.expectNothingElse
      }).pipe(Effect.provide(MeshTestLayer)))
  })

scenarios(memoryBackend)
scenarios(redisBackend(prefix))
scenarios(natsBackend(natsPrefix("nbh-link-pairs")))
