import { Effect, Option, Runtime } from "effect"
import { Cluster, type Redis } from "ioredis"
import { Metrics } from "../Observability/Metrics.ts"
import { type ReplicatedOp, unreplicatedWrites } from "./BrokerMetrics.ts"
import type { RedisSettings } from "./RedisConnection.ts"

/** The fewest replicas any master has, from `CLUSTER NODES` (nodes the cluster agreed failed do not count). */
const fewestReplicas = (nodes: string) => {
  const lines = nodes
    .trim()
    .split("\n")
    .map((line) => line.split(" "))
  // "fail?" is one node's suspicion: read at every refresh, it would flap the decision on a slow answer.
  const healthy = lines.filter(([, , flags]) => !(flags ?? "").split(",").some((flag) => /^(fail|noaddr)$/.test(flag)))
  const masters = healthy.filter(([, , flags, , , , , , slots]) => flags?.includes("master") && slots !== undefined)
  if (masters.length === 0) return 0
  return Math.min(
    ...masters.map(([id]) => healthy.filter(([, , flags, master]) => flags?.includes("slave") && master === id).length)
  )
}

/** Replicas the topology offers now: the fewest any master has (a cluster), or this master's (one Redis). */
const replicasNow = async (redis: Redis) => {
  if ((redis as unknown) instanceof Cluster) return fewestReplicas(String(await redis.cluster("NODES")))
  const info = await redis.info("replication")
  return info.includes("role:master") ? Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? 0) : 0
}

/** "auto" waits for one replica when there is one to wait for. */
const autoWanted = (replicas: number) => Math.min(1, replicas)

/** How many replicas a guarded write waits for: the configured number, or for "auto" 1 when every master has one now. */
export const replicasToWait = (redis: Redis, settings: RedisSettings) =>
  typeof settings.waitReplicas === "number"
    ? Effect.succeed(settings.waitReplicas)
    : Effect.tryPromise(() => replicasNow(redis)).pipe(
        Effect.map(autoWanted),
        Effect.orElseSucceed(() => 0)
      )

/** "auto" on a Redis Cluster client is decided again at each slot-map refresh (one Redis: at start only). */
export const followsTopology = (redis: Redis, settings: RedisSettings) =>
  settings.waitReplicas === "auto" && (redis as unknown) instanceof Cluster

/** The layers whose writes WAIT, and what their writes count as in `switchboard_cluster_unreplicated_writes_total`. */
const opOfLayer = { tokens: "token", "cluster claims": "claim", "stream store": "history" } as const satisfies Record<
  string,
  ReplicatedOp
>

/**
 * `WAIT n timeout` after a write whose loss in a failover would break a guarantee (a consumed token, a
 * claim, a history entry). The write stands either way (the master took it; failing the caller would
 * not undo it); one that did not reach the replicas in time is counted (when the program has Metrics) and
 * logged, once until they catch up again.
 * Sent with a read of the written key so that, on a cluster, it reaches the master that took the write
 * (WAIT counts the writes of its own connection; ours is the one to that master).
 */
export const makeReplicaWait = (redis: Redis, settings: RedisSettings, layer: keyof typeof opOfLayer) =>
  Effect.gen(function* () {
    let wanted = yield* replicasToWait(redis, settings)
    // Optional so that the stores stay usable alone; every program provides Metrics.
    const metrics = Option.getOrUndefined(yield* Effect.serviceOption(Metrics))
    const unreplicated = metrics && unreplicatedWrites(metrics, opOfLayer[layer])
    let behind = false
    const acknowledged = (key: string) =>
      Effect.promise(() =>
        redis
          .pipeline()
          .exists(key)
          .call("WAIT", String(wanted), String(settings.waitTimeoutMs))
          .exec()
          .then((results) => Number(results?.[1]?.[1] ?? 0))
          .catch(() => 0)
      )
    const report = (acked: number, what: string) =>
      Effect.suspend(() => {
        const late = acked < wanted
        if (late) unreplicated?.inc()
        if (late === behind) return Effect.void
        behind = late
        return late
          ? Effect.logWarning(
              `${layer}: ${what} reached ${acked} of ${wanted} replicas within ${settings.waitTimeoutMs} ms; a failover now can lose such writes`
            )
          : Effect.logInfo(`${layer}: writes reach the replicas again`)
      })
    if (followsTopology(redis, settings)) {
      const runtime = yield* Effect.runtime<never>()
      const decided = (now: number) => {
        if (now === wanted) return
        wanted = now
        behind = false
        Runtime.runFork(runtime)(
          now > 0
            ? Effect.logInfo(`${layer}: writes now WAIT for a replica (every master has one)`)
            : Effect.logWarning(
                `${layer}: writes no longer WAIT: a master has no replica (a failover now can lose them)`
              )
        )
      }
      let deciding = false
      // A refresh whose CLUSTER NODES fails (a node away) leaves the decision as it was until the next one.
      redis.on("refresh", () => {
        if (deciding) return
        deciding = true
        replicasNow(redis)
          .then(
            (replicas) => decided(autoWanted(replicas)),
            () => {}
          )
          .finally(() => {
            deciding = false
          })
      })
    }
    return {
      /** Waits until `key`'s latest write reached the replicas (or the WAIT timeout passed, reported); never fails. */
      replicated: (key: string, what: string): Effect.Effect<void> =>
        wanted === 0 ? Effect.void : Effect.flatMap(acknowledged(key), (acked) => report(acked, what))
    }
  })

export type ReplicaWait = Effect.Effect.Success<ReturnType<typeof makeReplicaWait>>
