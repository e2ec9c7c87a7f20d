import { describe, expect } from "bun:test"
import { Cause, Duration, Effect, Exit, Fiber, Layer, Option, Schedule } from "effect"
import { BrokerUnavailable, ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { makeRedisBroker } from "../../../layers/Cluster/RedisBroker.ts"
import type { RedisSettings } from "../../../layers/Cluster/RedisConnection.ts"
import { redisKeys } from "../../../layers/Cluster/RedisKeys.ts"
import { makeRedisStreamStore } from "../../../layers/Storage/RedisStreamStore.ts"
import { makeRedisTokens } from "../../../layers/Tokens/RedisTokens.ts"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { MemoryNetwork } from "../../../layers/Transport/MemoryTransport.ts"
import { it } from "../../support/effect.ts"
import {
  firstOnMaster,
  nodeCommand,
  pollUntil,
  redisClusterAvailable,
  ownRedisCluster
} from "../../support/redisCluster.ts"
import { runPrefix } from "./backends.ts"
import { roomNode } from "./outageNodes.ts"

// A cluster of its own: these tests pause and kill its nodes.
const fixture = ownRedisCluster()
const promise = <A>(run: () => Promise<A>) => Effect.promise(run)

/** The first i whose `candidate(i)` the master on `port` serves. */
const onMaster = (port: number, candidate: (i: number) => string) =>
  promise(() => firstOnMaster(fixture(), port, candidate))

/** A broker, tokens and a stream store of one node, and a claim scope, token kind and stream all on one master. */
const layersOnOneMaster = (label: string, redis: RedisSettings) =>
  Effect.gen(function* () {
    yield* promise(() => fixture().heal())
    const prefix = runPrefix(label)
    const keys = redisKeys(prefix)
    const master = yield* promise(() => fixture().masterOf(keys.claims("units")))
    const kind = `login${yield* onMaster(master, (i) => keys.tokenExpiries(`login${i}`))}`
    const stream = `s${yield* onMaster(master, (i) => `${prefix}stream:{s${i}}:head`)}`
    const url = fixture().url
    return {
      master,
      kind,
      stream,
      promoted: promise(() =>
        pollUntil("the replica's promotion", async () => {
          const now = await fixture().masterOf(keys.claims("units"))
          return now === master ? undefined : now
        })
      ),
      broker: yield* makeRedisBroker({ url, prefix, nodeId: "a", redis }),
      tokens: yield* makeRedisTokens({ url, prefix, redis }),
      streams: yield* makeRedisStreamStore({ url, prefix, redis })
    }
  })

/** Without a command timeout the call would wait for the paused master: this bound turns that into a failure. */
const answered = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.timeoutFail(Effect.exit(effect), {
    duration: "4 seconds",
    onTimeout: () => new Error("no answer: the command waited for the paused master")
  })

describe("Redis Cluster: a master that stops answering, writes that must survive a failover", () => {
  it.skipIf(!redisClusterAvailable).live(
    "a master paused past the node timeout: its commands fail within commandTimeoutMs, then reach the promoted replica",
    () =>
      Effect.gen(function* () {
        const settings: RedisSettings = { commandTimeoutMs: 1000, waitReplicas: 0, waitTimeoutMs: 500 }
        const { master, kind, stream, promoted, broker, tokens, streams } = yield* layersOnOneMaster("silent", settings)
        const token = yield* tokens.issue(kind, "unit-1", Duration.minutes(5))
        expect(yield* promise(() => fixture().replicated(master))).toBe(1)

        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* Effect.acquireRelease(
              Effect.sync(() => fixture().signal(master, "SIGSTOP")),
              () => Effect.sync(() => fixture().signal(master, "SIGCONT"))
            )
            const claim = yield* answered(broker.claims.take("units", "unit-1", "a/1", "replace"))
            expect(Exit.isFailure(claim) && Cause.failureOption(claim.cause)).toEqual(
              Option.some(expect.any(BrokerUnavailable))
            )
            const take = yield* answered(tokens.take(kind, token))
            expect(Exit.isFailure(take) && Cause.isDie(take.cause)).toBe(true)
            const append = yield* answered(streams.append(stream, "lost", {}))
            expect(Exit.isFailure(append) && Cause.pretty(append.cause)).toContain("Command timed out")

            // The replica is promoted after the node timeout; each client's next slot refresh (every commandTimeoutMs)
            // sends its commands there: until then they time out as above, so each is retried (bounded) meanwhile.
            yield* promoted
            const retried = Schedule.spaced("200 millis").pipe(Schedule.intersect(Schedule.recurs(25)))
            const recovered = <A, E>(effect: Effect.Effect<A, E>) =>
              Effect.retry(Effect.catchAllDefect(effect, Effect.fail), retried)
            expect((yield* recovered(broker.claims.take("units", "unit-2", "a/2", "ifFree"))).taken).toBe(true)
            // The take that timed out never reached the new master: the token is still there, once.
            expect(yield* recovered(tokens.take(kind, token))).toEqual(Option.some("unit-1"))
            expect(yield* tokens.take(kind, token)).toEqual(Option.none())
            expect((yield* recovered(streams.append(stream, "after", {}))).seq).toBe(1)
          })
        )
        // The paused master, continued, rejoins as the promoted one's replica.
        yield* promise(() => fixture().heal())
        const roles = yield* promise(() => fixture().nodes())
        expect(roles.find((node) => node.port === master)?.role).toBe("replica")
      }),
    60_000
  )

  it.skipIf(!redisClusterAvailable).live(
    "writes WAITed for the replica (a claim, a token's take, a stream append) survive their master killed right after",
    () =>
      Effect.gen(function* () {
        const settings: RedisSettings = { commandTimeoutMs: 5000, waitReplicas: "auto", waitTimeoutMs: 4000 }
        const { master, kind, stream, promoted, broker, tokens, streams } = yield* layersOnOneMaster("wait", settings)
        const token = yield* tokens.issue(kind, "unit-1", Duration.minutes(5))
        expect(yield* promise(() => fixture().replicated(master))).toBe(1)
        const masterId = (yield* promise(() => fixture().nodes())).find((node) => node.port === master)!.id
        const replica = (yield* promise(() => fixture().nodes())).find((node) => node.masterId === masterId)!.port

        // The replica stopped, and behind by more than the sockets between them hold: what the master takes next
        // stays in its memory until the replica reads on. A write acknowledged without WAIT dies with the master.
        yield* Effect.acquireRelease(
          Effect.sync(() => fixture().signal(replica, "SIGSTOP")),
          () => Effect.sync(() => fixture().signal(replica, "SIGCONT"))
        )
        yield* promise(() => nodeCommand(master, "SET", `{${stream}}:backlog`, "x".repeat(32 * 1024 * 1024)))
        const writes = yield* Effect.fork(
          Effect.all([
            broker.claims.take("units", "unit-1", "a/1", "replace"),
            tokens.take(kind, token),
            streams.append(stream, "kept", {})
          ])
        )
        // Either the writes returned (no WAIT) or the master holds one blocked in WAIT: then the replica may go on.
        yield* promise(() =>
          pollUntil("a WAIT on the master, or the writes done", async () => {
            const clients = String(await nodeCommand(master, "INFO", "clients"))
            return /blocked_clients:[1-9]/.test(clients) || writes.unsafePoll() !== null ? true : undefined
          })
        )
        fixture().signal(replica, "SIGCONT")
        const [claimed, taken, appended] = yield* Fiber.join(writes)
        expect(claimed.taken).toBe(true)
        expect(taken).toEqual(Option.some("unit-1"))
        fixture().signal(master, "SIGKILL")
        yield* promoted

        // On the promoted replica: the claim is held, the token is spent, the entry is there under its seq.
        const retried = Schedule.spaced("200 millis").pipe(Schedule.intersect(Schedule.recurs(25)))
        expect(yield* broker.claims.get("units", "unit-1").pipe(Effect.retry(retried))).toBe("a/1")
        expect(yield* tokens.take(kind, token)).toEqual(Option.none())
        expect(yield* streams.readAfter(stream, 0)).toEqual([appended])
      }).pipe(Effect.scoped, Effect.ensuring(Effect.promise(() => fixture().heal()))),
    60_000
  )

  it.skipIf(!redisClusterAvailable).live(
    "a write whose WAIT ends before the replica acknowledged it is counted in switchboard_cluster_unreplicated_writes_total",
    () =>
      Effect.gen(function* () {
        const settings: RedisSettings = { commandTimeoutMs: 5000, waitReplicas: 1, waitTimeoutMs: 200 }
        const { master, kind, stream, broker, tokens, streams } = yield* layersOnOneMaster("unreplicated", settings)
        const metrics = yield* Metrics
        const unreplicated = (op: string) =>
          metrics.counter("switchboard_cluster_unreplicated_writes_total", "", ["op"]).labels({ op }).value
        const token = yield* tokens.issue(kind, "unit-1", Duration.minutes(5))
        expect((yield* broker.claims.take("units", "unit-0", "a/0", "replace")).taken).toBe(true)
        expect([unreplicated("claim"), unreplicated("token"), unreplicated("history")]).toEqual([0, 0, 0])

        const replica = yield* promise(() => fixture().replicaOf(master))
        yield* Effect.acquireRelease(
          Effect.sync(() => fixture().signal(replica, "SIGSTOP")),
          () => Effect.sync(() => fixture().signal(replica, "SIGCONT"))
        )
        // Each write stands and is counted, every time (the warning is logged once).
        expect((yield* broker.claims.take("units", "unit-1", "a/1", "replace")).taken).toBe(true)
        expect((yield* broker.claims.take("units", "unit-2", "a/2", "replace")).taken).toBe(true)
        expect(yield* tokens.take(kind, token)).toEqual(Option.some("unit-1"))
        expect((yield* streams.append(stream, "late", {})).seq).toBe(1)
        expect([unreplicated("claim"), unreplicated("token"), unreplicated("history")]).toEqual([2, 1, 1])
      }).pipe(Effect.scoped, Effect.provide(Metrics.Default), Effect.ensuring(Effect.promise(() => fixture().heal()))),
    60_000
  )

  it.skipIf(!redisClusterAvailable).live(
    "a room's master paused past the node timeout: once its replica is promoted, messages cross again before it resumes",
    () =>
      Effect.gen(function* () {
        yield* promise(() => fixture().heal())
        const network = yield* MemoryNetwork
        const prefix = runPrefix("silent-room")
        const redis: RedisSettings = { commandTimeoutMs: 1000, waitReplicas: 0, waitTimeoutMs: 500 }
        const broker = (nodeId: string) =>
          Layer.scoped(ClusterBroker, makeRedisBroker({ url: fixture().url, prefix, nodeId, redis })).pipe(Layer.orDie)
        const owner = yield* promise(() => fixture().masterOf(`${prefix}room/r`))
        // Continued only after both nodes closed: see "Not done yet" on ioredis and a master that comes back.
        yield* Effect.addFinalizer(() => Effect.sync(() => fixture().signal(owner, "SIGCONT")))
        const a1 = yield* Effect.flatMap(roomNode(network, broker("a")), (a) => a.connect("a1"))
        const b1 = yield* Effect.flatMap(roomNode(network, broker("b")), (b) => b.connect("b1"))
        yield* a1.send("before")
        expect(yield* b1.next()).toBe("before")

        fixture().signal(owner, "SIGSTOP")
        yield* promise(() =>
          pollUntil("the replica's promotion", async () =>
            (await fixture().masterOf(`${prefix}room/r`)) === owner ? undefined : true
          )
        )
        // Both clients follow the slot map within a refresh (commandTimeoutMs): a message sent each second crosses then.
        const crossed = yield* Effect.gen(function* () {
          for (let i = 0; i < 10; i++) {
            yield* a1.send(`while paused ${i}`)
            const frame = yield* b1.next().pipe(Effect.timeout("1 second"), Effect.option)
            if (Option.isSome(frame)) return frame.value
          }
          return "nothing crossed"
        })
        expect(crossed).toStartWith("while paused")
      }).pipe(Effect.provide(MemoryNetwork.Default), Effect.scoped, Effect.ensuring(promise(() => fixture().heal()))),
    60_000
  )
})
