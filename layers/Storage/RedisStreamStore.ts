import { Clock, Effect, Layer, Schedule } from "effect"
import { type default as Redis, ReplyError } from "ioredis"
import { StorageError } from "../../src/storage/Account.ts"
import { PartialAppend, payloadBytes, type StreamEntry } from "../../src/storage/Stream.ts"
import { redisConnection } from "../Cluster/RedisBroker.ts"
import { defaultRedisSettings, type RedisSettings } from "../Cluster/RedisConnection.ts"
import { makeReplicaWait } from "../Cluster/RedisReplication.ts"
import { StreamStore } from "./StreamStore.ts"

export interface RedisStreamStoreOptions {
  readonly url: string
  /** Separates clusters (and test runs) sharing one Redis: every key starts with it. */
  readonly prefix: string
  /** Command timeout and replica WAITs (`cluster.redis.*`); the defaults when absent. */
  readonly redis?: RedisSettings
  /** Tests only: called once a batch script has run; true drops its answer, as a connection cut then would. */
  readonly dropAnswer?: () => boolean
}

/** How long a batch's id is remembered (ms): its resend comes within seconds. */
const batchMemoryMs = 30_000

/** The command was never sent (the connection was down): nothing ran. */
class NotSent extends Error {}

// KEYS[1] head hash (epoch, last, bytes), KEYS[2] the Redis Stream of entries (id "<seq>-0", fields p, a, b).
// Each script runs atomically on the server: INCR + XADD + trim is one step, so nodes never share a seq.
const headScript = `redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])`
// Drops the oldest entries until the stream fits maxEntries / maxBytes; needs bytes (kept total) set, stores it.
const trimScript = `local count = redis.call('XLEN', KEYS[2])
local function over() return count > 0 and ((maxEntries >= 0 and count > maxEntries) or (maxBytes >= 0 and bytes > maxBytes)) end
while over() do
  for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 64)) do
    if not over() then break end
    local fields = entry[2]
    for i = 1, #fields, 2 do if fields[i] == 'b' then bytes = bytes - tonumber(fields[i + 1]) end end
    redis.call('XDEL', KEYS[2], entry[1])
    count = count - 1
  end
end
redis.call('HSET', KEYS[1], 'bytes', bytes)`
// ARGV: new epoch, payload, at, size, maxEntries (-1 = none), maxBytes (-1 = none).
const appendScript = `${headScript}
local seq = redis.call('HINCRBY', KEYS[1], 'last', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 'p', ARGV[2], 'a', ARGV[3], 'b', ARGV[4])
local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', tonumber(ARGV[4]))
local maxEntries, maxBytes = tonumber(ARGV[5]), tonumber(ARGV[6])
${trimScript}
return seq`
// KEYS[3] the batch's id key. ARGV: new epoch, at, maxEntries, maxBytes, id memory (ms), then payload and size per
// entry. Returns the first entry's seq and its time; a batch id seen before returns those of its first run, adding none.
// Trimming once after all XADDs keeps what trimming after each would: the longest suffix that fits.
const appendManyScript = `local done = redis.call('HMGET', KEYS[3], 'first', 'at')
if done[1] then return done end
${headScript}
local n = (#ARGV - 5) / 2
local last = redis.call('HINCRBY', KEYS[1], 'last', n)
local added = 0
for i = 1, n do
  local size = ARGV[5 + 2 * i]
  redis.call('XADD', KEYS[2], (last - n + i) .. '-0', 'p', ARGV[4 + 2 * i], 'a', ARGV[2], 'b', size)
  added = added + tonumber(size)
end
local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', added)
local maxEntries, maxBytes = tonumber(ARGV[3]), tonumber(ARGV[4])
${trimScript}
redis.call('HSET', KEYS[3], 'first', last - n + 1, 'at', ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return {tostring(last - n + 1), ARGV[2]}`
// ARGV: new epoch. Returns epoch, last seq, id of the oldest kept entry (false when empty).
const positionScript = `${headScript}
local head = redis.call('HMGET', KEYS[1], 'epoch', 'last')
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
return {head[1], head[2] or '0', oldest and oldest[1] or false}`

const seqOf = (id: string) => Number(id.slice(0, id.indexOf("-")))
const field = (fields: ReadonlyArray<string>, name: string) => fields[fields.indexOf(name) + 1]!

/**
 * StreamStore shared by every node of a cluster, in Redis: per stream a hash (epoch, last seq, kept
 * bytes) and a Redis Stream whose entry ids are the seqs (`<seq>-0`). Appends are one Lua script
 * (HINCRBY + XADD with that explicit id + trim to the bounds), so seqs are assigned cluster-wide
 * without gaps or duplicates. Keys: `<prefix>stream:{<name>}:head`, `:entries` and, for 30 s after
 * a batch, `:batch:<id>` (one hash tag, so a stream's keys share a slot).
 */
export const makeRedisStreamStore = (options: RedisStreamStoreOptions) =>
  Effect.gen(function* () {
    const settings = options.redis ?? defaultRedisSettings
    const redis: Redis = yield* redisConnection(options.url, "switchboard-streams", settings).pipe(
      Effect.mapError((error) => new StorageError({ message: error.message, cause: error }))
    )
    // An append lost in a failover gives its seq to a later entry: clients would hold two entries under one seq.
    const replicas = yield* makeReplicaWait(redis, settings, "stream store")
    const keys = (stream: string) => [
      `${options.prefix}stream:{${stream}}:head`,
      `${options.prefix}stream:{${stream}}:entries`
    ]
    const run = <A>(what: string, stream: string, command: () => Promise<A>) =>
      Effect.tryPromise({
        try: command,
        catch: (cause) =>
          new StorageError({
            message: `${what} stream ${JSON.stringify(stream)} failed: ${cause instanceof Error ? cause.message : cause}`,
            cause
          })
      })
    const bound = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? "-1" : String(value))

    const store: StreamStore["Type"] = {
      append: (stream, payload, bounds) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) =>
          run("appending to", stream, () =>
            redis.eval(
              appendScript,
              2,
              ...keys(stream),
              crypto.randomUUID(),
              payload,
              String(at),
              String(payloadBytes(payload)),
              bound(bounds.maxEntries),
              bound(bounds.maxBytes)
            )
          ).pipe(
            Effect.tap(() => replicas.replicated(keys(stream)[0]!, `an append to ${JSON.stringify(stream)}`)),
            Effect.map((seq): StreamEntry => ({ seq: Number(seq), payload, at }))
          )
        ),
      appendMany: (stream, payloads, bounds, batch = crypto.randomUUID()) =>
        payloads.length === 0
          ? Effect.succeed([])
          : Effect.flatMap(Clock.currentTimeMillis, (at) => {
              const send = Effect.tryPromise({
                try: async () => {
                  if (redis.status !== "ready") throw new NotSent(`Redis connection is ${redis.status}`)
                  const reply = (await redis.eval(
                    appendManyScript,
                    3,
                    ...keys(stream),
                    `${options.prefix}stream:{${stream}}:batch:${batch}`,
                    crypto.randomUUID(),
                    String(at),
                    bound(bounds.maxEntries),
                    bound(bounds.maxBytes),
                    String(batchMemoryMs),
                    ...payloads.flatMap((payload) => [payload, String(payloadBytes(payload))])
                  )) as [string, string]
                  if (options.dropAnswer?.()) throw new Error("the answer was lost")
                  return reply
                },
                catch: (cause) => cause
              })
              const message = (cause: unknown) =>
                `appending to stream ${JSON.stringify(stream)} failed: ${cause instanceof Error ? cause.message : cause}`
              // An error answer or a command never sent stored nothing; anything else may have run: resend it under its
              // id once (waiting a few seconds for the connection), and the script answers for sure.
              const maybeRan = (cause: unknown) => !(cause instanceof ReplyError || cause instanceof NotSent)
              const resend = send.pipe(
                Effect.retry({
                  schedule: Schedule.spaced("250 millis"),
                  times: 12,
                  while: (c) => c instanceof NotSent
                }),
                Effect.mapError(
                  (cause) => new PartialAppend({ message: message(cause), stored: [], unsure: payloads.length, cause })
                )
              )
              return send.pipe(
                Effect.catchIf(maybeRan, () => resend),
                Effect.mapError((cause) =>
                  cause instanceof PartialAppend ? cause : new StorageError({ message: message(cause), cause })
                ),
                Effect.tap(() => replicas.replicated(keys(stream)[0]!, `an append to ${JSON.stringify(stream)}`)),
                Effect.map(([first, stamped]) =>
                  payloads.map((payload, i): StreamEntry => ({ seq: Number(first) + i, payload, at: Number(stamped) }))
                )
              )
            }),
      readAfter: (stream, afterSeq, limit = Number.MAX_SAFE_INTEGER) =>
        limit <= 0
          ? Effect.succeed([])
          : run("reading", stream, () =>
              redis.xrange(keys(stream)[1]!, `${Math.max(0, afterSeq + 1)}-0`, "+", "COUNT", Math.min(limit, 2 ** 31))
            ).pipe(
              Effect.map((entries) =>
                entries.map(
                  ([id, fields]): StreamEntry => ({
                    seq: seqOf(id),
                    payload: field(fields, "p"),
                    at: Number(field(fields, "a"))
                  })
                )
              )
            ),
      position: (stream) =>
        run("reading the position of", stream, () =>
          redis.eval(positionScript, 2, ...keys(stream), crypto.randomUUID())
        ).pipe(
          Effect.map((reply) => {
            const [epoch, last, oldest] = reply as [string, string, string | null]
            return { epoch, first: oldest ? seqOf(oldest) : 0, last: Number(last) }
          })
        ),
      remove: (stream) => run("removing", stream, () => redis.del(...keys(stream))).pipe(Effect.asVoid)
    }
    return store
  })

/** Needs a reachable Redis (the program stops at start with one line naming the URL otherwise). */
export const RedisStreamStore = (options: RedisStreamStoreOptions) =>
  Layer.scoped(StreamStore, makeRedisStreamStore(options))
