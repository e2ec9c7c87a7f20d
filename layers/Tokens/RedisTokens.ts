import { Clock, Duration, Effect, Layer, Option } from "effect"
import type Redis from "ioredis"
import { redisConnection } from "../Cluster/RedisBroker.ts"
import { randomToken } from "./TokenTable.ts"
import { Tokens, type TokensService } from "./Tokens.ts"

export interface RedisTokensOptions {
  readonly url: string
  /** Separates clusters (and test runs) sharing one Redis. */
  readonly prefix: string
}

const digest = (token: string) => new Bun.CryptoHasher("sha256").update(token).digest("hex")

// Each script is one atomic step on the server, so two nodes can never both take one token.
// KEYS[1] token key, KEYS[2] the kind's expiry index (zset: digest → expires at, for count).
const takeScript = `
local held = redis.call('GETDEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return held`
// ARGV: digest, slide ms ('' for none), new expiry, index key prefix.
const getScript = `
local held = redis.call('GET', KEYS[1])
if held and ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  local index = cjson.decode(held).i
  if index then redis.call('PEXPIRE', ARGV[4] .. index, ARGV[2]) end
end
return held`
// KEYS[1] index key, KEYS[2] zset; ARGV[1] token key prefix.
const revokeIndexedScript = `
local found = redis.call('GETDEL', KEYS[1])
if not found then return 0 end
redis.call('ZREM', KEYS[2], found)
return redis.call('DEL', ARGV[1] .. found)`

/**
 * Tokens shared by every node of a cluster, in Redis. Only the SHA-256 of a token is stored (as
 * part of the key), never the token; Redis expires entries itself (PX), and a per-kind sorted set
 * of expiry times answers `count`. A value is kept as JSON with its index name.
 * Keys are computed in scripts, so this targets a single Redis (or a primary with replicas), not Redis Cluster.
 */
export const makeRedisTokens = (options: RedisTokensOptions) =>
  Effect.gen(function* () {
    const redis: Redis = yield* redisConnection(options.url, "switchboard-tokens").pipe(Effect.orDie)
    const tokenPrefix = (kind: string) => `${options.prefix}token:${kind}:`
    const indexPrefix = (kind: string) => `${options.prefix}tokenindex:${kind}:`
    const expiries = (kind: string) => `${options.prefix}tokens:${kind}`
    // Tokens are what logins stand on: a Redis outage is a defect of this request, reported like any other.
    const run = <A>(command: () => Promise<A>) => Effect.promise(command)
    const parse = (held: unknown) =>
      typeof held === "string" ? Option.some((JSON.parse(held) as { v: string }).v) : Option.none()

    const service: TokensService = {
      issue: (kind, value, ttl, index) =>
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          const token = randomToken()
          const key = digest(token)
          const ttlMillis = String(Math.max(1, Math.ceil(Duration.toMillis(ttl))))
          const write = redis
            .multi()
            .set(`${tokenPrefix(kind)}${key}`, JSON.stringify({ v: value, i: index }), "PX", ttlMillis)
          write.zadd(expiries(kind), now + Number(ttlMillis), key)
          if (index !== undefined && index !== "") write.set(`${indexPrefix(kind)}${index}`, key, "PX", ttlMillis)
          yield* run(() => write.exec())
          return token
        }),
      take: (kind, token) => {
        const key = digest(token)
        return run(() => redis.eval(takeScript, 2, `${tokenPrefix(kind)}${key}`, expiries(kind), key)).pipe(
          Effect.map(parse)
        )
      },
      get: (kind, token, slide) =>
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          const key = digest(token)
          const slideMillis = slide === undefined ? "" : String(Math.max(1, Math.ceil(Duration.toMillis(slide))))
          const expiresAt = slide === undefined ? "" : String(now + Number(slideMillis))
          const held = yield* run(() =>
            redis.eval(
              getScript,
              2,
              `${tokenPrefix(kind)}${key}`,
              expiries(kind),
              key,
              slideMillis,
              expiresAt,
              indexPrefix(kind)
            )
          )
          return parse(held)
        }),
      revoke: (kind, token) => {
        const key = digest(token)
        return run(() =>
          redis
            .multi()
            .del(`${tokenPrefix(kind)}${key}`)
            .zrem(expiries(kind), key)
            .exec()
        ).pipe(Effect.map((results) => results?.[0]?.[1] === 1))
      },
      revokeIndexed: (kind, index) =>
        index === ""
          ? Effect.succeed(false)
          : run(() =>
              redis.eval(revokeIndexedScript, 2, `${indexPrefix(kind)}${index}`, expiries(kind), tokenPrefix(kind))
            ).pipe(Effect.map((deleted) => deleted === 1)),
      count: (kind) =>
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          const results = yield* run(() =>
            redis.multi().zremrangebyscore(expiries(kind), "-inf", now).zcard(expiries(kind)).exec()
          )
          return Number(results?.[1]?.[1] ?? 0)
        })
    }
    return service
  })

export const RedisTokensLive = (options: RedisTokensOptions) => Layer.scoped(Tokens, makeRedisTokens(options))
