import { describe, expect } from "bun:test"
import { Deferred, Effect, Fiber, Layer, Queue, TestClock } from "effect"
import { BrokerUnavailable, ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { Command, type TPacket } from "../../src/chat/Packet.ts"
import { type ClusterBackend, memoryBackend, natsBackend, redisBackend } from "../layers/Cluster/backends.ts"
import { it } from "../support/effect.ts"
import {
  brokerHistories,
  chatCluster,
  type HistoryStores,
  pushedBeforeProbe,
  sharedMemoryHistory,
  untilUsers,
  users
} from "./clusterSupport.ts"
import { type ChatClient, text } from "./support.ts"

const histories = brokerHistories("chat-roster-catchup")

/**
 * Memory: the whole hub was down, so node A writes its presence again at its first heartbeat back and node B reads it
 * a little later: the clock moves a second at a time while B's member is probed. Live brokers: only B's connection was
 * cut, and B reads presence as soon as it is back.
 */
const caughtUp = (backend: ClusterBackend, client: ChatClient, wanted: number) =>
  backend.live
    ? untilUsers(client, wanted)
    : Effect.gen(function* () {
        const got: Array<TPacket> = []
        for (let round = 0; round < 10 && users(got).length < wanted; round++) {
          yield* TestClock.adjust("1 second")
          got.push(...(yield* pushedBeforeProbe(client)))
        }
        return got
      })

const scenarios = (backend: ClusterBackend, historyStores: HistoryStores) => {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  describe(`chat rosters caught up across nodes (${backend.name})`, () => {
    test("a member joining and one leaving on node A while node B's broker is cut: B's members are told each once when it is back", () =>
      Effect.gen(function* () {
        const { node, join, connect, cuttable } = yield* chatCluster(backend, historyStores)
        const outage = yield* cuttable("gap-b")
        const a = yield* node("gap-a")
        const b = yield* node("gap-b", outage.layer)
        const alice = yield* join(a.port, "alice", "lobby")
        const zed = yield* join(a.port, "zed", "lobby")
        const listeners = [(yield* join(b.port, "bob", "lobby")).client, (yield* join(b.port, "bea", "lobby")).client]
        // Everyone on A knows bob and bea: B's members are up to date before the outage.
        expect(users(yield* untilUsers(alice.client, 3))).toEqual(["+zed", "+bob", "+bea"])
        expect(users(yield* untilUsers(zed.client, 2))).toEqual(["+bob", "+bea"])
        yield* pushedBeforeProbe(listeners[0]!)
        const yan = yield* connect(a.port)
        expect((yield* yan.setNick("yan")).cmd).toBe(Command.RESP_OK)

        yield* outage.cut
        expect((yield* yan.setRoom("lobby")).cmd).toBe(Command.RESP_OK)
        zed.client.close()
        // Node A handed both out: node B cannot have them from the broker.
        expect(users(yield* untilUsers(alice.client, 2))).toEqual(["+yan", "-zed"])
        yield* outage.restore

        for (const client of listeners) {
          const seen = [...(yield* caughtUp(backend, client, 2)), ...(yield* pushedBeforeProbe(client))]
          expect(users(seen).sort()).toEqual(["+yan", "-zed"])
        }
        // Live again, with nothing about them twice.
        yan.sendMessage("hi")
        for (const client of listeners) {
          const got: Array<TPacket> = []
          while (got.at(-1)?.cmd !== Command.NEW_MSG) got.push(yield* client.next)
          expect(text(got.at(-1)!)).toBe("hi")
          got.push(...(yield* pushedBeforeProbe(client)))
          expect(users(got)).toEqual([])
        }
      }))

    // On memory the outage is the whole hub's, during which every node's heartbeat runs out: only a live broker
    // can keep node B's peers alive while B is cut off.
    if (backend.live)
      test("a member of a node that died during node B's outage: B's members are told it left, once", () =>
        Effect.gen(function* () {
          const { node, join, cuttable, expire } = yield* chatCluster(backend, historyStores)
          const outage = yield* cuttable("dead-b")
          const b = yield* node("dead-b", outage.layer)
          const c = yield* node("dead-c")
          const bob = yield* join(b.port, "bob", "lobby")
          yield* join(c.port, "cid", "lobby")
          expect(users(yield* untilUsers(bob.client, 1))).toEqual(["+cid"])
          const changes = yield* b.rooms.changes

          yield* outage.cut
          yield* c.broker.sever
          yield* expire("dead-c")
          yield* outage.restore
          expect(users(yield* untilUsers(bob.client, 1))).toEqual(["-cid"])
          // The catch-up and the heartbeat's expiry both see cid gone; the expiry is reported once, and told by neither again.
          while (true) {
            const change = yield* Queue.take(changes)
            if (change._tag === "Left" && change.expired && change.member.info === "cid") break
          }
          expect(users(yield* pushedBeforeProbe(bob.client))).toEqual([])
        }))

    for (const secondRead of ["succeeds", "fails"] as const)
      test(`a member leaving between a node's first joiner's roster read and its node's subscription: the joiner is told it left (the second read ${secondRead === "fails" ? "fails: a retry tells it" : "tells it"})`, () =>
        Effect.gen(function* () {
          const { node, join, connect, broker } = yield* chatCluster(backend, historyStores)
          // Node B's subscription to the room waits until the test lets it go (after its first joiner read the roster);
          // with `fails`, B's second presence read of the room fails (the broker away for that one call).
          const reached = yield* Deferred.make<void>()
          const go = yield* Deferred.make<void>()
          let lists = 0
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
                  : real.subscribe(channel, deliver),
              presence: {
                ...real.presence,
                list: (room: string) =>
                  ++lists === 2 && secondRead === "fails"
                    ? Effect.fail(new BrokerUnavailable("test", "held"))
                    : real.presence.list(room)
              }
            }))
          ).pipe(Layer.provide(broker("window-b")))
          const a = yield* node("window-a")
          const b = yield* node("window-b", heldBroker)
          const c = yield* node("window-c")
          const ann = yield* join(a.port, "ann", "lobby")
          const zed = yield* join(c.port, "zed", "lobby")
          expect(users(yield* untilUsers(ann.client, 1))).toEqual(["+zed"])

          const jo = yield* connect(b.port)
          expect((yield* jo.setNick("jo")).cmd).toBe(Command.RESP_OK)
          const joining = yield* Effect.fork(jo.setRoom("lobby"))
          yield* Deferred.await(reached)
          // Jo has read the roster (ann and zed); zed leaves on node C before node B listens to the room.
          zed.client.close()
          // Once node A has zed's _DEL_USER, the broker has passed it on: node B's subscription comes too late for it.
          expect(users(yield* untilUsers(ann.client, 1))).toEqual(["-zed"])
          yield* Deferred.succeed(go, undefined)
          expect((yield* Fiber.join(joining)).cmd).toBe(Command.RESP_OK)
          if (secondRead === "succeeds")
            expect(users(yield* pushedBeforeProbe(jo))).toEqual(["+jo", "+zed", "+ann", "-zed"])
          else {
            // The read failed: jo keeps what she was listed until the retry, a second later, reads presence.
            const seen = [...(yield* pushedBeforeProbe(jo))]
            if (!backend.live) expect(users(seen)).toEqual(["+jo", "+zed", "+ann"])
            seen.push(...(yield* caughtUp(backend, jo, 4 - users(seen).length)))
            expect(users(seen)).toEqual(["+jo", "+zed", "+ann", "-zed"])
            expect(lists).toBeGreaterThanOrEqual(3)
          }

          ann.client.sendMessage("hi jo")
          const got: Array<TPacket> = []
          while (got.at(-1)?.cmd !== Command.NEW_MSG) got.push(yield* jo.next)
          got.push(...(yield* pushedBeforeProbe(jo)))
          expect(users(got)).toEqual([])
        }))
  })
}

scenarios(memoryBackend, sharedMemoryHistory)
scenarios(redisBackend(histories.prefix), histories.redis)
scenarios(natsBackend(histories.jetStreamPrefix), histories.nats)
