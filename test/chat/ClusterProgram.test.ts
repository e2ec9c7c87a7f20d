import { afterAll, describe, expect } from "bun:test"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"
import { ChatLive } from "../../programs/servers/chat.ts"
import { destroyNatsBuckets } from "../../layers/Cluster/NatsBroker.ts"
import { natsHistoryStream } from "../../layers/Storage/NatsStreamStore.ts"
import { TPacketClient } from "../../src/chat/Client.ts"
import { Command } from "../../src/chat/Packet.ts"
import { cleanRedisAfterAll, natsAvailable, natsUrl, redisAvailable } from "../layers/Cluster/backends.ts"
import { it } from "../support/effect.ts"
import { launchProgram, listeningPort } from "../support/program.ts"
import { takeUntil, text } from "./support.ts"

const redisPrefix = `sbtest-chatprog-${crypto.randomUUID().slice(0, 8)}`
const natsPrefix = `sbtest-chatprog-${crypto.randomUUID().slice(0, 8)}`
cleanRedisAfterAll(`${redisPrefix}:`)
afterAll(async () => {
  if (!natsAvailable) return
  const connection = await connect({ servers: natsUrl })
  await (await jetstreamManager(connection)).streams.delete(natsHistoryStream(natsPrefix)).catch(() => false)
  await Effect.runPromise(destroyNatsBuckets(connection, natsPrefix))
  await connection.close()
})

/** ChatLive from a JSON config in the test's scope, on the port it bound. */
const launch = (json: object) =>
  Effect.map(launchProgram(ChatLive, json), (lines) => ({
    url: `ws://127.0.0.1:${listeningPort(lines, "")}/`,
    lines
  }))

const nodeConfig = (broker: "redis" | "nats", nodeId: string) => ({
  chat: { port: 0, hostname: "127.0.0.1" },
  cluster: { broker, nodeId, prefix: broker === "redis" ? redisPrefix : natsPrefix }
})

const join = (url: string, nick: string, room: string) =>
  Effect.acquireRelease(
    Effect.promise(() => TPacketClient.join(url, nick, room)),
    ({ client }) => Effect.sync(() => client.close())
  )

for (const [broker, available] of [
  ["redis", redisAvailable],
  ["nats", natsAvailable]
] as const) {
  describe(`chat program as a ${broker} cluster node`, () => {
    it.skipIf(!available).live("history is in the broker: a joiner on node B gets what was said on node A", () =>
      Effect.gen(function* () {
        const a = yield* launch(nodeConfig(broker, "chat-a"))
        const b = yield* launch(nodeConfig(broker, "chat-b"))
        const ann = yield* join(a.url, "ann", "program-room")
        expect(ann.roomReply.cmd).toBe(Command.RESP_OK)
        ann.client.sendMessage("said on A")
        yield* takeUntil(ann.client, (p) => p.cmd === Command.NEW_MSG)
        // The line was stored before it was delivered: a second join on A gets it from the broker.
        const amy = yield* join(a.url, "amy", "program-room")
        yield* takeUntil(amy.client, (p) => p.cmd === Command.LOGGED_MSG)
        const ben = yield* join(b.url, "ben", "program-room")
        const seen = yield* takeUntil(ben.client, (p) => p.cmd === Command.LOGGED_MSG)
        // The replies to nick and room stay in the client's stream: only what the server pushed counts here.
        const pushed = seen.filter((p) => p.cmd !== Command.RESP_OK)
        expect(pushed.map((p) => [p.cmd, text(p)])).toEqual([
          [Command.NEW_USER, "ben"],
          [Command.NEW_USER, "amy"],
          [Command.NEW_USER, "ann"],
          [Command.LOGGED_MSG, "ann: said on A"]
        ])
        expect(a.lines.some((line) => line.includes("chat.history.backend"))).toBe(false)
      })
    )

    it.skipIf(!available).live(
      "a per-node history (sqlite) is refused: the history's seq orders every node's messages",
      () =>
        Effect.gen(function* () {
          const config = nodeConfig(broker, "chat-sqlite")
          const started = yield* Effect.either(
            launch({ ...config, chat: { ...config.chat, history: { backend: "sqlite" } } })
          )
          expect(started._tag).toBe("Left")
          expect(String(started._tag === "Left" ? started.left : "")).toContain("history must be shared")
        })
    )
  })
}
