import { afterAll } from "bun:test"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect, Layer } from "effect"
import { NatsStreamStore, natsHistoryStream } from "../../../layers/Storage/NatsStreamStore.ts"
import { RedisStreamStore } from "../../../layers/Storage/RedisStreamStore.ts"
import {
  cleanRedisAfterAll,
  natsAvailable,
  natsPrefix,
  natsUrl,
  redisAvailable,
  redisClusterAvailable,
  redisUrl,
  runPrefix,
  sharedRedisCluster
} from "../Cluster/backends.ts"
import { streamStoreBatchContract } from "./StreamStoreBatchContract.ts"
import { streamStoreContract } from "./StreamStoreContract.ts"

// The cluster-wide stores run the same contract as memory and SQL (StreamStore.test.ts) on the real services.
const redisPrefix = runPrefix("streams")
cleanRedisAfterAll(redisPrefix)
const jetStreamPrefix = natsPrefix("streams")
afterAll(async () => {
  if (!natsAvailable) return
  const connection = await connect({ servers: natsUrl })
  const manager = await jetstreamManager(connection)
  await manager.streams.delete(natsHistoryStream(jetStreamPrefix)).catch(() => false)
  await connection.close()
})

for (const backend of [
  {
    name: "redis",
    layer: RedisStreamStore({ url: redisUrl, prefix: redisPrefix }).pipe(Layer.orDie),
    persistent: true,
    skip: !redisAvailable,
    droppingAnswers: (drops: number) => {
      let left = drops
      return RedisStreamStore({ url: redisUrl, prefix: redisPrefix, dropAnswer: () => left-- > 0 }).pipe(Layer.orDie)
    }
  },
  {
    name: "redis-cluster",
    layer: Layer.unwrapEffect(
      Effect.promise(sharedRedisCluster).pipe(
        Effect.map((cluster) => RedisStreamStore({ url: cluster.url, prefix: redisPrefix }))
      )
    ).pipe(Layer.orDie),
    persistent: true,
    skip: !redisClusterAvailable
  },
  {
    name: "nats jetstream",
    layer: NatsStreamStore({ url: natsUrl, prefix: jetStreamPrefix }).pipe(Layer.orDie),
    persistent: true,
    skip: !natsAvailable
  }
]) {
  streamStoreContract(backend)
  streamStoreBatchContract(backend)
}
