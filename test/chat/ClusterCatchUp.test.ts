import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { Command, type TPacket } from "../../src/chat/Packet.ts"
import { type ClusterBackend, memoryBackend, natsBackend, redisBackend } from "../layers/Cluster/backends.ts"
import { it } from "../support/effect.ts"
import {
  brokerHistories,
  chatCluster,
  type HistoryStores,
  pushedBeforeProbe,
  sharedMemoryHistory
} from "./clusterSupport.ts"
import { type ChatClient, show, text } from "./support.ts"

const histories = brokerHistories("chat-catchup")

/** The next _NEW_MSG, past joins and leaves. */
const nextMessage = (client: ChatClient) =>
  Effect.gen(function* () {
    while (true) {
      const p: TPacket = yield* client.next
      if (p.cmd !== Command.NEW_USER && p.cmd !== Command.DEL_USER) return p
    }
  })

const messagesBeforeProbe = (client: ChatClient) =>
  Effect.map(pushedBeforeProbe(client), (packets) => packets.filter((p) => p.cmd === Command.NEW_MSG).map(text))

const scenarios = (backend: ClusterBackend, historyStores: HistoryStores) => {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  describe(`chat catch-up after a broker outage (${backend.name})`, () => {
    for (const cutOff of ["receiving", "sending"] as const)
      test(`the ${cutOff} node's broker cut off: once it is back, the other node's members get what was said meanwhile, in order, once, before anything later`, () =>
        Effect.gen(function* () {
          const { node, join, cuttable } = yield* chatCluster(backend, historyStores)
          const outage = yield* cuttable(cutOff === "sending" ? "catch-a" : "catch-b")
          const a = yield* node("catch-a", cutOff === "sending" ? outage.layer : undefined)
          const b = yield* node("catch-b", cutOff === "receiving" ? outage.layer : undefined)
          const alice = yield* join(a.port, "alice", "outage")
          const aliceId = alice.roster[0]!.p1
          const listeners = [
            (yield* join(b.port, "bob", "outage")).client,
            (yield* join(b.port, "bea", "outage")).client
          ]
          alice.client.sendMessage("before")
          for (const client of [alice.client, ...listeners]) expect(text(yield* nextMessage(client))).toBe("before")

          yield* outage.cut
          const during = ["during 1", "during 2", "during 3"]
          for (const line of during) alice.client.sendMessage(line)
          // Stored and handed out on node A; node B cannot have them from the broker.
          for (const line of during) expect(text(yield* nextMessage(alice.client))).toBe(line)
          yield* outage.restore

          // Without a later frame of the room: node B reads them from the history.
          for (const client of listeners)
            for (const line of during)
              expect(show(yield* nextMessage(client))).toMatchObject({ cmd: Command.NEW_MSG, p1: aliceId, data: line })
          for (const client of listeners) expect(yield* messagesBeforeProbe(client)).toEqual([])
          alice.client.sendMessage("after")
          for (const client of [alice.client, ...listeners]) {
            expect(text(yield* nextMessage(client))).toBe("after")
            expect(yield* messagesBeforeProbe(client)).toEqual([])
          }
        }))
  })
}

scenarios(memoryBackend, sharedMemoryHistory)
scenarios(redisBackend(histories.prefix), histories.redis)
scenarios(natsBackend(histories.jetStreamPrefix), histories.nats)
