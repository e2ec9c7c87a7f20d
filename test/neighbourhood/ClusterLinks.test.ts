import { describe, expect } from "bun:test"
import { Clock, Effect } from "effect"
import type { Channel } from "../../src/neighbourhood/Mesh.ts"
import {
  type ClusterBackend,
  cleanRedisAfterAll,
  memoryBackend,
  natsBackend,
  natsPrefix,
  nodeTtlMillis,
  redisBackend,
  runPrefix
} from "../layers/Cluster/backends.ts"
import { it } from "../support/effect.ts"
import {
  type Brokers,
  expectPublic,
  metricValue,
  pollingLimits,
  serverA,
  serverB,
  startNode
} from "./clusterLinksSupport.ts"
import {
  advanceUntil,
  clientPems,
  connectClient,
  listConverges,
  MeshTestLayer,
  portOf,
  startServer,
  step
} from "./support.ts"

const prefix = runPrefix("nbh-links")
cleanRedisAfterAll(prefix)

/** One node of server A on `port`; its neighbour is server B (server1 on portOf(1)). */
const startNodeOfA = (brokers: Brokers, nodeId: string, port: number) =>
  startNode(brokers.broker(nodeId), 0, nodeId, port)

/**
 * Server A on two nodes (a1 on 9120 starts first and takes the link; a2 on portOf(0), which B dials)
 * and server B on one; alice on a1, bob on a2, carol and dave on B, every list complete.
 */
const clusterBesideNeighbour = (backend: ClusterBackend) =>
  Effect.gen(function* () {
    const brokers = yield* backend.cluster()
    const a1 = yield* startNodeOfA(brokers, "a1", 9120)
    const a2 = yield* startNodeOfA(brokers, "a2", portOf(0))
    const b = yield* startServer(1, 2, { limits: pollingLimits })
    yield* Effect.addFinalizer(() => b.stop)
    const fromA = () => b.server.mesh.neighbours.get(serverA)!
    yield* advanceUntil(() => a1.linked() && fromA().inbound !== undefined, "a1 linked to B")
    const alice = yield* connectClient(a1.port, clientPems[0]!)
    const bob = yield* connectClient(a2.port, clientPems[1]!)
    const carol = yield* connectClient(portOf(1), clientPems[2]!)
    const dave = yield* connectClient(portOf(1), clientPems[3]!)
    const everyone = [alice, bob, carol, dave]
    const expected = {
      [serverA]: [alice.client.fingerprint, bob.client.fingerprint],
      [serverB]: [carol.client.fingerprint, dave.client.fingerprint]
    }
    for (const c of everyone) yield* listConverges(c, expected)
    return { brokers, a1, a2, b, fromA, alice, bob, carol, dave, everyone }
  })

/** How many links B opened with server A so far: A's server_hellos it accepted, and its own dials that opened. */
const linksOfB = Effect.gen(function* () {
  const count = (direction: string) =>
    metricValue("switchboard_neighbourhood_links_opened_total", [
      `server="${serverB}"`,
      `neighbour="${serverA}"`,
      `direction="${direction}"`
    ])
  return { dialledByA: yield* count("inbound"), dialledByB: yield* count("outbound") }
})

/** Dials of B by any node of A so far: a node that takes the link starts dialling at once. */
const dialsOfA = metricValue("switchboard_link_dials_total", [`link="${serverA}->${serverB}"`])

/** B accepted one connection from A all along: a1's (its own dials reach a2, which refuses them). */
const oneLinkAllAlong = Effect.gen(function* () {
  expect((yield* linksOfB).dialledByA).toBe(1)
})

const scenarios = (backend: ClusterBackend) =>
  describe(`Neighbourhood server on two nodes beside a neighbour: one link (${backend.name})`, () => {
    const test = it.skipIf(backend.skip).effect

    test("B sees one connection from A, held by one node; B's dial to the other node is refused", () =>
      Effect.gen(function* () {
        const { a1, a2, fromA } = yield* clusterBesideNeighbour(backend)
        const seen = new Set<Channel>()
        // Ten seconds of re-dials by B (to a2) and claim retries by a2: nothing moves.
        for (let i = 0; i < 100; i++) {
          yield* step
          if (fromA().inbound) seen.add(fromA().inbound!)
          expect(a1.linked()).toBe(true)
          expect(a2.linked()).toBe(false)
        }
        expect(seen.size).toBe(1)
        yield* oneLinkAllAlong
      }).pipe(Effect.provide(MeshTestLayer)))

    test("public chats: each client hears each one once, whichever node or server it is on", () =>
      Effect.gen(function* () {
        const { alice, bob, carol, dave, everyone } = yield* clusterBesideNeighbour(backend)
        yield* bob.send(bob.client.publicChat("from a2"))
        for (const c of [alice, carol, dave]) yield* expectPublic(c, bob, "from a2")
        yield* carol.send(carol.client.publicChat("from B"))
        for (const c of [alice, bob, dave]) yield* expectPublic(c, carol, "from B")
        for (const c of everyone) yield* c.expectNothingElse
        yield* oneLinkAllAlong
      }).pipe(Effect.provide(MeshTestLayer)))

    test("private chats both ways between the non-holding node and the neighbour", () =>
      Effect.gen(function* () {
        const { alice, bob, carol, dave, everyone } = yield* clusterBesideNeighbour(backend)
        yield* bob.send(bob.client.chat([{ pem: carol.client.publicPem, server: serverB }], "to carol"))
        expect(yield* carol.next).toMatchObject({ kind: "chat", sender: bob.client.fingerprint, message: "to carol" })
        expect((yield* dave.next).kind).toBe("chat_for_others")
        yield* carol.send(carol.client.chat([{ pem: bob.client.publicPem, server: serverA }], "to bob"))
        expect(yield* bob.next).toMatchObject({ kind: "chat", sender: carol.client.fingerprint, message: "to bob" })
        expect((yield* alice.next).kind).toBe("chat_for_others")
        for (const c of everyone) yield* c.expectNothingElse
        yield* oneLinkAllAlong
      }).pipe(Effect.provide(MeshTestLayer)))

    test("B's list of A follows joins and leaves on either node", () =>
      Effect.gen(function* () {
        const { a2, alice, bob, carol, dave } = yield* clusterBesideNeighbour(backend)
        const atB = [carol.client.fingerprint, dave.client.fingerprint]
        yield* bob.socket.close()
        yield* listConverges(carol, { [serverA]: [alice.client.fingerprint], [serverB]: atB })
        const erin = yield* connectClient(a2.port, clientPems[4]!)
        const withErin = { [serverA]: [alice.client.fingerprint, erin.client.fingerprint], [serverB]: atB }
        yield* listConverges(carol, withErin)
        yield* listConverges(erin, withErin)
        yield* alice.socket.close()
        yield* listConverges(dave, { [serverA]: [erin.client.fingerprint], [serverB]: atB })
        yield* oneLinkAllAlong
      }).pipe(Effect.provide(MeshTestLayer)))

    test("a client's first public chat on the non-holding node reaches B after B listed the client", () =>
      Effect.gen(function* () {
        const { a2, carol, dave } = yield* clusterBesideNeighbour(backend)
        // No wait for the lists: the holder must send B the client_update with erin before her chat.
        const erin = yield* connectClient(a2.port, clientPems[4]!)
        yield* erin.send(erin.client.publicChat("hi, I am new"))
        for (const c of [carol, dave]) yield* expectPublic(c, erin, "hi, I am new")
        yield* oneLinkAllAlong
      }).pipe(Effect.provide(MeshTestLayer)))

    test("a holding node that stops hands the link over at once, without waiting for the claim TTL", () =>
      Effect.gen(function* () {
        const { brokers, a1, a2, fromA, bob, carol, dave } = yield* clusterBesideNeighbour(backend)
        yield* a1.stop
        const stoppedAt = yield* Clock.currentTimeMillis
        yield* advanceUntil(() => a2.linked() && fromA().inbound !== undefined, "a2 linked to B")
        expect((yield* Clock.currentTimeMillis) - stoppedAt).toBeLessThan(nodeTtlMillis)
        // A presence entry whose leave did not reach the broker before a1's connection closed goes with a1's
        // heartbeat: on a real broker that is real time, so it is expired here.
        if (backend.live) yield* brokers.expire(a1.nodeId)
        const expected = {
          [serverA]: [bob.client.fingerprint],
          [serverB]: [carol.client.fingerprint, dave.client.fingerprint]
        }
        for (const c of [bob, carol, dave]) yield* listConverges(c, expected)
        expect((yield* linksOfB).dialledByA).toBe(2)
      }).pipe(Effect.provide(MeshTestLayer)))

    test("the holding node dies: the other takes the link within the claim TTL, lists and chats follow", () =>
      Effect.gen(function* () {
        const { brokers, a1, a2, fromA, bob, carol, dave } = yield* clusterBesideNeighbour(backend)
        const dialsBefore = yield* dialsOfA
        yield* a1.kill
        const killedAt = yield* Clock.currentTimeMillis
        if (backend.live) {
          yield* brokers.expire(a1.nodeId)
          yield* brokers.expire(`${a1.nodeId}.claims`)
        }
        // a2 takes the claim (and dials) once a1's heartbeat has expired, at its next retry (every second);
        // on a real broker the clock only paces the retries, so the bound is checked on memory.
        let dialled = false
        for (let steps = 0; !dialled; steps++) {
          expect(steps).toBeLessThan(200)
          yield* step
          dialled = (yield* dialsOfA) > dialsBefore
          if (!backend.live)
            expect((yield* Clock.currentTimeMillis) - killedAt).toBeLessThanOrEqual(nodeTtlMillis + 1_500)
        }
        yield* advanceUntil(() => a2.linked() && fromA().inbound !== undefined, "a2 linked to B")
        const expected = {
          [serverA]: [bob.client.fingerprint],
          [serverB]: [carol.client.fingerprint, dave.client.fingerprint]
        }
        for (const c of [bob, carol, dave]) yield* listConverges(c, expected)
        yield* bob.send(bob.client.publicChat("still here"))
        for (const c of [carol, dave]) yield* expectPublic(c, bob, "still here")
        yield* carol.send(carol.client.publicChat("welcome back"))
        for (const c of [bob, dave]) yield* expectPublic(c, carol, "welcome back")
        for (const c of [bob, carol, dave]) yield* c.expectNothingElse
        // One connection from each holder in turn: a1's, then a2's (B's own dials reach a2 once it holds).
        expect((yield* linksOfB).dialledByA).toBe(2)
      }).pipe(Effect.provide(MeshTestLayer)))
  })

scenarios(memoryBackend)
scenarios(redisBackend(prefix))
scenarios(natsBackend(natsPrefix("nbh-links")))
