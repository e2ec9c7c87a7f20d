import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { readStoredMessage } from "../../src/chat/HistoryText.ts"
import { Command } from "../../src/chat/Packet.ts"
import { type ClusterBackend, memoryBackend, natsBackend, redisBackend } from "../layers/Cluster/backends.ts"
import { it } from "../support/effect.ts"
import { brokerHistories, chatCluster, type HistoryStores, sharedMemoryHistory } from "./clusterSupport.ts"
import { type ChatClient, text } from "./support.ts"

const histories = brokerHistories("chat-burst")
// More than one batch of stored messages (256), so a burst is stored in several round trips.
const BURST = 600

/** The next `count` _NEW_MSG texts `client` gets. */
const newMessages = (client: ChatClient, count: number) =>
  Effect.gen(function* () {
    const seen: Array<string> = []
    while (seen.length < count) {
      const packet = yield* client.next
      if (packet.cmd === Command.NEW_MSG) seen.push(text(packet))
    }
    return seen
  })

const scenarios = (backend: ClusterBackend, historyStores: HistoryStores) => {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  describe(`chat burst larger than one batch (${backend.name})`, () => {
    test("one sender's burst reaches members on both nodes in the order sent, numbered consecutively", () =>
      Effect.gen(function* () {
        const { node, join } = yield* chatCluster(backend, historyStores, { messageBurst: 10_000 })
        const [a, b] = yield* Effect.all([node("burst-a"), node("burst-b")])
        const sender = (yield* join(a.port, "sender", "burst")).client
        const nearby = (yield* join(a.port, "nearby", "burst")).client
        const far = (yield* join(b.port, "far", "burst")).client
        const sent = Array.from({ length: BURST }, (_, i) => `m${i}`)
        for (const line of sent) sender.sendMessage(line)

        for (const client of [sender, nearby, far]) expect(yield* newMessages(client, BURST)).toEqual(sent)
        const position = yield* a.store.position("chat/burst")
        expect(position.last).toBe(BURST)
        // The history keeps the newest lines that fit its bound, consecutive and in the order sent.
        const kept = yield* a.store.readAfter("chat/burst", 0)
        expect(kept.length).toBeGreaterThan(0)
        expect(kept.map((entry) => entry.seq)).toEqual(kept.map((_, i) => BURST - kept.length + 1 + i))
        expect(kept.map((entry) => readStoredMessage(entry.payload).line)).toEqual(
          sent.slice(BURST - kept.length).map((line) => `sender: ${line}`)
        )
      }))
  })
}

scenarios(memoryBackend, sharedMemoryHistory)
scenarios(redisBackend(histories.prefix), histories.redis)
scenarios(natsBackend(histories.jetStreamPrefix), histories.nats)
