import { describe, expect } from "bun:test"
import { Duration, Effect, Fiber, Logger, LogLevel, Option, Queue, Schedule } from "effect"
import { makeRedisBroker } from "../../../layers/Cluster/RedisBroker.ts"
import type { RedisSettings } from "../../../layers/Cluster/RedisConnection.ts"
import { redisKeys } from "../../../layers/Cluster/RedisKeys.ts"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { it } from "../../support/effect.ts"
import {
  firstOnMaster,
  nodeCommand,
  ownRedisCluster,
  pollUntil,
  redisClusterAvailable
} from "../../support/redisCluster.ts"
import { runPrefix } from "./backends.ts"
import { layersOnOneMaster } from "./redisClusterLayers.ts"

// A cluster of its own: these tests pause and kill its replicas (and a master).
const fixture = ownRedisCluster()
const promise = <A>(run: () => Promise<A>) => Effect.promise(run)

const unreplicatedOf = (metrics: Metrics, op: string) =>
  metrics.counter("switchboard_cluster_unreplicated_writes_total", "", ["op"]).labels({ op }).value

/** A healed cluster, a fresh prefix, the master of its claim scope ("units") and that master's replica. */
const claimsShard = (label: string) =>
  Effect.gen(function* () {
    yield* promise(() => fixture().heal())
    const prefix = runPrefix(label)
    const keys = redisKeys(prefix)
    const master = yield* promise(() => fixture().masterOf(keys.claims("units")))
    return { prefix, keys, master, replica: yield* promise(() => fixture().replicaOf(master)) }
  })

/**
 * A broker of node "a" with its logs captured: `decided(text)` waits for the next log line containing `text`
 * (what the replica WAITs log when a slot-map refresh, every commandTimeoutMs, changes their decision).
 */
const brokerWithDecisions = (prefix: string, redis: RedisSettings) =>
  Effect.gen(function* () {
    const logged = yield* Queue.unbounded<string>()
    const capture = Logger.make(({ message }) =>
      Queue.unsafeOffer(logged, String(Array.isArray(message) ? message[0] : message))
    )
    const broker = yield* makeRedisBroker({ url: fixture().url, prefix, nodeId: "a", redis }).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
      Effect.provide(Logger.minimumLogLevel(LogLevel.Info))
    )
    const decided = (text: string) =>
      Queue.take(logged).pipe(
        Effect.repeat({ until: (message) => message.includes(text) }),
        Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`never logged: ${text}`) })
      )
    return { broker, decided }
  })

/** Every other node of the fixture flags the node on `port` "fail" (agreed, not only suspected: "fail?"). */
const markedFailedEverywhere = (port: number) =>
  promise(() =>
    pollUntil(`the node on ${port} marked failed by every other node`, async () => {
      for (const other of fixture().ports.filter((each) => each !== port)) {
        const nodes = String(await nodeCommand(other, "CLUSTER", "NODES")).split("\n")
        const flags =
          nodes
            .find((line) => line.includes(`:${port}@`))
            ?.split(" ")[2]
            ?.split(",") ?? []
        if (!flags.includes("fail")) return undefined
      }
      return true
    })
  )

describe("Redis Cluster: writes that WAIT for the replicas", () => {
  it.skipIf(!redisClusterAvailable).live(
    "writes WAITed for the replica (a claim, a token's take, a stream append) survive their master killed right after",
    () =>
      Effect.gen(function* () {
        // A set count: "auto" would stop waiting if a refresh found the paused replica already marked failed.
        const settings: RedisSettings = { commandTimeoutMs: 5000, waitReplicas: 1, waitTimeoutMs: 4000 }
        const { master, kind, stream, promoted, broker, tokens, streams } = yield* layersOnOneMaster(
          fixture(),
          "wait",
          settings
        )
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
        const { master, kind, stream, broker, tokens, streams } = yield* layersOnOneMaster(
          fixture(),
          "unreplicated",
          settings
        )
        const metrics = yield* Metrics
        const unreplicated = (op: string) => unreplicatedOf(metrics, op)
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
    "waitReplicas auto follows the topology: a replica gone makes claims stop WAITing, one back makes them WAIT",
    () =>
      Effect.gen(function* () {
        const { prefix, replica } = yield* claimsShard("wait-topology")
        const settings: RedisSettings = { commandTimeoutMs: 1000, waitReplicas: "auto", waitTimeoutMs: 200 }
        const { broker, decided } = yield* brokerWithDecisions(prefix, settings)
        const metrics = yield* Metrics
        const unreplicated = () => unreplicatedOf(metrics, "claim")
        const take = (name: string) =>
          Effect.map(broker.claims.take("units", name, `a/${name}`, "replace"), ({ taken }) => taken)

        // Every master with a replica at start: claims WAIT. The replica killed: once the cluster marks it failed, the
        // next refresh decides not to WAIT, and a take is not counted (a WAIT now would find no replica: counted).
        fixture().signal(replica, "SIGKILL")
        yield* decided("cluster claims: writes no longer WAIT")
        expect(yield* take("u1")).toBe(true)
        expect(unreplicated()).toBe(0)

        // The replica back: the next refresh decides to WAIT, and a take while it is paused is counted.
        yield* promise(() => fixture().heal())
        yield* decided("cluster claims: writes now WAIT for a replica")
        fixture().signal(replica, "SIGSTOP")
        expect(yield* take("u2").pipe(Effect.ensuring(Effect.sync(() => fixture().signal(replica, "SIGCONT"))))).toBe(
          true
        )
        expect(unreplicated()).toBe(1)
      }).pipe(Effect.scoped, Effect.provide(Metrics.Default), Effect.ensuring(Effect.promise(() => fixture().heal()))),
    60_000
  )

  it.skipIf(!redisClusterAvailable).live(
    "a broker that started with nothing to WAIT for has claims on their own connection: once a replica is back, a claim blocked in WAIT does not hold presence",
    () =>
      Effect.gen(function* () {
        const { prefix, keys, master, replica } = yield* claimsShard("wait-lane")
        const room = `room${yield* promise(() => firstOnMaster(fixture(), master, (i) => keys.presence(`room${i}`)))}`
        fixture().signal(replica, "SIGKILL")
        yield* markedFailedEverywhere(replica)

        // No replica at start: "auto" waits for none (before, claims then shared the broker's connection).
        const settings: RedisSettings = { commandTimeoutMs: 6000, waitReplicas: "auto", waitTimeoutMs: 5000 }
        const { broker, decided } = yield* brokerWithDecisions(prefix, settings)
        yield* promise(() => fixture().heal())
        yield* decided("cluster claims: writes now WAIT for a replica")

        yield* Effect.acquireRelease(
          Effect.sync(() => fixture().signal(replica, "SIGSTOP")),
          () => Effect.sync(() => fixture().signal(replica, "SIGCONT"))
        )
        const claim = yield* Effect.fork(broker.claims.take("units", "u1", "a/1", "replace"))
        /** The names of the master's connections blocked (in a WAIT). */
        const blocked = async () =>
          String(await nodeCommand(master, "CLIENT", "LIST"))
            .split("\n")
            .filter((line) => / flags=[^ ]*b/.test(line))
            .map((line) => /name=(\S*)/.exec(line)?.[1])
        yield* promise(() =>
          pollUntil("the claim's WAIT on the master", async () => ((await blocked()).length > 0 ? true : undefined))
        )
        expect(yield* promise(blocked)).toEqual(["switchboard-a-claims"])
        // A presence write to the same master answers while the WAIT still holds the claims' connection.
        yield* broker.presence.put(room, "member", "entry")
        expect(yield* promise(blocked)).toEqual(["switchboard-a-claims"])
        expect(claim.unsafePoll()).toBeNull()
        yield* Fiber.interrupt(claim)
      }).pipe(Effect.scoped, Effect.ensuring(promise(() => fixture().heal()))),
    60_000
  )
})
