import { afterAll, describe, expect } from "bun:test"
import { jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { connect } from "@nats-io/transport-node"
import { Effect, Exit } from "effect"
import { HydrogenLive } from "../../programs/servers/hydrogen.ts"
import { destroyNatsBuckets } from "../../layers/Cluster/NatsBroker.ts"
import { natsHistoryStream } from "../../layers/Storage/NatsStreamStore.ts"
import { natsTokensBucket } from "../../layers/Tokens/NatsTokens.ts"
import { it } from "../support/effect.ts"
import { launchProgram, listeningPort } from "../support/program.ts"
import { connectWs } from "../support/WsClient.ts"
import { cleanRedisAfterAll, natsAvailable, natsUrl, redisAvailable } from "../layers/Cluster/backends.ts"
import { command, ok } from "./support.ts"

const key = "legacy-key-0123456789"
const redisPrefix = `sbtest-hprog-${crypto.randomUUID().slice(0, 8)}`
const natsPrefix = `sbtest-hprog-${crypto.randomUUID().slice(0, 8)}`
cleanRedisAfterAll(`${redisPrefix}:`)
afterAll(async () => {
  if (!natsAvailable) return
  const connection = await connect({ servers: natsUrl })
  await (await jetstreamManager(connection)).streams.delete(natsHistoryStream(natsPrefix)).catch(() => false)
  await (await new Kvm(connection).open(natsTokensBucket(natsPrefix))).destroy().catch(() => false)
  await Effect.runPromise(destroyNatsBuckets(connection, natsPrefix))
  await connection.close()
})

/** HydrogenLive from a JSON config in its own scope; its port read from the "listening" line. */
const launch = (json: object) =>
  Effect.map(launchProgram(HydrogenLive, json), (lines) => ({ port: listeningPort(lines, "hydrogen"), lines }))

const nodeConfig = (broker: "redis" | "nats", nodeId: string) => ({
  hydrogen: { Port: 0, Interface: "127.0.0.1", StatusInterval: 0, Key: key, ReliableChannels: ["orders"] },
  cluster: { broker, nodeId, prefix: broker === "redis" ? redisPrefix : natsPrefix }
})

const client = (port: number) =>
  connectWs(`ws://127.0.0.1:${port}/`, { protocols: "hydrogen-protocol", headers: { authorization: `Key ${key}` } })

for (const [broker, available] of [
  ["redis", redisAvailable],
  ["nats", natsAvailable]
] as const) {
  describe(`hydrogen program as a ${broker} cluster node`, () => {
    it.skipIf(!available).live(
      "two nodes: an event published on one reaches a subscriber on the other; resume on the second node",
      () =>
        Effect.gen(function* () {
          const a = yield* launch(nodeConfig(broker, "hydrogen-a"))
          const b = yield* launch(nodeConfig(broker, "hydrogen-b"))
          expect(a.lines.some((line) => line.includes(`cluster node hydrogen-a joined`))).toBe(true)
          const subscriber = yield* client(a.port)
          const subscribed = yield* ok(subscriber, "subscriptions", "subscribe", { channel: "orders" })
          const publisher = yield* client(b.port)
          const published = yield* ok(publisher, "events", "publish", {
            channel: "orders",
            action: "created",
            data: { n: 1 }
          })
          expect(published.epoch).toBe(subscribed.epoch)
          const event = yield* subscriber.nextJson()
          expect(event).toMatchObject({ seq: published.seq, data: { n: 1 } })
          yield* ok(publisher, "events", "publish", { channel: "orders", action: "created", data: { n: 2 } })
          const moved = yield* client(b.port)
          const { response, events } = yield* command(moved, "system", "resume", {
            session: subscribed.session,
            positions: { orders: { epoch: subscribed.epoch, seq: event.seq } }
          })
          expect(response.data.channels.orders.recovery).toEqual({ recovered: true, replayed: 1 })
          expect(events.map((replayed) => replayed.data.n)).toEqual([2])
          // Node A let the session go: its connection closes as replaced.
          expect((yield* subscriber.closed).code).toBe(4004)
        })
    )
  })
}

describe("hydrogen program cluster config", () => {
  it.skipIf(!redisAvailable).live("a per-node history store is refused on a cluster node", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        launch({
          ...nodeConfig("redis", "hydrogen-x"),
          hydrogen: { Port: 0, Key: key, storage: { backend: "sqlite" } }
        })
      )
      expect(Exit.isFailure(exit)).toBe(true)
      expect(JSON.stringify(exit)).toContain("history must be shared")
    })
  )
})
