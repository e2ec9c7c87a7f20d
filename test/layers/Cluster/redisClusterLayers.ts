import { Effect } from "effect"
import { makeRedisBroker } from "../../../layers/Cluster/RedisBroker.ts"
import type { RedisSettings } from "../../../layers/Cluster/RedisConnection.ts"
import { redisKeys } from "../../../layers/Cluster/RedisKeys.ts"
import { makeRedisStreamStore } from "../../../layers/Storage/RedisStreamStore.ts"
import { makeRedisTokens } from "../../../layers/Tokens/RedisTokens.ts"
import { firstOnMaster, pollUntil, type RedisClusterFixture } from "../../support/redisCluster.ts"
import { runPrefix } from "./backends.ts"

const promise = <A>(run: () => Promise<A>) => Effect.promise(run)

/**
 * A broker, tokens and a stream store of one node on a (healed) fixture cluster, and a claim scope ("units"),
 * token kind and stream all on one master: a test that pauses or kills that master or its replica hits all three.
 */
export const layersOnOneMaster = (fixture: RedisClusterFixture, label: string, redis: RedisSettings) =>
  Effect.gen(function* () {
    yield* promise(() => fixture.heal())
    const prefix = runPrefix(label)
    const keys = redisKeys(prefix)
    const master = yield* promise(() => fixture.masterOf(keys.claims("units")))
    const onMaster = (candidate: (i: number) => string) => promise(() => firstOnMaster(fixture, master, candidate))
    const kind = `login${yield* onMaster((i) => keys.tokenExpiries(`login${i}`))}`
    const stream = `s${yield* onMaster((i) => `${prefix}stream:{s${i}}:head`)}`
    const url = fixture.url
    return {
      master,
      kind,
      stream,
      promoted: promise(() =>
        pollUntil("the replica's promotion", async () => {
          const now = await fixture.masterOf(keys.claims("units"))
          return now === master ? undefined : now
        })
      ),
      broker: yield* makeRedisBroker({ url, prefix, nodeId: "a", redis }),
      tokens: yield* makeRedisTokens({ url, prefix, redis }),
      streams: yield* makeRedisStreamStore({ url, prefix, redis })
    }
  })
