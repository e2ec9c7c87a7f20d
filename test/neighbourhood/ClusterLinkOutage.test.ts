import { describe, expect } from "bun:test"
import { Clock, Effect } from "effect"
import {
  type ClusterBackend,
  type CuttableBroker,
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
  expectPublic,
  linksAcceptedFromA,
  nextWithin,
  type Node,
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

const prefix = runPrefix("nbh-link-outage")
cleanRedisAfterAll(prefix)

/**
 * Server A on two nodes whose brokers the test can cut (on memory a cut is the whole hub's), a1 holding
 * the link, beside server B on one; bob on a2, carol on B, every list complete.
 */
const cuttableBesideNeighbour = (backend: ClusterBackend) =>
  Effect.gen(function* () {
    const brokers = yield* backend.cluster()
    const cuts: Record<string, CuttableBroker> = {
      a1: yield* brokers.cuttable("a1"),
      a2: yield* brokers.cuttable("a2")
    }
    const a1 = yield* startNode(cuts.a1!.layer, 0, "a1", 9120)
    const a2 = yield* startNode(cuts.a2!.layer, 0, "a2", portOf(0))
    const b = yield* startServer(1, 2, { limits: pollingLimits })
    yield* Effect.addFinalizer(() => b.stop)
    const fromA = () => b.server.mesh.neighbours.get(serverA)!
    yield* advanceUntil(() => a1.linked() && fromA().inbound !== undefined, "a1 linked to B")
    const bob = yield* connectClient(a2.port, clientPems[1]!)
    const carol = yield* connectClient(portOf(1), clientPems[2]!)
    const expected = { [serverA]: [bob.client.fingerprint], [serverB]: [carol.client.fingerprint] }
    for (const c of [bob, carol]) yield* listConverges(c, expected)
    return { brokers, cuts, a1, a2, b, fromA, bob, carol }
  })

/** At most one node of A keeps a live link to B, at every step. */
const atMostOneLinked = (nodes: ReadonlyArray<Node>) =>
  expect(nodes.filter((node) => node.linked()).map((node) => node.nodeId).length).toBeLessThanOrEqual(1)

/** `steps` steps of the clock, each checking that at most one node of A is linked. */
const stepsWithOneLink = (nodes: ReadonlyArray<Node>, steps: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < steps; i++) {
      yield* step
      atMostOneLinked(nodes)
    }
  })

/** Steps until `done`, checking at each that at most one node of A is linked. */
const untilWithOneLink = (nodes: ReadonlyArray<Node>, done: () => boolean, label: string) =>
  Effect.gen(function* () {
    for (let i = 0; i < 200 && !done(); i++) {
      yield* step
      atMostOneLinked(nodes)
    }
    if (!done()) return yield* Effect.dieMessage(`never happened: ${label}`)
  })

const scenarios = (backend: ClusterBackend) =>
  describe(`Neighbourhood links of a server on two nodes during broker outages (${backend.name})`, () => {
    const test = it.skipIf(backend.skip).effect

    test("the holder loses the broker: it closes its link before its claim can pass, and one node links after", () =>
      Effect.gen(function* () {
        const { brokers, cuts, a1, a2, fromA, bob, carol } = yield* cuttableBesideNeighbour(backend)
        const nodes = [a1, a2]
        yield* cuts.a1!.cut
        const cutAt = yield* Clock.currentTimeMillis
        yield* untilWithOneLink(nodes, () => !a1.linked(), "a1 closed its link")
        // Its last heartbeat the broker took was before the cut: the claim may pass only after that one ran out.
        expect((yield* Clock.currentTimeMillis) - cutAt).toBeLessThan(nodeTtlMillis)
        if (backend.live) {
          // Only a1 is cut: its heartbeat runs out on the broker (made now), and a2 takes the link.
          yield* brokers.expire("a1.claims")
          yield* untilWithOneLink(nodes, () => a2.linked() && fromA().inbound !== undefined, "a2 linked to B")
        } else yield* stepsWithOneLink(nodes, 100) // The whole hub is down: no node can confirm a claim, none links.
        yield* cuts.a1!.restore
        yield* stepsWithOneLink(nodes, 50)
        yield* untilWithOneLink(nodes, () => (a1.linked() || a2.linked()) && fromA().inbound !== undefined, "relinked")
        yield* stepsWithOneLink(nodes, 50)
        if (backend.live) expect(a2.linked()).toBe(true)
        yield* bob.send(bob.client.publicChat("after the outage"))
        yield* expectPublic(carol, bob, "after the outage")
        expect(yield* linksAcceptedFromA(serverB)).toBe(2)
      }).pipe(Effect.provide(MeshTestLayer)))

    if (backend.live)
      test("a node that is not the holder loses the broker: it does not link while it cannot confirm a claim", () =>
        Effect.gen(function* () {
          const { cuts, a1, a2, bob, carol } = yield* cuttableBesideNeighbour(backend)
          const nodes = [a1, a2]
          yield* cuts.a2!.cut
          // Ten seconds without a2 hearing the holder: it tries the claim every second once it heard none for 4 s.
          yield* stepsWithOneLink(nodes, 100)
          expect(a1.linked()).toBe(true)
          yield* cuts.a2!.restore
          yield* stepsWithOneLink(nodes, 50)
          expect(a1.linked()).toBe(true)
          yield* carol.send(carol.client.publicChat("one link all along"))
          yield* expectPublic(bob, carol, "one link all along")
          expect(yield* linksAcceptedFromA(serverB)).toBe(1)
        }).pipe(Effect.provide(MeshTestLayer)))

    test("the holder dies: a message handed to it meanwhile is reported to its sender, none arrives twice", () =>
      Effect.gen(function* () {
        const { brokers, a1, a2, fromA, bob, carol } = yield* cuttableBesideNeighbour(backend)
        yield* a1.kill
        if (backend.live) {
          yield* brokers.expire(a1.nodeId)
          yield* brokers.expire("a1.claims")
        }
        // a2 still routes B's frames to a1 (it last heard a1 less than 4 s ago): nobody sends this one on.
        yield* bob.send(bob.client.publicChat("into the gap"))
        const report = yield* nextWithin(bob, 100, "bob hears his message may not have arrived")
        expect(report).toMatchObject({ kind: "error" })
        expect(JSON.stringify(report)).toContain(serverB)
        yield* advanceUntil(() => a2.linked() && fromA().inbound !== undefined, "a2 linked to B")
        yield* listConverges(carol, { [serverA]: [bob.client.fingerprint], [serverB]: [carol.client.fingerprint] })
        yield* bob.send(bob.client.publicChat("on the new link"))
        // The first one never came, and this one comes once.
        yield* expectPublic(carol, bob, "on the new link")
        for (const c of [bob, carol]) yield* c.expectNothingElse
      }).pipe(Effect.provide(MeshTestLayer)))
  })

scenarios(memoryBackend)
scenarios(redisBackend(prefix))
scenarios(natsBackend(natsPrefix("nbh-link-outage")))
