import { Layer } from "effect"
import { RedisStreamStore } from "../../../layers/Storage/RedisStreamStore.ts"
import { cleanRedisAfterAll, redisAvailable, redisUrl, runPrefix } from "../Cluster/backends.ts"
import { streamStoreContract } from "./StreamStoreContract.ts"

// The cluster-wide stores run the same contract as memory and SQL (StreamStore.test.ts) on the real services.
const redisPrefix = runPrefix("streams")
cleanRedisAfterAll(redisPrefix)

streamStoreContract({
  name: "redis",
  layer: RedisStreamStore({ url: redisUrl, prefix: redisPrefix }).pipe(Layer.orDie),
  persistent: true,
  skip: !redisAvailable
})
