import { afterAll, expect } from "bun:test"
import { jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { connect } from "@nats-io/transport-node"
import { Effect, Layer, Scope, Stream } from "effect"
import type { ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { destroyNatsBuckets } from "../../layers/Cluster/NatsBroker.ts"
import { BrokerFederationLive } from "../../layers/Federation/BrokerFederation.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { MemoryStreamStore } from "../../layers/Storage/MemoryStreamStore.ts"
import { NatsStreamStore, natsHistoryStream } from "../../layers/Storage/NatsStreamStore.ts"
import { RedisStreamStore } from "../../layers/Storage/RedisStreamStore.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import { NatsTokensLive, natsTokensBucket } from "../../layers/Tokens/NatsTokens.ts"
import { RedisTokensLive } from "../../layers/Tokens/RedisTokens.ts"
import type { Tokens } from "../../layers/Tokens/Tokens.ts"
import { MemoryNetwork, type MemoryClient, MemoryTransportLive } from "../../layers/Transport/MemoryTransport.ts"
import { HydrogenClusterOnFederation } from "../../src/hydrogen/Cluster.ts"
import type { HydrogenSettings } from "../../src/hydrogen/Config.ts"
import { startHydrogen } from "../../src/hydrogen/Server.ts"
import {
  buildNode,
  type ClusterBackend,
  cleanRedisAfterAll,
  memoryBackend,
  natsBackend,
  natsPrefix,
  natsUrl,
  redisBackend,
  redisUrl,
  runPrefix
} from "../layers/Cluster/backends.ts"
import { adminKey, command, ok, testSettings } from "./support.ts"

/** Per node: its broker, and the cluster-wide Tokens and history it reaches (shared instances on memory). */
export interface HydrogenBackend {
  readonly name: string
  readonly skip: boolean
  readonly live: boolean
  readonly cluster: () => Effect.Effect<
    (nodeId: string) => Layer.Layer<ClusterBroker | Tokens | StreamStore>,
    never,
    Scope.Scope
  >
}

const withShared = (backend: ClusterBackend, shared: (prefix: string) => Layer.Layer<Tokens | StreamStore>) =>
  backend.cluster().pipe(
    Effect.map((cluster) => {
      const prefix = crypto.randomUUID().slice(0, 6)
      return (nodeId: string) => Layer.merge(cluster.broker(nodeId), shared(prefix))
    })
  )

const redisRun = runPrefix("hydrogen")
const natsRun = natsPrefix("hydrogen")
/** The shared-state backends of the Hydrogen cluster suites; each run's keys, buckets and streams are removed. */
export const hydrogenBackends = (): ReadonlyArray<HydrogenBackend> => {
  cleanRedisAfterAll(redisRun)
  const natsPrefixes: Array<string> = []
  afterAll(async () => {
    if (natsPrefixes.length === 0) return
    const connection = await connect({ servers: natsUrl })
    const manager = await jetstreamManager(connection)
    for (const prefix of natsPrefixes) {
      await manager.streams.delete(natsHistoryStream(prefix)).catch(() => false)
      await (await new Kvm(connection).open(natsTokensBucket(prefix))).destroy().catch(() => false)
      await Effect.runPromise(destroyNatsBuckets(connection, prefix))
    }
    await connection.close()
  })
  const memory = memoryBackend
  const redis = redisBackend(redisRun)
  return [
    {
      ...memory,
      cluster: () =>
        Effect.gen(function* () {
          const cluster = yield* memory.cluster()
          // One history and one token table for every node: built once, handed to each.
          const shared = Layer.succeedContext(yield* Layer.build(Layer.merge(MemoryTokensLive, MemoryStreamStore)))
          return (nodeId: string) => Layer.merge(cluster.broker(nodeId), shared)
        })
    },
    {
      ...redis,
      cluster: () =>
        withShared(redis, (prefix) => {
          const options = { url: redisUrl, prefix: `${redisRun}${prefix}:` }
          return Layer.merge(RedisTokensLive(options), RedisStreamStore(options).pipe(Layer.orDie))
        })
    },
    {
      ...natsBackend(natsRun),
      cluster: () => {
        const nats = natsBackend(natsRun)
        return withShared(nats, (prefix) => {
          const options = { url: natsUrl, prefix: `${natsRun}.${prefix}` }
          natsPrefixes.push(options.prefix)
          return Layer.merge(NatsTokensLive(options), NatsStreamStore(options).pipe(Layer.orDie))
        })
      }
    }
  ]
}

/** A Hydrogen node on the shared memory network, with its own transport, rooms and metrics. */
export const startNode = (
  network: MemoryNetwork,
  shared: Layer.Layer<ClusterBroker | Tokens | StreamStore>,
  overrides: Partial<HydrogenSettings> = {}
) =>
  Effect.gen(function* () {
    const services = Layer.mergeAll(
      InProcessRoomsLive,
      HydrogenClusterOnFederation.pipe(Layer.provide(BrokerFederationLive)),
      MemoryTransportLive,
      shared
    ).pipe(
      Layer.provideMerge(Layer.merge(Layer.succeed(MemoryNetwork, network), Metrics.Default)),
      Layer.provide(shared)
    )
    const node = yield* buildNode(services)
    const server = yield* startHydrogen(testSettings(overrides)).pipe(
      Effect.provide(node.context),
      Scope.extend(node.scope)
    )
    return { ...node, port: server.port, metrics: node.get(Metrics), network, handedOver: server.sessionsHandedOver }
  })

export type HydrogenNode = Effect.Effect.Success<ReturnType<typeof startNode>>

/** A publisher's connection to a node. */
export const publisher = (node: HydrogenNode, scope: Scope.Scope) =>
  Scope.extend(
    node.network.connect(node.port, "/", {
      "sec-websocket-protocol": "hydrogen-protocol",
      authorization: `Key ${adminKey}`
    }),
    scope
  )

export type Publisher = Effect.Effect.Success<ReturnType<typeof publisher>>

/** Publishes `count` events (numbered from `from`) one command at a time, each answered before the next. */
export const publishEvents = (client: Publisher, channel: string, from: number, count: number, ack = false) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => from + i),
    (n) => ok(client, "events", "publish", { channel, action: "created", data: { n }, ack }),
    { discard: true }
  )

/** A metric's value on a node (0 when absent). */
export const nodeMetric = (node: HydrogenNode, series: string) =>
  Effect.map(node.metrics.render, (text) =>
    Number(
      text
        .split("\n")
        .find((line) => line.startsWith(`${series} `))
        ?.slice(series.length + 1) ?? 0
    )
  )

/** Waits until `node` has let go of `count` sessions other nodes took over (its copies of their acks gone). */
export const handedOver = (node: HydrogenNode, count: number) =>
  Stream.runDrain(Stream.takeUntil(node.handedOver, (released) => released >= count))

/**
 * A client of a reliable channel that acks what it gets, remembers its session and last seq, and
 * moves between nodes with system/resume. `seen` counts every event by seq (a duplicate shows as 2).
 */
export class ReliableClient {
  client: MemoryClient | undefined
  session = ""
  epoch = ""
  last = 0
  readonly seen = new Map<number, number>()
  readonly order: Array<number> = []
  /** The `n` in each event's data, in arrival order. */
  readonly numbers: Array<unknown> = []

  constructor(
    readonly channel: string,
    readonly network: MemoryNetwork,
    /** Subscription options besides the channel (a filter, a priority). */
    readonly options: object = {}
  ) {}

  private take(event: {
    type: string
    channel?: string
    seq?: number
    id?: string
    ack?: boolean
    data?: { n?: unknown }
  }) {
    if (event.type !== "event" || event.channel !== this.channel || event.seq === undefined) return Effect.void
    this.seen.set(event.seq, (this.seen.get(event.seq) ?? 0) + 1)
    this.order.push(event.seq)
    this.numbers.push(event.data?.n)
    this.last = Math.max(this.last, event.seq)
    return event.ack ? this.client!.send(JSON.stringify({ type: "ack", id: event.id })) : Effect.void
  }

  /** Connects to `node` and subscribes (first time) or resumes the session there. */
  join(node: HydrogenNode, scope: Scope.Scope) {
    return Effect.gen(this, function* () {
      this.client = yield* Scope.extend(
        this.network.connect(node.port, "/", {
          "sec-websocket-protocol": "hydrogen-protocol",
          authorization: `Key ${adminKey}`
        }),
        scope
      )
      if (this.session === "") {
        const { response } = yield* command(this.client, "subscriptions", "subscribe", {
          channel: this.channel,
          ...this.options
        })
        this.session = response.data.session
        this.epoch = response.data.epoch
        this.last = response.data.seq
        return undefined
      }
      const { response, events } = yield* command(this.client, "system", "resume", {
        session: this.session,
        positions: { [this.channel]: { epoch: this.epoch, seq: this.last } }
      })
      for (const event of events) yield* this.take(event)
      expect(response.error).toBeUndefined()
      return response.data.channels[this.channel].recovery as { recovered: boolean; replayed: number }
    })
  }

  /** Reads events until seq `upTo` has arrived. */
  until(upTo: number) {
    return Effect.gen(this, function* () {
      while (this.last < upTo) yield* this.take(yield* this.client!.nextJson("10 seconds"))
    })
  }

  /** Reads events until `count` have arrived (for filtered subscriptions). */
  untilCount(count: number) {
    return Effect.gen(this, function* () {
      while (this.order.length < count) yield* this.take(yield* this.client!.nextJson("10 seconds"))
    })
  }

  /** Every seq 1..n exactly once, in order. */
  check(n: number) {
    expect([...this.seen.entries()].filter(([, count]) => count > 1)).toEqual([])
    expect(this.order).toEqual(Array.from({ length: n }, (_, i) => i + 1))
  }
}
