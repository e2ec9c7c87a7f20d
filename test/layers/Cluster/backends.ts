import { redisKeys } from "../../../layers/Cluster/RedisKeys.ts"
import { afterAll } from "bun:test"
import { Clock, Context, Effect, Exit, Layer, Scope, TestClock } from "effect"
import { ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import {
  BrokerCountersLive,
  type SharedLimiter,
  SharedLimits,
  SharedLimitsLive
} from "../../../layers/Cluster/Counters.ts"
import { MemoryBrokerHub } from "../../../layers/Cluster/MemoryBroker.ts"
import { makeRedisBroker } from "../../../layers/Cluster/RedisBroker.ts"
import { destroyNatsBuckets, makeNatsBroker } from "../../../layers/Cluster/NatsBroker.ts"
import { Kvm } from "@nats-io/kv"
import { connect } from "@nats-io/transport-node"
import { parseClusterUrl } from "../../../layers/Cluster/RedisConnection.ts"
import { redisClusterAvailable } from "../../support/redisCluster.ts"
import { adminRedis, deleteKeys, keysUnder, sharedRedisCluster } from "./redisAdmin.ts"
import { requireService } from "../../support/services.ts"
import { tcpProxy } from "./TcpProxy.ts"
import { natsTokensBucket } from "../../../layers/Tokens/NatsTokens.ts"

/** The Redis the Redis suites use: `TEST_REDIS_URL` (`redis://` or `redis-cluster://` seeds) or the local one. */
export const redisUrl = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379"
const redisSeed = (
  redisUrl.startsWith("redis-cluster://")
    ? parseClusterUrl(redisUrl).seeds[0]
    : { host: new URL(redisUrl).hostname, port: Number(new URL(redisUrl).port || 6379) }
) as { host: string; port: number }
export const redisAvailable = await requireService("Redis", redisSeed.host, redisSeed.port)

export { redisClusterAvailable }
export { adminRedis, deleteKeys, keysUnder, sharedRedisCluster } from "./redisAdmin.ts"

export const natsUrl = "127.0.0.1:4222"
export const natsAvailable = await requireService("NATS", "127.0.0.1", 4222)

/** A prefix no other run uses, so parallel runs never share channels or keys. */
export const runPrefix = (label: string) => `sbtest:${label}:${crypto.randomUUID().slice(0, 8)}:`

/** Destroys the NATS token bucket of `prefix` (a NatsTokens store's) when the test file ends. */
export const cleanNatsTokensAfterAll = (prefix: string) =>
  afterAll(async () => {
    if (!natsAvailable) return
    const admin = await connect({ servers: natsUrl })
    await (await new Kvm(admin).open(natsTokensBucket(prefix))).destroy().catch(() => false)
    await admin.close()
  })

/** Deletes every Redis key under `prefix` when the test file ends. */
export const cleanRedisAfterAll = (prefix: string) =>
  afterAll(async () => {
    if (!redisAvailable) return
    const redis = await adminRedis(redisUrl)
    await deleteKeys(redis, await keysUnder(redis, prefix))
    redis.disconnect()
  })

/**
 * One way to run a cluster in a test: memory (nodes in this process, TestClock) or a real broker
 * (it.live). `expire` makes a crashed node's heartbeat run out now: on memory by moving the clock
 * past the node TTL, on a real broker by deleting its liveness key after checking its expiry is set.
 */
export interface ClusterBackend {
  readonly name: string
  readonly skip: boolean
  readonly live: boolean
  /** A fresh cluster: each call of `broker` gives one node's broker layer. */
  readonly cluster: () => Effect.Effect<
    {
      readonly broker: (nodeId: string) => Layer.Layer<ClusterBroker>
      readonly expire: (nodeId: string) => Effect.Effect<void>
      /** A node's broker that the test can cut off and bring back (on memory, the whole hub's outage). */
      readonly cuttable: (nodeId: string) => Effect.Effect<CuttableBroker, never, Scope.Scope>
    },
    never,
    Scope.Scope
  >
}

/** One node's broker with an outage switch: `cut` returns once the node saw it; `restore` once it is back. */
export interface CuttableBroker {
  readonly layer: Layer.Layer<ClusterBroker>
  readonly cut: Effect.Effect<void>
  readonly restore: Effect.Effect<void>
}

/** Cut and restore through `switchOff`/`switchOn`, waiting for the node's own disconnect and reconnect callbacks. */
const outageOf = (
  broker: () => ClusterBroker["Type"] | undefined,
  switchOff: Effect.Effect<void>,
  switchOn: Effect.Effect<void>
) => {
  const waitFor = (register: (node: ClusterBroker["Type"], callback: () => void) => void, act: Effect.Effect<void>) =>
    Effect.async<void>((resume) => {
      let done = false
      register(broker()!, () => {
        if (done) return
        done = true
        resume(Effect.void)
      })
      Effect.runFork(act)
    })
  return {
    cut: waitFor((node, callback) => node.onDisconnect(callback), switchOff),
    restore: waitFor((node, callback) => node.onReconnect(callback), switchOn)
  }
}

/** A real broker's layer through a TCP proxy (released after the nodes built on it, so they close cleanly). */
const proxiedBroker = (
  targetPort: number,
  make: (address: string) => Effect.Effect<ClusterBroker["Type"], unknown, Scope.Scope>
) =>
  Effect.gen(function* () {
    const proxy = yield* Effect.acquireRelease(
      Effect.promise(() => tcpProxy(targetPort)),
      (proxy) => Effect.promise(() => proxy.cut())
    )
    let made: ClusterBroker["Type"] | undefined
    const layer = Layer.scoped(
      ClusterBroker,
      Effect.tap(make(`127.0.0.1:${proxy.port}`), (broker) => (made = broker))
    ).pipe(Layer.orDie)
    const outage = outageOf(
      () => made,
      Effect.promise(() => proxy.cut()),
      Effect.promise(() => proxy.restore())
    )
    return { layer, ...outage }
  })

export const nodeTtlMillis = 5000

export const memoryBackend: ClusterBackend = {
  name: "memory",
  skip: false,
  live: false,
  cluster: () =>
    Effect.sync(() => {
      const hub = new MemoryBrokerHub()
      return {
        broker: (nodeId) => Layer.succeed(ClusterBroker, hub.node(nodeId)),
        expire: () => TestClock.adjust(nodeTtlMillis + 1000),
        cuttable: (nodeId) =>
          Effect.sync(() => {
            const node = hub.node(nodeId)
            const outage = outageOf(
              () => node,
              Effect.sync(() => hub.setDown(true)),
              Effect.sync(() => hub.setDown(false))
            )
            return { layer: Layer.succeed(ClusterBroker, node), ...outage }
          })
      }
    })
}

/** Redis: the one at `redisUrl`, or (`"cluster"`) the shared Redis Cluster this process starts. */
export const redisBackend = (prefix: string, on: "redis" | "cluster" = "redis"): ClusterBackend => ({
  name: on === "redis" ? "redis" : "redis-cluster",
  skip: on === "redis" ? !redisAvailable : !redisClusterAvailable,
  live: true,
  cluster: () =>
    Effect.gen(function* () {
      const url = on === "redis" ? redisUrl : (yield* Effect.promise(sharedRedisCluster)).url
      const clusterPrefix = `${prefix}${crypto.randomUUID().slice(0, 6)}:`
      return {
        broker: (nodeId) =>
          Layer.scoped(ClusterBroker, makeRedisBroker({ url, prefix: clusterPrefix, nodeId })).pipe(Layer.orDie),
        // A TCP proxy stands in front of one Redis; a cluster's clients follow redirections to every node.
        cuttable: (nodeId) =>
          on === "redis"
            ? proxiedBroker(6379, (address) =>
                makeRedisBroker({ url: `redis://${address}`, prefix: clusterPrefix, nodeId })
              )
            : Effect.dieMessage(
                "no cut on the shared Redis Cluster: RedisClusterFailover.test.ts kills nodes of its own"
              ),
        expire: (nodeId) =>
          Effect.promise(async () => {
            const redis = await adminRedis(url)
            const key = redisKeys(clusterPrefix).node(nodeId)
            const ttl = await redis.pttl(key)
            if (!(ttl > 0 && ttl <= nodeTtlMillis))
              throw new Error(`node key ${key} has no expiry within the TTL (pttl ${ttl})`)
            await redis.del(key)
            redis.disconnect()
          })
      }
    })
})

/** Builds a layer in a Scope of its own (closed with the test's), so a test can crash one node and keep the others. */
export const buildNode = <A>(layer: Layer.Layer<A>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(layer, scope)
    return {
      context,
      scope,
      get: <I, S>(tag: Context.Tag<I, S>) => Context.get(context as unknown as Context.Context<I>, tag)
    }
  })

/** NATS prefixes are subject tokens: dots separate them, no colons. */
export const natsPrefix = (label: string) => `sbtest.${label}.${crypto.randomUUID().slice(0, 8)}`

export const natsBackend = (prefix: string): ClusterBackend => ({
  name: "nats",
  skip: !natsAvailable,
  live: true,
  cluster: () =>
    Effect.gen(function* () {
      const clusterPrefix = `${prefix}.${crypto.randomUUID().slice(0, 6)}`
      const admin = yield* Effect.acquireRelease(
        Effect.promise(() => connect({ servers: natsUrl })),
        (connection) => Effect.promise(() => connection.close())
      )
      yield* Effect.addFinalizer(() => destroyNatsBuckets(admin, clusterPrefix))
      return {
        broker: (nodeId: string) =>
          Layer.scoped(ClusterBroker, makeNatsBroker({ url: natsUrl, prefix: clusterPrefix, nodeId })).pipe(
            Layer.orDie
          ),
        cuttable: (nodeId: string) =>
          proxiedBroker(4222, (address) => makeNatsBroker({ url: address, prefix: clusterPrefix, nodeId })),
        expire: (nodeId: string) =>
          Effect.promise(async () => {
            const nodes = await new Kvm(admin).open(`${clusterPrefix.replace(/[^A-Za-z0-9_-]/g, "_")}_nodes`)
            const status = await nodes.status()
            if (!(status.ttl > 0 && status.ttl <= nodeTtlMillis))
              throw new Error(`the nodes bucket has no expiry within the TTL (${status.ttl})`)
            await nodes.purge(Buffer.from(nodeId).toString("base64url"))
          })
      }
    })
})

/** A node's SharedLimits on its broker (what a program's `withSharedLimitsFromConfig` provides), in a scope of its own. */
export const sharedLimitsOn = (broker: Layer.Layer<ClusterBroker>) =>
  Effect.map(buildNode(SharedLimitsLive.pipe(Layer.provide(BrokerCountersLive), Layer.provide(broker))), (built) =>
    built.get(SharedLimits)
  )

/** A shared limiter a server made, with the keys it was asked about (so a test can wait for its syncs). */
export interface WatchedLimiter {
  readonly limiter: SharedLimiter
  readonly keys: Set<string>
}

/** SharedLimits on `broker` that remember what they made, by name: provide `layer` to the server under test. */
export const watchedSharedLimits = (broker: Layer.Layer<ClusterBroker>) =>
  Effect.map(sharedLimitsOn(broker), (shared) => {
    const made = new Map<string, WatchedLimiter>()
    const layer = Layer.succeed(SharedLimits, {
      make: (name, options) =>
        Effect.map(shared.make(name, options), (limiter) => {
          const entry: WatchedLimiter = { limiter, keys: new Set() }
          made.set(name, entry)
          return { ...limiter, admit: (key: string, now: number) => (entry.keys.add(key), limiter.admit(key, now)) }
        })
    })
    /** Whether this node knows at least `count` events for every key it was asked about. */
    const knows = (name: string, count: number, now: number) => {
      const entry = made.get(name)!
      return [...entry.keys].every((key) => entry.limiter.known(key, now) >= count)
    }
    return {
      layer,
      limiter: (name: string) => made.get(name)!,
      knows,
      limiters: () => [...made.values()].map((entry) => entry.limiter)
    }
  })

/** What a test node made on its SharedLimits: the limiters whose syncs a test waits for. */
export interface Syncing {
  readonly limiters: () => ReadonlyArray<SharedLimiter>
}

/**
 * Moves the TestClock a second at a time (each node syncs every second) until `synced` holds (at most
 * 40 rounds); each round waits for every limiter's sync to have finished (an event, not a time).
 */
export const syncUntil = (synced: (now: number) => boolean, ...nodes: ReadonlyArray<Syncing>) =>
  Effect.gen(function* () {
    for (let round = 0; round < 40 && !synced(yield* Clock.currentTimeMillis); round++) {
      const waits = yield* Effect.all(nodes.flatMap((node) => node.limiters().map((limiter) => limiter.nextSync)))
      yield* TestClock.adjust("1 second")
      yield* Effect.all(waits)
    }
    return synced(yield* Clock.currentTimeMillis)
  })
