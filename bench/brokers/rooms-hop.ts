/**
 * The cost of the hop between nodes: two BrokerRooms nodes in this process on a real broker, one
 * member of a room on each; node A publishes `count` frames of `size` bytes, timed until node B's
 * member has them all. Reports frames/s across the hop and broker messages per delivered frame.
 * Run: `bun run bench/brokers/rooms-hop.ts [count] [size]` (Redis 127.0.0.1:6379, NATS 127.0.0.1:4222).
 */
import { Effect, Layer, Scope, Exit, Context } from "effect"
import { type Broker, ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { connect } from "@nats-io/transport-node"
import Redis from "ioredis"
import { destroyNatsBuckets, makeNatsBroker } from "../../layers/Cluster/NatsBroker.ts"
import { makeRedisBroker } from "../../layers/Cluster/RedisBroker.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { BrokerRoomsLive } from "../../layers/Rooms/BrokerRooms.ts"
import { Rooms } from "../../layers/Rooms/Rooms.ts"
import type { Connection } from "../../layers/Transport/Transport.ts"

const count = Number(process.argv[2] ?? 100_000)
const size = Number(process.argv[3] ?? 100)
const frame = "x".repeat(size)

/** A socket stand-in that counts what is sent to it. */
const member = (id: number, onSend: () => void): Connection<unknown> => ({
  id,
  data: undefined,
  remoteAddress: "127.0.0.1",
  send: () => {
    onSend()
    return "sent"
  },
  publish: () => {},
  publishToAll: () => {
    onSend()
  },
  subscribe: () => {},
  unsubscribe: () => {},
  isSubscribed: () => true,
  close: () => {},
  isOpen: () => true
})

const run = (name: string, broker: (nodeId: string) => Effect.Effect<Broker, unknown, Scope.Scope>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const node = (nodeId: string) =>
      Layer.buildWithScope(
        BrokerRoomsLive().pipe(
          Layer.provideMerge(
            Layer.merge(Layer.scoped(ClusterBroker, broker(nodeId)).pipe(Layer.orDie), Metrics.Default)
          )
        ),
        scope
      )
    const a = yield* node("hop-a")
    const b = yield* node("hop-b")
    const roomsA = Context.get(a, Rooms)
    const roomsB = Context.get(b, Rooms)
    let received = 0
    let done: () => void = () => {}
    const finished = new Promise<void>((resolve) => (done = resolve))
    yield* roomsA.join(
      "bench/hop",
      member(1, () => {}),
      { id: "a", info: "" }
    )
    yield* roomsB.join(
      "bench/hop",
      member(2, () => ++received === count && done()),
      { id: "b", info: "" }
    )
    const started = performance.now()
    const cpuBefore = process.cpuUsage()
    for (let i = 0; i < count; i++) {
      roomsA.publish("bench/hop", frame)
      // Let socket I/O run now and then, as a server's event loop would between messages.
      if (i % 1000 === 999) yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
    yield* Effect.promise(() => finished)
    const seconds = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(cpuBefore)
    const cpuUsPerFrame = (cpu.user + cpu.system) / count
    const metrics = Context.get(b, Metrics)
    const inbound = metrics
      .counter("switchboard_cluster_broker_messages_total", "", ["direction"])
      .labels({ direction: "in" }).value
    console.log(
      `${name.padEnd(6)} ${Math.round(count / seconds).toLocaleString("en")} frames/s across the hop, ${cpuUsPerFrame.toFixed(2)} µs CPU per frame (both nodes), ${(inbound / received).toFixed(2)} broker messages per delivered frame`
    )
    yield* Scope.close(scope, Exit.void)
  })

const prefix = `bench-hop-${crypto.randomUUID().slice(0, 8)}`
await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      console.log(`${count} frames of ${size} bytes, node A → node B, one process, loopback broker`)
      yield* run("redis", (nodeId) => makeRedisBroker({ url: "redis://127.0.0.1:6379", prefix: `${prefix}:`, nodeId }))
      yield* run("nats", (nodeId) => makeNatsBroker({ url: "127.0.0.1:4222", prefix, nodeId }))
    })
  )
)
// Leave nothing behind in the brokers.
const redis = new Redis("redis://127.0.0.1:6379")
const keys = await redis.keys(`${prefix}:*`)
if (keys.length > 0) await redis.del(...keys)
redis.disconnect()
const admin = await connect({ servers: "127.0.0.1:4222" })
await Effect.runPromise(destroyNatsBuckets(admin, prefix))
await admin.close()
process.exit(0)
