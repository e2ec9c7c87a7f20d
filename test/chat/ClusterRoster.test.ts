import { describe, expect } from "bun:test"
import { Deferred, Effect, Fiber, Layer } from "effect"
import { ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { Command, type TPacket } from "../../src/chat/Packet.ts"
import { type ClusterBackend, memoryBackend, natsBackend, redisBackend } from "../layers/Cluster/backends.ts"
import { it } from "../support/effect.ts"
import {
  brokerHistories,
  chatCluster,
  type HistoryStores,
  pushedBeforeProbe,
  sharedMemoryHistory,
  users
} from "./clusterSupport.ts"
import { type ChatClient, show, text } from "./support.ts"

const histories = brokerHistories("chat-roster")

const scenarios = (backend: ClusterBackend, historyStores: HistoryStores) => {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  describe(`chat rosters across nodes (${backend.name})`, () => {
    test("a member joining on a third node between a joiner's roster read and its node's subscription is in the joiner's view, once", () =>
      Effect.gen(function* () {
        const { node, join, connect, broker } = yield* chatCluster(backend, historyStores)
        // Node B's subscription to the room waits until the test lets it go (after its first joiner read the roster).
        const reached = yield* Deferred.make<void>()
        const go = yield* Deferred.make<void>()
        const heldBroker = Layer.effect(
          ClusterBroker,
          Effect.map(ClusterBroker, (real) => ({
            ...real,
            subscribe: (channel: string, deliver: (bytes: Uint8Array) => void) =>
              channel.startsWith("room/")
                ? Effect.zipRight(
                    Effect.zipRight(Deferred.succeed(reached, undefined), Deferred.await(go)),
                    real.subscribe(channel, deliver)
                  )
                : real.subscribe(channel, deliver)
          }))
        ).pipe(Layer.provide(broker("roster-b")))
        const a = yield* node("roster-a")
        const b = yield* node("roster-b", heldBroker)
        const c = yield* node("roster-c")
        const ann = yield* join(a.port, "ann", "lobby")

        const jo = yield* connect(b.port)
        expect((yield* jo.setNick("jo")).cmd).toBe(Command.RESP_OK)
        const joining = yield* Effect.fork(jo.setRoom("lobby"))
        yield* Deferred.await(reached)
        // Jo has read the roster (ann only); xia joins on node C and is announced before node B listens to the room.
        const xia = yield* join(c.port, "xia", "lobby")
        expect(users(xia.roster)).toEqual(["+xia", "+ann"])
        // Once node A has xia's _NEW_USER, the broker has passed it on: node B's subscription comes too late for it.
        expect(show(yield* ann.client.next)).toMatchObject({ cmd: Command.NEW_USER, data: "xia" })
        yield* Deferred.succeed(go, undefined)
        expect((yield* Fiber.join(joining)).cmd).toBe(Command.RESP_OK)
        const seen = yield* pushedBeforeProbe(jo)
        expect(users(seen)).toEqual(["+jo", "+ann", "+xia"])

        xia.client.sendMessage("hi jo")
        expect(show(yield* jo.next)).toMatchObject({ cmd: Command.NEW_MSG, data: "hi jo" })
        expect(users(yield* pushedBeforeProbe(jo))).toEqual([])
        // The others see jo come once: her _NEW_USER left node B before her first message.
        jo.sendMessage("jo here")
        for (const client of [ann.client, xia.client]) {
          const got: Array<TPacket> = []
          while (!got.some((p) => p.cmd === Command.NEW_MSG && text(p) === "jo here")) got.push(yield* client.next)
          got.push(...(yield* pushedBeforeProbe(client)))
          expect(users(got)).toEqual(["+jo"])
        }
      }))

    test("a member listed to a node's first joiner whose _NEW_USER comes after that node listens: not told twice, both ways", () =>
      Effect.gen(function* () {
        const { node, join } = yield* chatCluster(backend, historyStores)
        // Node C's first joiner stops after entering presence, before its _NEW_USER goes out, until the test lets it go.
        const reached = yield* Deferred.make<void>()
        const go = yield* Deferred.make<void>()
        let held = false
        const a = yield* node("listed-a")
        const b = yield* node("listed-b")
        const c = yield* node("listed-c", undefined, (store) => ({
          ...store,
          position: (stream) =>
            held
              ? store.position(stream)
              : Effect.zipRight(
                  Effect.zipRight(
                    Effect.sync(() => (held = true)),
                    Deferred.succeed(reached, undefined)
                  ),
                  Effect.zipRight(Deferred.await(go), store.position(stream))
                )
        }))
        const ann = yield* join(a.port, "ann", "lobby")
        const entering = yield* Effect.fork(join(c.port, "xia", "lobby"))
        yield* Deferred.await(reached)
        // Jo, node B's first member, is listed xia (in presence already) and listens before xia's _NEW_USER leaves C.
        const jo = yield* join(b.port, "jo", "lobby")
        expect(users(jo.roster)).toEqual(["+jo", "+xia", "+ann"])
        yield* Deferred.succeed(go, undefined)
        const xia = yield* Fiber.join(entering)
        // Xia is told of jo (who joined while C started listening) once; jo's own _NEW_USER, arriving later, not again.
        expect(users(xia.roster)).toEqual(["+xia", "+ann", "+jo"])
        xia.client.sendMessage("hello")
        // Everything xia's node sent before her message (her _NEW_USER among it) reached jo before it.
        const before: Array<TPacket> = []
        while (before.at(-1)?.cmd !== Command.NEW_MSG) before.push(yield* jo.client.next)
        expect(users(before)).toEqual([])
        expect(text(before.at(-1)!)).toBe("hello")
        expect(users(yield* pushedBeforeProbe(xia.client))).toEqual([])
        // Ann, on a node that listened all along, sees both come (in whatever order the broker gave), once.
        const seenByAnn: Array<TPacket> = []
        while (!seenByAnn.some((p) => p.cmd === Command.NEW_MSG) || users(seenByAnn).length < 2)
          seenByAnn.push(yield* ann.client.next)
        seenByAnn.push(...(yield* pushedBeforeProbe(ann.client)))
        expect(users(seenByAnn).sort()).toEqual(["+jo", "+xia"])
      }))

    test("a joiner on a node already in the room, listed a member whose _NEW_USER is still on its way: it alone is not told again", () =>
      Effect.gen(function* () {
        const { node, join } = yield* chatCluster(backend, historyStores)
        const reached = yield* Deferred.make<void>()
        const go = yield* Deferred.make<void>()
        let held = false
        const b = yield* node("late-b")
        const c = yield* node("late-c", undefined, (store) => ({
          ...store,
          position: (stream) =>
            held
              ? store.position(stream)
              : Effect.zipRight(
                  Effect.zipRight(
                    Effect.sync(() => (held = true)),
                    Deferred.succeed(reached, undefined)
                  ),
                  Effect.zipRight(Deferred.await(go), store.position(stream))
                )
        }))
        const jo = yield* join(b.port, "jo", "lobby")
        const entering = yield* Effect.fork(join(c.port, "xia", "lobby"))
        yield* Deferred.await(reached)
        // Xia is in presence, her _NEW_USER not sent yet: kim (node B's second member) is listed her.
        const kim = yield* join(b.port, "kim", "lobby")
        expect(users(kim.roster)).toEqual(["+kim", "+xia", "+jo"])
        expect(show(yield* jo.client.next)).toMatchObject({ cmd: Command.NEW_USER, data: "kim" })
        yield* Deferred.succeed(go, undefined)
        const xia = yield* Fiber.join(entering)
        expect(users(xia.roster)).toEqual(["+xia", "+jo", "+kim"])
        xia.client.sendMessage("hello")
        // Jo was not listed xia: her _NEW_USER comes, before her message; kim gets only the message.
        const untilHello = (client: ChatClient) =>
          Effect.gen(function* () {
            const got: Array<TPacket> = []
            while (got.at(-1)?.cmd !== Command.NEW_MSG) got.push(yield* client.next)
            return users(got)
          })
        expect(yield* untilHello(jo.client)).toEqual(["+xia"])
        expect(yield* untilHello(kim.client)).toEqual([])
        for (const client of [jo.client, kim.client, xia.client])
          expect(users(yield* pushedBeforeProbe(client))).toEqual([])
      }))
  })
}

scenarios(memoryBackend, sharedMemoryHistory)
scenarios(redisBackend(histories.prefix), histories.redis)
scenarios(natsBackend(histories.jetStreamPrefix), histories.nats)
