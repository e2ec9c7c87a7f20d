import Redis, { Cluster } from "ioredis"
import { parseClusterUrl } from "../../../layers/Cluster/RedisConnection.ts"
import { type RedisClusterFixture, startRedisCluster } from "../../support/redisCluster.ts"

let sharedCluster: Promise<RedisClusterFixture> | undefined
/**
 * The Redis Cluster (3 masters, 3 replicas) the `redis-cluster` backends of every test file share,
 * started on first use and removed when the test process exits. Tests that kill nodes start their own.
 */
export const sharedRedisCluster = () => {
  sharedCluster ??= startRedisCluster()
  return sharedCluster
}

/**
 * A connection for the tests' own reads and cleanup (PTTL, KEYS, DEL) on one Redis or a cluster:
 * on a cluster, single-key commands go to the key's shard and `keysUnder` asks every master.
 */
export const adminRedis = async (url: string): Promise<Redis | Cluster> => {
  if (!url.startsWith("redis-cluster://")) return new Redis(url)
  const { seeds, username, password } = parseClusterUrl(url)
  const cluster = new Redis.Cluster(seeds, { redisOptions: { username, password } })
  // A node's passing error is retried by the client; only a client that gave up ("end") fails the helper.
  cluster.on("error", () => {})
  await new Promise<void>((resolve, reject) => {
    cluster.once("ready", resolve)
    cluster.once("end", () => reject(new Error(`no Redis Cluster at ${url}`)))
  })
  return cluster
}
export const keysUnder = async (admin: Redis | Cluster, prefix: string) =>
  admin instanceof Cluster
    ? (await Promise.all(admin.nodes("master").map((node) => node.keys(`${prefix}*`)))).flat()
    : await admin.keys(`${prefix}*`)
/** Deletes keys one by one (on a cluster they sit on different shards). */
export const deleteKeys = (admin: Redis | Cluster, keys: ReadonlyArray<string>) =>
  Promise.all(keys.map((key) => admin.del(key)))
