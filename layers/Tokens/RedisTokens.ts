import { Clock, Duration, Effect, Layer, Option } from "effect"
import type Redis from "ioredis"
import { redisConnection } from "../Cluster/RedisBroker.ts"
import { defaultRedisSettings, type RedisSettings } from "../Cluster/RedisConnection.ts"
import { redisKeys } from "../Cluster/RedisKeys.ts"
import { makeReplicaWait } from "../Cluster/RedisReplication.ts"
import { randomToken } from "./TokenTable.ts"
import { TokenStoreUnavailable, Tokens, type TokensService } from "./Tokens.ts"

export interface RedisTokensOptions {
  readonly url: string
  /** Separates clusters (and test runs) sharing one Redis. */
  readonly prefix: string
  /** Command timeout and replica WAITs (`cluster.redis.*`); the defaults when absent. */
  readonly redis?: RedisSettings
}

const digest = (token: string) => new Bun.CryptoHasher("sha256").update(token).digest("hex")

// Each script is one atomic step on the server, so two nodes can never both take one token. Every key a
// script touches is declared in KEYS and all carry the kind's hash tag (one slot on Redis Cluster).
// KEYS[1] token key, KEYS[2] the kind's expiry index (zset: digest → expires at, for count).
const takeScript = `
local held = redis.call('GETDEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return held`
// KEYS[1] token, KEYS[2] zset, KEYS[3] (when known) the token's index key; ARGV: digest, slide ms ('' for
// none), new expiry, the index key of index "" (its prefix). A sliding token with an index whose key was not
// declared changes nothing and answers {index}: the caller runs it again with that key.
const getScript = `
local held = redis.call('GET', KEYS[1])
if held and ARGV[2] ~= '' then
  local index = cjson.decode(held).i
  if index and KEYS[3] ~= ARGV[4] .. index then return {index} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  if index then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
end
return held`
// KEYS[1] index key, KEYS[2] zset, KEYS[3] (when known) the token key it names; ARGV[1] the token key of
// digest "" (its prefix). An index naming a token whose key was not declared changes nothing and answers
// {digest}: the caller runs it again with that key.
const revokeIndexedScript = `
local found = redis.call('GET', KEYS[1])
if not found then return 0 end
if KEYS[3] ~= ARGV[1] .. found then return {found} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], found)
return redis.call('DEL', KEYS[3])`

/**
 * Tokens shared by every node of a cluster, in Redis. Only the SHA-256 of a token is stored (as
 * part of the key), never the token; Redis expires entries itself (PX), and a per-kind sorted set
 * of expiry times answers `count`. A value is kept as JSON with its index name.
 * Every script declares its keys, and a kind's keys share a hash tag: one Redis or Redis Cluster.
 */
export const makeRedisTokens = (options: RedisTokensOptions) =>
  Effect.gen(function* () {
    const settings = options.redis ?? defaultRedisSettings
    const redis: Redis = yield* redisConnection(options.url, "switchboard-tokens", settings).pipe(Effect.orDie)
    // A take or revoke lost in a failover would let a single-use or revoked token be used again.
    const replicas = yield* makeReplicaWait(redis, settings, "tokens")
    const replicatedIf = (done: boolean, key: string, what: string) =>
      done ? replicas.replicated(key, what) : Effect.void
    const keys = redisKeys(options.prefix)
    const expiries = keys.tokenExpiries
    // A failed command (Redis unreachable, timed out) is the caller's to answer: the reason names no key or token.
    const run = <A>(command: () => Promise<A>) =>
      Effect.tryPromise({ try: command, catch: () => new TokenStoreUnavailable({ reason: "Redis did not answer" }) })
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
            .set(keys.token(kind, key), JSON.stringify({ v: value, i: index }), "PX", ttlMillis)
          write.zadd(expiries(kind), now + Number(ttlMillis), key)
          if (index !== undefined && index !== "") write.set(keys.tokenIndex(kind, index), key, "PX", ttlMillis)
          yield* run(() => write.exec())
          return token
        }),
      take: (kind, token) => {
        const key = digest(token)
        return run(() => redis.eval(takeScript, 2, keys.token(kind, key), expiries(kind), key)).pipe(
          Effect.map(parse),
          Effect.tap((taken) => replicatedIf(Option.isSome(taken), expiries(kind), `a take of a ${kind} token`))
        )
      },
      get: (kind, token, slide) =>
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          const key = digest(token)
          const slideMillis = slide === undefined ? "" : String(Math.max(1, Math.ceil(Duration.toMillis(slide))))
          const expiresAt = slide === undefined ? "" : String(now + Number(slideMillis))
          const slideOnce = (indexKey: string | undefined) =>
            redis.eval(
              getScript,
              indexKey === undefined ? 2 : 3,
              keys.token(kind, key),
              expiries(kind),
              ...(indexKey === undefined ? [] : [indexKey]),
              key,
              slideMillis,
              expiresAt,
              keys.tokenIndex(kind, "")
            )
          // A second round trip only for a sliding token with an index (the script names the key it needs).
          const held = yield* run(async () => {
            let answer = await slideOnce(undefined)
            for (let attempt = 0; Array.isArray(answer) && attempt < 5; attempt++)
              answer = await slideOnce(keys.tokenIndex(kind, String(answer[0])))
            return answer
          })
          return parse(held)
        }),
      revoke: (kind, token) => {
        const key = digest(token)
        return run(() => redis.multi().del(keys.token(kind, key)).zrem(expiries(kind), key).exec()).pipe(
          Effect.map((results) => results?.[0]?.[1] === 1),
          Effect.tap((revoked) => replicatedIf(revoked, expiries(kind), `a revoke of a ${kind} token`))
        )
      },
      revokeIndexed: (kind, index) =>
        index === ""
          ? Effect.succeed(false)
          : run(async () => {
              const revokeOnce = (tokenKey: string | undefined) =>
                redis.eval(
                  revokeIndexedScript,
                  tokenKey === undefined ? 2 : 3,
                  keys.tokenIndex(kind, index),
                  expiries(kind),
                  ...(tokenKey === undefined ? [] : [tokenKey]),
                  keys.token(kind, "")
                )
              // The first call learns which token the index names; the second deletes it (unless the index moved on).
              let answer = await revokeOnce(undefined)
              for (let attempt = 0; Array.isArray(answer) && attempt < 5; attempt++)
                answer = await revokeOnce(keys.token(kind, String(answer[0])))
              return answer
            }).pipe(
              Effect.map((deleted) => deleted === 1),
              Effect.tap((revoked) => replicatedIf(revoked, expiries(kind), `a revoke of a ${kind} token`))
            ),
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
