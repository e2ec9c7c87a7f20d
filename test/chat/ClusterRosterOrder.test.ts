import { describe, expect } from "bun:test"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect as natsConnect } from "@nats-io/transport-node"
import { Effect, TestClock } from "effect"
import { Command, type TPacket } from "../../src/chat/Packet.ts"
import {
  adminRedis,
  type ClusterBackend,
  deleteKeys,
  keysUnder,
  memoryBackend,
  natsBackend,
  natsUrl,
  nodeTtlMillis,
  redisBackend,
  redisUrl
} from "../layers/Cluster/backends.ts"
import { it } from "../support/effect.ts"
import {
  brokerHistories,
  chatCluster,
  pushedBeforeProbe,
  sharedMemoryHistory,
  untilUsers,
  users
} from "./clusterSupport.ts"
import { type ChatClient, text } from "./support.ts"

const histories = brokerHistories("chat-roster-order")

/** Joins, leaves and messages as one process would show them: "+nick", "-nick", the message's text. */
const story = (packets: ReadonlyArray<TPacket>) =>
  packets.flatMap((p) =>
    p.cmd === Command.NEW_MSG ? [text(p)] : p.cmd === Command.NEW_USER || p.cmd === Command.DEL_USER ? users([p]) : []
  )

/**
 * Everything `client` gets up to the message `line` and just after it. Memory: the clock moves a second at a time
 * (the nodes' heartbeats and the catch-up's waits run on it) while the client is probed.
 */
const upTo = (backend: ClusterBackend, client: ChatClient, line: string) =>
  Effect.gen(function* () {
    const got: Array<TPacket> = []
    const arrived = () => got.some((p) => p.cmd === Command.NEW_MSG && text(p) === line)
    if (backend.live) while (!arrived()) got.push(yield* client.next)
    else
      for (let round = 0; round < 10 && !arrived(); round++) {
        yield* TestClock.adjust("1 second")
        got.push(...(yield* pushedBeforeProbe(client)))
      }
    got.push(...(yield* pushedBeforeProbe(client)))
    return got
  })

/** Memory: the clock moves `seconds`, a second at a time, and what `client` got meanwhile; live: what it has now. */
const meanwhile = (backend: ClusterBackend, client: ChatClient, seconds: number) =>
  Effect.gen(function* () {
    const got: Array<TPacket> = []
    for (let round = 0; round < (backend.live ? 1 : seconds); round++) {
      if (!backend.live) yield* TestClock.adjust("1 second")
      got.push(...(yield* pushedBeforeProbe(client)))
    }
    return got
  })

/**
 * A broker that lost its data: Redis, every key of this file's clusters but the histories; NATS, every entry of
 * this file's clusters' KV buckets; memory, every node's liveness runs out (the clock moves past the TTL).
 */
const loseBrokerData = (backend: ClusterBackend) => {
  if (backend.name === "nats")
    return Effect.promise(async () => {
      const connection = await natsConnect({ servers: natsUrl })
      const manager = await jetstreamManager(connection)
      const buckets = `KV_${histories.jetStreamPrefix.replace(/[^A-Za-z0-9_-]/g, "_")}`
      for await (const stream of manager.streams.names())
        if (stream.startsWith(buckets)) await manager.streams.purge(stream)
      await connection.close()
    })
  if (backend.name === "redis")
    return Effect.promise(async () => {
      const redis = await adminRedis(redisUrl)
      const keys = await keysUnder(redis, histories.prefix)
      await deleteKeys(
        redis,
        keys.filter((key) => !key.startsWith(`${histories.prefix}history:`))
      )
      redis.disconnect()
    })
  return TestClock.adjust(nodeTtlMillis + 1000)
}

const scenarios = (backend: ClusterBackend, historyStores: Parameters<typeof chatCluster>[1]) => {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  describe(`chat joins before messages across nodes after an outage (${backend.name})`, () => {
    for (const cutOff of ["sending", "receiving"] as const)
      test(`a member joining on node A and speaking while the ${cutOff} node's broker is cut: node B's members get its join, then its message`, () =>
        Effect.gen(function* () {
          const { node, join, connect, cuttable } = yield* chatCluster(backend, historyStores)
          const outage = yield* cuttable(cutOff === "sending" ? "order-a" : "order-b")
          const a = yield* node("order-a", cutOff === "sending" ? outage.layer : undefined)
          const b = yield* node("order-b", cutOff === "receiving" ? outage.layer : undefined)
          const alice = yield* join(a.port, "alice", "lobby")
          const listeners = [(yield* join(b.port, "bob", "lobby")).client, (yield* join(b.port, "bea", "lobby")).client]
          expect(users(yield* untilUsers(alice.client, 2))).toEqual(["+bob", "+bea"])
          expect(users(yield* untilUsers(listeners[0]!, 1))).toEqual(["+bea"])
          const yan = yield* connect(a.port)
          expect((yield* yan.setNick("yan")).cmd).toBe(Command.RESP_OK)

          yield* outage.cut
          expect((yield* yan.setRoom("lobby")).cmd).toBe(Command.RESP_OK)
          yan.sendMessage("yan here")
          // Node A handed both out: node B cannot have them from the broker.
          expect(story(yield* upTo(backend, alice.client, "yan here"))).toEqual(["+yan", "yan here"])
          yield* outage.restore

          for (const client of listeners)
            expect(story(yield* upTo(backend, client, "yan here"))).toEqual(["+yan", "yan here"])
        }))

    test("the broker loses its data during an outage of every node: no member is told another left and came back", () =>
      Effect.gen(function* () {
        const { node, join, cuttable } = yield* chatCluster(backend, historyStores)
        // Node B is back first and reads presence before node A has written its entries again.
        const outageB = yield* cuttable("lost-b")
        const outageA = yield* cuttable("lost-a")
        const b = yield* node("lost-b", outageB.layer)
        const a = yield* node("lost-a", outageA.layer)
        const bob = yield* join(b.port, "bob", "lobby")
        const alice = yield* join(a.port, "alice", "lobby")
        expect(users(yield* untilUsers(bob.client, 1))).toEqual(["+alice"])

        // On memory one cut is the whole hub's.
        yield* outageB.cut
        if (backend.live) yield* outageA.cut
        yield* loseBrokerData(backend)
        yield* outageB.restore
        if (backend.live) yield* outageA.restore
        // Live: node B's room waits until presence has settled (an event), then reads it once.
        if (backend.live) yield* b.rooms.ordered?.presenceSettled ?? Effect.void
        const seen = yield* meanwhile(backend, bob.client, 6)
        alice.client.sendMessage("still here")
        seen.push(...(yield* upTo(backend, bob.client, "still here")))
        expect(story(seen)).toEqual(["still here"])
      }))
  })
}

scenarios(memoryBackend, sharedMemoryHistory)
scenarios(redisBackend(histories.prefix), histories.redis)
scenarios(natsBackend(histories.jetStreamPrefix), histories.nats)
