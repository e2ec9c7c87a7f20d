import { redisKeys } from "../../../layers/Cluster/RedisKeys.ts"
import { describe, expect } from "bun:test"
import { Duration, Effect, Option, type Scope } from "effect"
import { makeMemoryTokens } from "../../../layers/Tokens/MemoryTokens.ts"
import { makeRedisTokens } from "../../../layers/Tokens/RedisTokens.ts"
import { makeNatsTokens, natsTokensBucket } from "../../../layers/Tokens/NatsTokens.ts"
import { Kvm } from "@nats-io/kv"
import { connect } from "@nats-io/transport-node"
import type { TokensService } from "../../../layers/Tokens/Tokens.ts"
import { it } from "../../support/effect.ts"
import {
  adminRedis,
  cleanRedisAfterAll,
  keysUnder,
  natsAvailable,
  natsPrefix,
  natsUrl,
  redisAvailable,
  redisClusterAvailable,
  redisUrl,
  runPrefix,
  sharedRedisCluster
} from "../Cluster/backends.ts"

const prefix = runPrefix("tokens")
cleanRedisAfterAll(prefix)
const ttl = Duration.seconds(10)

interface Backend {
  readonly name: string
  readonly skip: boolean
  readonly live: boolean
  /** Two nodes' views of one shared store. */
  readonly nodes: Effect.Effect<readonly [TokensService, TokensService], never, Scope.Scope>
  /** Milliseconds the store will keep this token, read from the store itself. */
  readonly remaining?: (kind: string, token: string) => Effect.Effect<number>
  /** Every key and value the store holds under the run's prefix, as one text. */
  readonly storedText?: Effect.Effect<string>
}

const memory: Backend = {
  name: "memory",
  skip: false,
  live: false,
  nodes: Effect.map(makeMemoryTokens(), (shared) => [shared, shared] as const)
}

/** Redis at `redisUrl`, or the shared Redis Cluster this process starts. */
const redisOn = (on: "redis" | "cluster"): Backend => {
  const url =
    on === "redis" ? Effect.succeed(redisUrl) : Effect.promise(sharedRedisCluster).pipe(Effect.map((c) => c.url))
  return {
    name: on === "redis" ? "redis" : "redis-cluster",
    skip: on === "redis" ? !redisAvailable : !redisClusterAvailable,
    live: true,
    nodes: Effect.flatMap(url, (url) =>
      Effect.all([makeRedisTokens({ url, prefix }), makeRedisTokens({ url, prefix })])
    ),
    remaining: (kind, token) =>
      Effect.flatMap(url, (url) =>
        Effect.promise(async () => {
          const client = await adminRedis(url)
          const key = redisKeys(prefix).token(kind, new Bun.CryptoHasher("sha256").update(token).digest("hex"))
          const ttlLeft = await client.pttl(key)
          client.disconnect()
          return ttlLeft
        })
      ),
    storedText: Effect.flatMap(url, (url) =>
      Effect.promise(async () => {
        const client = await adminRedis(url)
        const found = await keysUnder(client, prefix)
        const values = await Promise.all(
          found.map(async (key) =>
            (await client.type(key)) === "string" ? await client.get(key) : await client.zrange(key, 0, -1)
          )
        )
        client.disconnect()
        return JSON.stringify([found, values])
      })
    )
  }
}

const natsTokensPrefix = natsPrefix("tokens")
const nats: Backend = {
  name: "nats",
  skip: !natsAvailable,
  live: true,
  nodes: Effect.gen(function* () {
    const nodes = yield* Effect.all([
      makeNatsTokens({ url: natsUrl, prefix: natsTokensPrefix }),
      makeNatsTokens({ url: natsUrl, prefix: natsTokensPrefix })
    ])
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        const admin = await connect({ servers: natsUrl })
        await (await new Kvm(admin).open(natsTokensBucket(natsTokensPrefix))).destroy()
        await admin.close()
      })
    )
    return nodes
  })
}

for (const backend of [memory, redisOn("redis"), redisOn("cluster"), nats]) {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  describe(`shared Tokens on ${backend.name}`, () => {
    test("a key issued on one node is taken once on another; concurrent takes from both nodes: exactly one wins", () =>
      Effect.gen(function* () {
        const [a, b] = yield* backend.nodes
        const key = yield* a.issue("relay/login-key", "unit-1", ttl)
        expect(key).toMatch(/^[0-9a-f]{32}$/)
        expect(yield* b.take("relay/login-key", key)).toEqual(Option.some("unit-1"))
        expect(yield* a.take("relay/login-key", key)).toEqual(Option.none())
        for (let round = 0; round < 20; round++) {
          const contested = yield* b.issue("relay/login-key", `grant-${round}`, ttl)
          const takes = yield* Effect.all(
            Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? a : b).take("relay/login-key", contested)),
            { concurrency: "unbounded" }
          )
          expect(takes.filter(Option.isSome).map((won) => won.value)).toEqual([`grant-${round}`])
        }
      }))

    test("sliding get, revoke and revokeIndexed work across nodes; kinds are apart; count sees both nodes' tokens", () =>
      Effect.gen(function* () {
        const [a, b] = yield* backend.nodes
        const kind = `session/${crypto.randomUUID().slice(0, 6)}`
        const session = yield* a.issue(kind, "alice", ttl, "request-1")
        const other = yield* b.issue(kind, "bob", ttl)
        expect(yield* b.count(kind)).toBe(2)
        expect(yield* b.get("other-kind", session)).toEqual(Option.none())
        expect(yield* b.get(kind, session, Duration.minutes(5))).toEqual(Option.some("alice"))
        if (backend.remaining) expect(yield* backend.remaining(kind, session)).toBeGreaterThan(Duration.toMillis(ttl))
        expect(yield* b.revokeIndexed(kind, "request-1")).toBe(true)
        expect(yield* a.get(kind, session)).toEqual(Option.none())
        expect(yield* a.revokeIndexed(kind, "request-1")).toBe(false)
        expect(yield* a.revoke(kind, other)).toBe(true)
        expect(yield* b.revoke(kind, other)).toBe(false)
        expect(yield* a.count(kind)).toBe(0)
      }))

    const storedText = backend.storedText
    if (storedText)
      test("only the SHA-256 of a token is stored, never the token itself", () =>
        Effect.gen(function* () {
          const [a] = yield* backend.nodes
          const token = yield* a.issue("secret-kind", "value", ttl)
          const keys = yield* storedText
          expect(keys).not.toContain(token)
          expect(keys).toContain(new Bun.CryptoHasher("sha256").update(token).digest("hex"))
        }))
  })
}
