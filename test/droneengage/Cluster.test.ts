import { describe, expect } from "bun:test"
import { Effect, Layer } from "effect"
import { ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { MemoryBrokerHub } from "../../layers/Cluster/MemoryBroker.ts"
import { BrokerRoomsLive } from "../../layers/Rooms/BrokerRooms.ts"
import { BrokerClaimsLive } from "../../layers/Cluster/Claims.ts"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { startAuthenticator } from "../../src/droneengage/Authenticator.ts"
import { startRelay } from "../../src/droneengage/Relay.ts"
import { UnitRooms, UnitRoomsLive } from "../../src/droneengage/UnitRooms.ts"
import { MemoryTaskStore } from "../../layers/Storage/MemoryTaskStore.ts"
import { MemoryUdp } from "../../layers/Udp/MemoryUdp.ts"
import { makeRedisBroker } from "../../layers/Cluster/RedisBroker.ts"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import { RedisTokensLive } from "../../layers/Tokens/RedisTokens.ts"
import { Tokens } from "../../layers/Tokens/Tokens.ts"
import {
  cleanRedisAfterAll,
  natsAvailable,
  natsPrefix,
  natsUrl,
  redisAvailable,
  redisUrl,
  runPrefix
} from "../layers/Cluster/backends.ts"
import { destroyNatsBuckets, makeNatsBroker } from "../../layers/Cluster/NatsBroker.ts"
import { NatsTokensLive, natsTokensBucket } from "../../layers/Tokens/NatsTokens.ts"
import { Kvm } from "@nats-io/kv"
import { connect as natsConnect } from "@nats-io/transport-node"
import { it } from "../support/effect.ts"
import {
  authenticatorConfig,
  connect,
  connectQuery,
  datagrams,
  expectNothing,
  login,
  pingPong,
  relayConfig,
  relayOnline,
  seedAccounts,
  TestServices
} from "./harness.ts"

const prefix = runPrefix("relay")
cleanRedisAfterAll(prefix)

interface RelayCluster {
  readonly name: string
  readonly skip: boolean
  /** One relay node's own layers: broker-backed Rooms on its broker connection, and (on Redis) shared Tokens. */
  readonly node: (nodeId: string) => Layer.Layer<UnitRooms | Tokens, never, Tokens | Metrics>
  /** Removes what the cluster left in the broker (Redis keys go with cleanRedisAfterAll). */
  readonly cleanup?: Effect.Effect<void>
}

/** One node's unit rooms and unit-name claims on its broker connection. */
const unitRoomsOn = (broker: Layer.Layer<ClusterBroker>) =>
  UnitRoomsLive("relay").pipe(Layer.provide(Layer.merge(BrokerRoomsLive(), BrokerClaimsLive())), Layer.provide(broker))

const memoryCluster = (): RelayCluster => {
  const hub = new MemoryBrokerHub()
  return {
    name: "memory broker",
    skip: false,
    // The shared token store is TestServices' one MemoryTokens.
    node: (nodeId) =>
      Layer.merge(unitRoomsOn(Layer.succeed(ClusterBroker, hub.node(nodeId))), Layer.effect(Tokens, Tokens))
  }
}

const redisCluster = (): RelayCluster => {
  const clusterPrefix = `${prefix}${crypto.randomUUID().slice(0, 6)}:`
  return {
    name: "Redis",
    skip: !redisAvailable,
    node: (nodeId) =>
      Layer.merge(
        unitRoomsOn(
          Layer.scoped(ClusterBroker, makeRedisBroker({ url: redisUrl, prefix: clusterPrefix, nodeId })).pipe(
            Layer.orDie
          )
        ),
        RedisTokensLive({ url: redisUrl, prefix: clusterPrefix })
      )
  }
}

const natsCluster = (): RelayCluster => {
  const clusterPrefix = `${natsPrefix("relay")}`
  return {
    name: "NATS",
    skip: !natsAvailable,
    node: (nodeId) =>
      Layer.merge(
        unitRoomsOn(
          Layer.scoped(ClusterBroker, makeNatsBroker({ url: natsUrl, prefix: clusterPrefix, nodeId })).pipe(Layer.orDie)
        ),
        NatsTokensLive({ url: natsUrl, prefix: clusterPrefix })
      ),
    cleanup: Effect.acquireUseRelease(
      Effect.promise(() => natsConnect({ servers: natsUrl })),
      (admin) =>
        Effect.zipRight(
          destroyNatsBuckets(admin, clusterPrefix),
          Effect.promise(async () => (await new Kvm(admin).open(natsTokensBucket(clusterPrefix))).destroy())
        ),
      (admin) => Effect.promise(() => admin.close())
    )
  }
}

/** A relay node of a cluster: its own unit rooms and broker connection, tokens shared with the other nodes. */
// Built in the test's Scope (Effect.provide of a layer would close its broker connections when startRelay returns).
const relayNode = (cluster: RelayCluster, nodeId: string, authenticatorS2sPort: number) =>
  Effect.flatMap(Layer.build(Layer.mergeAll(cluster.node(nodeId), MemoryUdp(datagrams), MemoryTaskStore)), (context) =>
    startRelay(relayConfig(authenticatorS2sPort, { serverId: nodeId })).pipe(Effect.provide(context))
  )

/** One authenticator and relays A and B on the cluster; `connectTo` logs a unit in and opens it on a relay's port. */
const twoRelays = (cluster: RelayCluster) =>
  Effect.gen(function* () {
    if (cluster.cleanup) yield* Effect.addFinalizer(() => cluster.cleanup!)
    yield* seedAccounts
    const authenticator = yield* startAuthenticator(authenticatorConfig())
    const relayA = yield* relayNode(cluster, "relay-a", authenticator.s2s.port)
    const relayB = yield* relayNode(cluster, "relay-b", authenticator.s2s.port)
    yield* relayOnline(authenticator, "relay-a")
    yield* relayOnline(authenticator, "relay-b")
    const connectTo = (account: string, actor: "g" | "d", name: string, port: number) =>
      Effect.gen(function* () {
        const { body } = yield* login({ authUrl: authenticator.http.url } as never, account, actor)
        expect(JSON.stringify(body)).toContain(`"e":0`)
        // Whichever relay issued the key, the unit connects to the one the test chose.
        const unit = yield* connect(port, `/?${connectQuery(body, name)}`)
        expect((yield* unit.nextJson()).mt).toBe(9007)
        return unit
      })
    /** connectTo, then a ping answered: the unit is seated in its rooms. */
    const seat = (account: string, actor: "g" | "d", name: string, port: number) =>
      Effect.flatMap(connectTo(account, actor, name, port), (unit) => Effect.as(pingPong(unit), unit))
    return { a: relayA.server.port, b: relayB.server.port, connectTo, seat }
  })

for (const makeCluster of [memoryCluster, redisCluster, natsCluster]) {
  const cluster = makeCluster()
  describe(`DroneEngage relays as one cluster (${cluster.name}, TestClock)`, () => {
    it.skipIf(cluster.skip).effect(
      "a key issued by one relay is redeemed on the other; a group message from an agent on relay B reaches the GCS on relay A",
      () =>
        Effect.gen(function* () {
          const { a, b, seat } = yield* twoRelays(cluster)
          const gcs = yield* seat("alpha", "g", "g1", a)
          const agent = yield* seat("alpha", "d", "d1", b)
          const otherAccount = yield* seat("beta", "g", "g1", a)
          yield* agent.send(JSON.stringify({ ty: "g", mt: 1042, ms: { alt: 120 } }))
          const heard = yield* gcs.nextJson()
          expect(heard).toMatchObject({ ty: "g", mt: 1042, sd: "d1", ms: { alt: 120 } })
          // Unit-addressed across nodes too, and the other account hears nothing.
          yield* gcs.send(JSON.stringify({ ty: "i", tg: "d1", mt: 1043, ms: {} }))
          expect(yield* agent.nextJson()).toMatchObject({ mt: 1043, sd: "g1" })
          yield* expectNothing(otherAccount)
          yield* expectNothing(gcs)
        }).pipe(Effect.provide(TestServices))
    )

    it.skipIf(cluster.skip).effect(
      "a unit name connecting on a second relay replaces the first there (4004); the instance limit counts every relay",
      () =>
        Effect.gen(function* () {
          const { a, b, connectTo, seat } = yield* twoRelays(cluster)
          const gcs = yield* seat("alpha", "g", "g1", a)
          const first = yield* seat("alpha", "d", "d1", a)
          const second = yield* seat("alpha", "d", "d1", b)
          expect((yield* first.closed).code).toBe(CloseCodes.replaced)
          // The name now reaches the unit on relay B only.
          yield* gcs.send(JSON.stringify({ ty: "i", tg: "d1", mt: 1043, ms: {} }))
          expect(yield* second.nextJson()).toMatchObject({ mt: 1043, sd: "g1" })

          // "limited" may open two units: one on each relay, and a third anywhere is refused.
          yield* seat("limited", "g", "a", a)
          yield* seat("limited", "d", "b", b)
          const third = yield* connectTo("limited", "d", "c", b)
          expect(yield* third.closed).toMatchObject({ code: CloseCodes.forbidden, reason: "instance limit reached" })
          // Replacing a unit does not count, wherever it connects.
          yield* seat("limited", "d", "b", a)
        }).pipe(Effect.provide(TestServices))
    )

    it.skipIf(cluster.skip).effect(
      "concurrent connects of one account on two relays: only the instance limit's number get in",
      () =>
        Effect.gen(function* () {
          const { a, b, connectTo } = yield* twoRelays(cluster)
          // "limited" may open two units; six connect at once, three on each relay. A relay that has already
          // seated two refuses the upgrade (403); the others pass their relay's own count and race for the claims.
          const outcomes = yield* Effect.all(
            ["u1", "u2", "u3", "u4", "u5", "u6"].map((name, i) =>
              connectTo("limited", "d", name, i % 2 === 0 ? a : b).pipe(
                Effect.flatMap((unit) =>
                  Effect.race(
                    Effect.as(pingPong(unit), "seated" as const),
                    Effect.map(unit.closed, (closed) => (closed.code === CloseCodes.forbidden ? "refused" : "closed"))
                  )
                ),
                Effect.catchAllDefect((defect) =>
                  String(defect).includes("connect refused: 403")
                    ? Effect.succeed("refused" as const)
                    : Effect.die(defect)
                )
              )
            ),
            { concurrency: "unbounded" }
          )
          expect(outcomes.filter((outcome) => outcome === "seated")).toHaveLength(2)
          expect(outcomes.filter((outcome) => outcome === "refused")).toHaveLength(4)
        }).pipe(Effect.provide(TestServices))
    )
  })
}
