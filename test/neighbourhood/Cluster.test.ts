import { describe, expect } from "bun:test"
import { Effect, Exit, Layer, Scope } from "effect"
import type { ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { BrokerRoomsLive } from "../../layers/Rooms/BrokerRooms.ts"
import { BrokerReplayCountersLive } from "../../layers/Cluster/ReplayCounters.ts"
import { NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import { serveNeighbourhood } from "../../src/neighbourhood/Server.ts"
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
import {
  addressOf,
  clientPems,
  configFor,
  connectClient,
  listConverges,
  listing,
  MeshTestLayer,
  serverKeys
} from "./support.ts"

const prefix = runPrefix("neighbourhood")
cleanRedisAfterAll(prefix)

type Brokers = { readonly broker: (nodeId: string) => Layer.Layer<ClusterBroker> }

/** One node of server0 on `port`, with Rooms shared with the other nodes through the cluster's broker. */
const startNode = (brokers: Brokers, nodeId: string, port: number) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const rooms = yield* Layer.buildWithScope(
      Layer.merge(BrokerRoomsLive(), BrokerReplayCountersLive).pipe(Layer.provide(brokers.broker(nodeId))),
      scope
    )
    yield* serveNeighbourhood({
      config: configFor(0, 1, { port }),
      identity: serverKeys[0]!.identity,
      neighbours: [],
      name: nodeId
    }).pipe(Effect.provide(rooms), Scope.extend(scope))
    return { stop: Scope.close(scope, Exit.void) }
  })

/** Two nodes of one server name on a fresh cluster of `backend` (per-run prefix, removed after), three clients. */
const twoNodes = (backend: ClusterBackend) =>
  Effect.gen(function* () {
    const brokers = yield* backend.cluster()
    const nodes = [yield* startNode(brokers, "node-a", 9120), yield* startNode(brokers, "node-b", 9121)]
    const alice = yield* connectClient(9120, clientPems[0]!)
    const bob = yield* connectClient(9121, clientPems[1]!)
    const carol = yield* connectClient(9121, clientPems[2]!)
    const everyone = { [addressOf(0)]: [alice.client.fingerprint, bob.client.fingerprint, carol.client.fingerprint] }
    for (const c of [alice, bob, carol]) yield* listConverges(c, everyone)
    return { nodes, alice, bob, carol }
  })

const scenarios = (backend: ClusterBackend) =>
  describe(`Neighbourhood server name on several nodes (broker-backed Rooms, ${backend.name})`, () => {
    const test = it.skipIf(backend.skip).effect
    test("clients of both nodes see one client list, which follows a leave", () =>
      Effect.gen(function* () {
        const { alice, bob, carol } = yield* twoNodes(backend)
        yield* carol.socket.close()
        yield* listConverges(alice, { [addressOf(0)]: [alice.client.fingerprint, bob.client.fingerprint] })
        yield* listConverges(bob, { [addressOf(0)]: [alice.client.fingerprint, bob.client.fingerprint] })
      }).pipe(Effect.provide(MeshTestLayer)))

    test("public and private chats reach the clients of the other node, not the sender", () =>
      Effect.gen(function* () {
        const { alice, bob, carol } = yield* twoNodes(backend)
        yield* alice.send(alice.client.publicChat("hello, both nodes"))
        for (const c of [bob, carol]) {
          expect(yield* c.next).toMatchObject({
            kind: "public_chat",
            sender: alice.client.fingerprint,
            message: "hello, both nodes"
          })
        }
        yield* alice.send(alice.client.chat([{ pem: bob.client.publicPem, server: addressOf(0) }], "just for bob"))
        expect(yield* bob.next).toMatchObject({
          kind: "chat",
          sender: alice.client.fingerprint,
          message: "just for bob"
        })
        expect((yield* carol.next).kind).toBe("chat_for_others")
        yield* alice.expectNothingElse
      }).pipe(Effect.provide(MeshTestLayer)))

    test("a key connected on one node cannot say hello on the other", () =>
      Effect.gen(function* () {
        const { bob } = yield* twoNodes(backend)
        const impostor = yield* connectClient(9120, bob.client)
        const refused = yield* impostor.next
        expect(refused).toMatchObject({ kind: "error" })
      }).pipe(Effect.provide(MeshTestLayer)))

    test("a hello and a chat captured on one node and replayed on the other are refused (shared counters)", () =>
      Effect.gen(function* () {
        const { alice, bob, carol } = yield* twoNodes(backend)
        // Frames made now: what an eavesdropper on node A's traffic would capture.
        const chat = yield* Effect.promise(() => alice.client.publicChat("said once"))
        yield* alice.send(chat)
        expect(yield* bob.next).toMatchObject({ kind: "public_chat", message: "said once" })
        const helloAgain = yield* Effect.promise(() => alice.client.hello())
        yield* alice.send(helloAgain)
        yield* alice.expectNothingElse
        yield* alice.socket.close()
        const replayer = yield* connectClient(9121, yield* Effect.promise(() => NeighbourhoodClient.generate()), false)
        const observer = yield* connectClient(9121, yield* Effect.promise(() => NeighbourhoodClient.generate()))
        const remaining = [bob.client.fingerprint, carol.client.fingerprint, observer.client.fingerprint]
        yield* listConverges(observer, { [addressOf(0)]: remaining })

        // Replayed on node B, which never saw them: node B refuses both from the cluster's counter.
        yield* replayer.send(helloAgain)
        expect(yield* replayer.nextRaw).toContain(`counter ${alice.client.lastCounter} is not greater`)
        yield* replayer.send(chat)
        expect((yield* replayer.next).kind).toBe("error")
        yield* bob.expectNothingElse
        expect(listing(yield* observer.clientList)).toEqual({ [addressOf(0)]: remaining.sort() })
      }).pipe(Effect.provide(MeshTestLayer)))
  })

scenarios(memoryBackend)
scenarios(redisBackend(prefix))
scenarios(natsBackend(natsPrefix("neighbourhood")))
