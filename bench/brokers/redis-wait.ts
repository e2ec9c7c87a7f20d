/**
 * The cost of `cluster.redis.waitReplicas`: the writes that WAIT for a replica (a token's take, a
 * stream append, a claim), with WAIT off (0) and on (1), interleaved round by round, on a private
 * 3 + 3 Redis Cluster started from the redis-server on PATH (test/support/redisCluster.ts).
 * Each round runs `count` operations one after another (latency) and `count` with 16 in flight
 * (throughput). Reports the median of the rounds and their spread.
 * Run: `bun run bench/brokers/redis-wait.ts [count] [rounds]`.
 */
import { Duration, Effect } from "effect"
import { makeRedisBroker } from "../../layers/Cluster/RedisBroker.ts"
import type { RedisSettings } from "../../layers/Cluster/RedisConnection.ts"
import { makeRedisStreamStore } from "../../layers/Storage/RedisStreamStore.ts"
import { makeRedisTokens } from "../../layers/Tokens/RedisTokens.ts"
import { startRedisCluster } from "../../test/support/redisCluster.ts"

const count = Number(process.argv[2] ?? 2000)
const rounds = Number(process.argv[3] ?? 5)
const cluster = await startRedisCluster()

const layers = (waitReplicas: number) =>
  Effect.gen(function* () {
    const redis: RedisSettings = { commandTimeoutMs: 5000, waitReplicas, waitTimeoutMs: 1000 }
    const prefix = `bench-wait-${waitReplicas}:`
    const url = cluster.url
    const tokens = yield* makeRedisTokens({ url, prefix, redis })
    const streams = yield* makeRedisStreamStore({ url, prefix, redis })
    const broker = yield* makeRedisBroker({ url, prefix, nodeId: `n${waitReplicas}`, redis })
    let n = 0
    return {
      "token issue + take": Effect.flatMap(tokens.issue("login", "v", Duration.minutes(1)), (t) =>
        tokens.take("login", t)
      ),
      "stream append": streams.append("history", "payload of a chat line", { maxEntries: 1000 }),
      "claim take": Effect.suspend(() => broker.claims.take("units", `u${n++}`, `n${waitReplicas}.claims/1`, "replace"))
    }
  })

/** Operations per second: `count` one at a time, then `count` with 16 in flight. */
const timed = (operation: Effect.Effect<unknown, unknown>) =>
  Effect.gen(function* () {
    const serialStart = performance.now()
    for (let i = 0; i < count; i++) yield* operation
    const serial = count / ((performance.now() - serialStart) / 1000)
    const parallelStart = performance.now()
    yield* Effect.all(
      Array.from({ length: count }, () => operation),
      { concurrency: 16, discard: true }
    )
    return { serial, parallel: count / ((performance.now() - parallelStart) / 1000) }
  })

const median = (values: Array<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const spread = (values: Array<number>) => `${Math.round(Math.min(...values))}-${Math.round(Math.max(...values))}`

await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const off = yield* layers(0)
      const on = yield* layers(1)
      const results = new Map<string, { serial: Array<number>; parallel: Array<number> }>()
      for (let round = 0; round < rounds; round++)
        for (const [mode, set] of [
          ["off", off],
          ["on", on]
        ] as const)
          for (const [name, operation] of Object.entries(set)) {
            const { serial, parallel } = yield* timed(operation as Effect.Effect<unknown, unknown>)
            const entry = results.get(`${name} (WAIT ${mode})`) ?? { serial: [], parallel: [] }
            entry.serial.push(serial)
            entry.parallel.push(parallel)
            results.set(`${name} (WAIT ${mode})`, entry)
          }
      console.log(`${count} operations per round, ${rounds} rounds; ops/s median (min-max)`)
      for (const [name, { serial, parallel }] of results)
        console.log(
          `${name.padEnd(32)} one at a time ${Math.round(median(serial))} (${spread(serial)}), 16 in flight ${Math.round(median(parallel))} (${spread(parallel)})`
        )
    })
  )
).finally(() => cluster.stop())
