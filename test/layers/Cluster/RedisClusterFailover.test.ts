import { describe, expect } from "bun:test"
import { Duration, Effect, Layer, Option } from "effect"
import { ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { makeRedisBroker } from "../../../layers/Cluster/RedisBroker.ts"
import { redisKeys } from "../../../layers/Cluster/RedisKeys.ts"
import { makeRedisStreamStore } from "../../../layers/Storage/RedisStreamStore.ts"
import { makeRedisTokens } from "../../../layers/Tokens/RedisTokens.ts"
import { MemoryNetwork } from "../../../layers/Transport/MemoryTransport.ts"
import { it } from "../../support/effect.ts"
import { firstOnMaster, pollUntil, redisClusterAvailable, ownRedisCluster } from "../../support/redisCluster.ts"
import { runPrefix } from "./backends.ts"
import { clientsCrossing, nextDisconnect, nextReconnect, roomNode } from "./outageNodes.ts"

// A cluster of its own: these tests kill its nodes (the shared one of the other suites stays whole).
const fixture = ownRedisCluster()
const promise = <A>(run: () => Promise<A>) => Effect.promise(run)

/** The first i whose `candidate(i)` the master on `port` serves. */
const onMaster = (port: number, candidate: (i: number) => string) =>
  promise(() => firstOnMaster(fixture(), port, candidate))

/** Real time, bounded: the lost message's count arrives when the command's redirections have run out. */
const counted = (read: () => number, atLeast: number) =>
  promise(() => pollUntil("the undelivered count", async () => (read() >= atLeast ? read() : undefined), 10_000))

const brokerOn = (clusterPrefix: string, nodeId: string) =>
  Layer.scoped(ClusterBroker, makeRedisBroker({ url: fixture().url, prefix: clusterPrefix, nodeId })).pipe(Layer.orDie)

/** Nodes a (clients a1, a2) and b (client b1) in `room`, with a first message seen crossing. */
const twoNodes = (network: MemoryNetwork, clusterPrefix: string, room?: string) =>
  Effect.gen(function* () {
    const a = yield* roomNode(network, brokerOn(clusterPrefix, "a"), room)
    const b = yield* roomNode(network, brokerOn(clusterPrefix, "b"), room)
    return { a, b, ...(yield* clientsCrossing(a, b)) }
  })

type Clients = Effect.Effect.Success<ReturnType<typeof twoNodes>>

/** A message from each node reaches every client of the other and the sender's neighbour. */
const crossesBothWays = ({ a1, a2, b1 }: Clients) =>
  Effect.gen(function* () {
    yield* b1.send("after, from b")
    expect(yield* a1.next()).toBe("after, from b")
    expect(yield* a2.next()).toBe("after, from b")
    yield* a2.send("after, from a")
    expect(yield* b1.next()).toBe("after, from a")
    expect(yield* a1.next()).toBe("after, from a")
  })

describe("Redis Cluster outages (a real 3 + 3 cluster started by the test)", () => {
  it.skipIf(!redisClusterAvailable).live(
    "a master killed: its replica takes over, clients stay connected, lost messages are counted, subscriptions and acknowledged-then-replicated data survive",
    () =>
      Effect.gen(function* () {
        yield* promise(() => fixture().heal())
        const network = yield* MemoryNetwork
        const clusterPrefix = runPrefix("failover")
        const keys = redisKeys(clusterPrefix)
        // Every claim scope is on the `{nodes}` shard: its master is the one killed; room, token kind and stream are put there too.
        const victim = yield* promise(() => fixture().masterOf(keys.claims("units")))
        const room = `r${yield* onMaster(victim, (i) => `${clusterPrefix}room/r${i}`)}`
        const kind = `login${yield* onMaster(victim, (i) => keys.tokenExpiries(`login${i}`))}`
        const stream = `s${yield* onMaster(victim, (i) => `${clusterPrefix}stream:{s${i}}:head`)}`

        const clients = yield* twoNodes(network, clusterPrefix, room)
        const { a, b, a1, a2 } = clients
        const tokens = yield* makeRedisTokens({ url: fixture().url, prefix: clusterPrefix })
        const streams = yield* makeRedisStreamStore({ url: fixture().url, prefix: clusterPrefix })

        expect((yield* a.broker.claims.take("units", "unit-1", "a/1", "replace")).taken).toBe(true)
        const token = yield* tokens.issue(kind, "unit-1", Duration.minutes(5))
        for (const payload of ["one", "two", "three"]) yield* streams.append(stream, payload, { maxEntries: 10 })
        // Replication is asynchronous: only writes the replica acknowledged (WAIT) survive the master's death.
        expect(yield* promise(() => fixture().replicated(victim))).toBe(1)

        const aBack = yield* nextReconnect(a.broker)
        const bBack = yield* nextReconnect(b.broker)
        const aGone = yield* nextDisconnect(a.broker)
        const lostBefore = a.undelivered()
        // The replica is held paused until the lost message is counted: a promotion cannot end the window first.
        const replica = yield* promise(() => fixture().replicaOf(victim))
        fixture().signal(replica, "SIGSTOP")
        fixture().signal(victim, "SIGKILL")
        yield* aGone

        // The room's shard has no master until the replica is promoted: the message stays on its node and is counted.
        yield* a1.send("during")
        expect(yield* a2.next()).toBe("during")
        yield* counted(a.undelivered, lostBefore + 1)
        fixture().signal(replica, "SIGCONT")

        yield* aBack
        yield* bBack
        const promoted = yield* promise(() => fixture().masterOf(keys.claims("units")))
        expect(promoted).not.toBe(victim)
        // Both nodes resubscribed on the promoted replica: messages cross again, both ways.
        yield* crossesBothWays(clients)
        expect(a.undelivered()).toBe(lostBefore + 1)

        // What the replica acknowledged is readable on it, from either node.
        expect(yield* b.broker.claims.get("units", "unit-1")).toBe("a/1")
        expect(yield* tokens.get(kind, token)).toEqual(Option.some("unit-1"))
        expect((yield* streams.readAfter(stream, 0)).map((entry) => entry.payload)).toEqual(["one", "two", "three"])
        expect((yield* b.broker.claims.take("units", "unit-2", "b/1", "ifFree")).taken).toBe(true)

        // The killed master comes back as the promoted one's replica.
        yield* promise(() => fixture().heal())
        const roles = yield* promise(() => fixture().nodes())
        expect(roles.find((node) => node.port === victim)?.role).toBe("replica")
      }).pipe(Effect.provide(MemoryNetwork.Default)),
    60_000
  )

  it.skipIf(!redisClusterAvailable).live(
    "the whole cluster stopped and started again: nodes are told, messages meanwhile are counted, delivery resumes",
    () =>
      Effect.gen(function* () {
        yield* promise(() => fixture().heal())
        const network = yield* MemoryNetwork
        const clusterPrefix = runPrefix("restart")
        const clients = yield* twoNodes(network, clusterPrefix)
        const { a, b, a1, a2 } = clients

        const aBack = yield* nextReconnect(a.broker)
        const bBack = yield* nextReconnect(b.broker)
        const aGone = yield* nextDisconnect(a.broker)
        const ports = fixture().ports
        for (const port of ports) fixture().signal(port, "SIGKILL")
        yield* aGone
        const lostBefore = a.undelivered()
        yield* a1.send("during")
        expect(yield* a2.next()).toBe("during")
        yield* counted(a.undelivered, lostBefore + 1)

        yield* promise(() => Promise.all(ports.map((port) => fixture().restart(port))))
        yield* aBack
        yield* bBack
        yield* crossesBothWays(clients)
        yield* promise(() => fixture().heal())
      }).pipe(Effect.provide(MemoryNetwork.Default)),
    60_000
  )

  it.skipIf(!redisClusterAvailable).live(
    "a master paused (SIGSTOP) and resumed before its node timeout: the message sent meanwhile waits and crosses, nothing is lost",
    () =>
      Effect.gen(function* () {
        yield* promise(() => fixture().heal())
        const network = yield* MemoryNetwork
        const clusterPrefix = runPrefix("pause")
        const room = "r"
        const owner = yield* promise(() => fixture().masterOf(`${clusterPrefix}room/${room}`))
        const { a, b, a1, a2, b1 } = yield* twoNodes(network, clusterPrefix, room)

        fixture().signal(owner, "SIGSTOP")
        yield* a1.send("while paused")
        expect(yield* a2.next()).toBe("while paused")
        fixture().signal(owner, "SIGCONT")
        expect(yield* b1.next()).toBe("while paused")
        yield* b1.send("after")
        expect(yield* a1.next()).toBe("after")
        expect(a.undelivered()).toBe(0)
        expect(b.undelivered()).toBe(0)
      }).pipe(Effect.provide(MemoryNetwork.Default)),
    60_000
  )
})
