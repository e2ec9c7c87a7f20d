import { Effect } from "effect"
import Redis, { type ClusterNode, type RedisOptions } from "ioredis"
import { BrokerUnavailable, redactUrl } from "./Broker.ts"
// A late reply on a stopped sharded subscriber must not become an uncaught exception (see the guard).
import "./RedisShardedSubscriberGuard.ts"

const clusterScheme = "redis-cluster://"

/** `cluster.redis.*`: how long a command may go unanswered, and which writes wait for replicas. */
export interface RedisSettings {
  /** A command with no answer after this fails like an outage (its promise rejects; the connection stays). */
  readonly commandTimeoutMs: number
  /**
   * Replicas a guarded write WAITs for; "auto" = 1 when every master reports a replica, else none (decided at
   * start; on a cluster again at each slot-map refresh).
   */
  readonly waitReplicas: number | "auto"
  /** How long such a WAIT may take before the write is reported as not replicated (below commandTimeoutMs). */
  readonly waitTimeoutMs: number
}

export const defaultRedisSettings: RedisSettings = { commandTimeoutMs: 5000, waitReplicas: "auto", waitTimeoutMs: 500 }

/** `redis-cluster://[user:password@]host:port[,host:port...]`: the seed nodes of a Redis Cluster and its credentials. */
export const parseClusterUrl = (url: string): { seeds: Array<ClusterNode>; username?: string; password?: string } => {
  const rest = url.slice(clusterScheme.length).replace(/\/$/, "")
  const at = rest.lastIndexOf("@")
  const auth = at < 0 ? undefined : rest.slice(0, at)
  const colon = auth?.indexOf(":") ?? -1
  const seeds = (at < 0 ? rest : rest.slice(at + 1)).split(",").map((hostPort) => {
    const [host, port] = hostPort.trim().split(":")
    return { host: host || "127.0.0.1", port: Number(port || 6379) }
  })
  if (auth === undefined) return { seeds }
  return colon < 0
    ? { seeds, password: decodeURIComponent(auth) }
    : { seeds, username: decodeURIComponent(auth.slice(0, colon)), password: decodeURIComponent(auth.slice(colon + 1)) }
}

/** A subscriber connection has no command timeout (its subscribes are bounded by the caller). */
export type ConnectionRole = "commands" | "subscriber"

/**
 * A Redis connection that fails fast while Redis is away (no offline queue: callers count and
 * retry), reconnects with a capped backoff, and is closed with its Scope. Fails when the first
 * connection cannot be made, so a misconfigured URL stops the program with one clear line.
 * A `redis-cluster://` URL opens an ioredis Cluster client (sharded pub/sub on each channel's shard);
 * it has the same command API, so callers use it as one Redis (every multi-key operation stays in one slot).
 */
export const redisConnection = (
  url: string,
  name: string,
  settings: RedisSettings = defaultRedisSettings,
  role: ConnectionRole = "commands"
) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => openRedis(url, name, settings, role),
      catch: (cause) => new BrokerUnavailable(`redis at ${redactUrl(url)}`, cause)
    }),
    (client) => Effect.sync(() => client.disconnect())
  )

/** What `redisConnection` opens, as a promise the caller must disconnect (rejects when the first connection fails). */
export const openRedis = async (
  url: string,
  name: string,
  settings: RedisSettings = defaultRedisSettings,
  role: ConnectionRole = "commands"
): Promise<Redis> => {
  const options: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    autoResubscribe: false,
    // A command in flight when the connection drops may have run: resending it could deliver a message twice.
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 1,
    // A master that stops answering (paused, partitioned) without closing its socket fails its commands, not hangs them.
    // Not on a subscriber: ioredis 5.9 loses track of its queue when a (S)SUBSCRIBE answered late had timed out.
    ...(role === "commands" ? { commandTimeout: settings.commandTimeoutMs } : {}),
    connectionName: name,
    retryStrategy: (attempt) => Math.min(50 * attempt, 1000)
  }
  const client: Redis = url.startsWith(clusterScheme) ? clusterClient(url, options, settings) : new Redis(url, options)
  // Errors while reconnecting are reported through isUp and the undelivered count, not thrown.
  client.on("error", () => {})
  // A first connection that fails must not leave a client retrying in the background.
  await client.connect().catch((error: unknown) => {
    client.disconnect()
    throw error
  })
  return client
}

const clusterClient = (url: string, options: RedisOptions, settings: RedisSettings): Redis => {
  const { seeds, username, password } = parseClusterUrl(url)
  const cluster = new Redis.Cluster(seeds, {
    lazyConnect: true,
    enableOfflineQueue: false,
    shardedSubscribers: true,
    // The slot map is read again this often, so commands reach a replica promoted while its master was silent.
    slotsRefreshInterval: settings.commandTimeoutMs,
    clusterRetryStrategy: (attempt) => Math.min(50 * attempt, 1000),
    redisOptions: { ...options, ...(username ? { username } : {}), ...(password ? { password } : {}) }
  })
  // Same commands, events and status as one connection for what the cluster layers use.
  return cluster as unknown as Redis
}
