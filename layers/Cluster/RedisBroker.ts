import { Effect } from "effect"
import {
  type Broker,
  BrokerUnavailable,
  type ClaimMode,
  type ClaimStore,
  type CounterStore,
  closedRecordText,
  heldRecordText,
  parseHeldRecord,
  type PresenceStore,
  type RecordStore
} from "./Broker.ts"
import { defaultRedisSettings, openRedis, type RedisSettings, redisConnection } from "./RedisConnection.ts"
import { holderNode, redisKeys } from "./RedisKeys.ts"
import { followsTopology, makeReplicaWait, replicasToWait } from "./RedisReplication.ts"
import { makeRedisSubscriptions } from "./RedisSubscriptions.ts"

/** Kept here too: the token and stream stores open their connections through it. */
export { redisConnection }

export interface RedisBrokerOptions {
  readonly url: string
  /** Separates clusters (and test runs) sharing one Redis: every channel and key starts with it. */
  readonly prefix: string
  readonly nodeId: string
  /** Command timeout and replica WAITs (`cluster.redis.*`); the defaults when absent. */
  readonly redis?: RedisSettings
}

/**
 * Claims: one hash per scope (field = name, value = holder); "ifFree" and "within" look at holders'
 * liveness keys. Every key is declared: KEYS[1] the scope's hash, KEYS[2..] the liveness keys of the
 * holders the caller read just before. A holder whose key was not declared (another node wrote in
 * between) makes the script change nothing and answer {2}: the caller reads again and retries.
 * ARGV: name, holder, mode, liveness key prefix (to match a holder to its declared key), limit.
 */
const takeClaimScript = `
local declared = {}
for i = 2, #KEYS do declared[KEYS[i]] = true end
local function alive(holder)
  local slash = string.find(holder, '/', 1, true)
  if not slash then return false end
  local key = ARGV[4] .. string.sub(holder, 1, slash - 1)
  if not declared[key] then return nil end
  return redis.call('EXISTS', key) == 1
end
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if previous and ARGV[3] == 'ifFree' then
  local live = alive(previous)
  if live == nil then return {2, ''} end
  if live then return {0, previous} end
end
if ARGV[3] == 'within' then
  local fields = redis.call('HGETALL', KEYS[1])
  local others = 0
  for i = 1, #fields, 2 do
    if fields[i] ~= ARGV[1] then
      local live = alive(fields[i + 1])
      if live == nil then return {2, ''} end
      if live then others = others + 1 end
    end
  end
  if others >= tonumber(ARGV[5]) then return {0, previous or ''} end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {1, previous or ''}
`
const releaseClaimScript = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`
/** A window starts at its first add: the expiry is set only on a key that has none. */
const addCounterScript = `
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '0' and redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return total
`

/** A monotonic maximum: written only when the value is greater; the one before is returned. */
const raiseScript = `
local previous = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > previous then
  if ARGV[2] == '0' then redis.call('SET', KEYS[1], ARGV[1]) else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
end
return previous
`

/**
 * A held record (`<holder>\n<value>`, closed: a lone newline) written only when the rule of
 * RecordStore allows it. KEYS[1] the record; ARGV: holder, the text to write, TTL, mode (take, keep, close).
 */
const writeRecordScript = `
local current = redis.call('GET', KEYS[1])
if current == '\\n' then
  if ARGV[4] ~= 'close' then return 0 end
elseif current and ARGV[4] ~= 'take' then
  local newline = string.find(current, '\\n', 1, true)
  local holder = newline and string.sub(current, 1, newline - 1) or ''
  if holder ~= '' and holder ~= ARGV[1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`

const toBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/**
 * The cluster broker on Redis: sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7+) when the server has
 * it, classic PUBLISH/SUBSCRIBE otherwise; one connection publishes and keeps presence, one
 * subscribes. Presence: a hash per room (field = member key) and a key per node with a PX expiry
 * that the heartbeat refreshes; entries of a node whose key has expired are ignored and pruned.
 */
export const makeRedisBroker = (options: RedisBrokerOptions) =>
  Effect.gen(function* () {
    const settings = options.redis ?? defaultRedisSettings
    const commands = yield* redisConnection(options.url, `switchboard-${options.nodeId}`, settings)
    const subscriberName = `switchboard-${options.nodeId}-sub`
    const subscriber = yield* redisConnection(options.url, subscriberName, settings, "subscriber")
    // Claims and releases wait for the replicas (a claim lost in a failover lets two nodes hold one name). A WAIT
    // holds its connection until they answer, so claims then get one of their own: publishes never queue behind it.
    // "auto" on a cluster may start waiting at any slot-map refresh (a replica added): claims have theirs from start.
    const waits = followsTopology(commands, settings) || (yield* replicasToWait(commands, settings)) > 0
    const claimsRedis = waits
      ? yield* redisConnection(options.url, `switchboard-${options.nodeId}-claims`, settings)
      : commands
    const replicas = yield* makeReplicaWait(claimsRedis, settings, "cluster claims")
    const supported = yield* Effect.promise(
      () => commands.call("COMMAND", "INFO", "SPUBLISH") as Promise<Array<unknown>>
    )
    const sharded = Array.isArray(supported) && supported[0] != null
    const channelOf = (channel: string) => `${options.prefix}${channel}`
    const keys = redisKeys(options.prefix)
    const presenceKey = keys.presence
    const nodeKey = keys.node
    const unavailable = (cause: unknown) => new BrokerUnavailable("redis", cause)
    const call = <A>(run: () => Promise<A>) => Effect.tryPromise({ try: run, catch: unavailable })

    const subscriptions = yield* makeRedisSubscriptions(
      commands,
      subscriber,
      sharded,
      () => openRedis(options.url, subscriberName, settings, "subscriber"),
      settings.commandTimeoutMs
    )

    const presence: PresenceStore = {
      put: (room, key, entry) => call(() => commands.hset(presenceKey(room), key, entry)).pipe(Effect.asVoid),
      remove: (room, keys) =>
        keys.length === 0 ? Effect.void : call(() => commands.hdel(presenceKey(room), ...keys)).pipe(Effect.asVoid),
      list: (room) =>
        call(() => commands.hgetall(presenceKey(room))).pipe(Effect.map((fields) => Object.entries(fields))),
      heartbeat: (nodeId, ttlMillis) =>
        call(() => commands.call("SET", nodeKey(nodeId), "1", "PX", String(ttlMillis), "GET")).pipe(
          Effect.map((previous) => previous !== null)
        ),
      alive: (nodeIds) =>
        nodeIds.length === 0
          ? Effect.succeed(new Set<string>())
          : call(() => commands.mget(...nodeIds.map(nodeKey))).pipe(
              Effect.map((values) => new Set(nodeIds.filter((_, i) => values[i] !== null)))
            )
    }

    const claimsKey = keys.claims
    /** The liveness keys of the holders a take must look at (read now; the script refuses if they changed). */
    const holderKeys = (scope: string, name: string, mode: ClaimMode): Promise<Array<string>> => {
      if (mode === "replace") return Promise.resolve([])
      const holders =
        mode === "ifFree"
          ? claimsRedis.hget(claimsKey(scope), name).then((holder) => (holder === null ? [] : [holder]))
          : claimsRedis.hgetall(claimsKey(scope)).then(Object.values)
      return holders.then((list) => [
        ...new Set(list.flatMap((holder) => (holderNode(holder) === undefined ? [] : [nodeKey(holderNode(holder)!)])))
      ])
    }
    const takeOnce = async (scope: string, name: string, holder: string, mode: ClaimMode) => {
      const liveness = await holderKeys(scope, name, mode)
      return (await claimsRedis.eval(
        takeClaimScript,
        1 + liveness.length,
        claimsKey(scope),
        ...liveness,
        name,
        holder,
        typeof mode === "object" ? "within" : mode,
        nodeKey(""),
        typeof mode === "object" ? String(mode.within) : "0"
      )) as [number, string]
    }
    const claims: ClaimStore = {
      take: (scope, name, holder, mode) =>
        call(async () => {
          // Retried only when another node changed the scope's holders between the read and the script.
          for (let attempt = 1; ; attempt++) {
            const [taken, previous] = await takeOnce(scope, name, holder, mode)
            if (taken !== 2 || attempt === 20) return { taken: taken === 1, previous: previous || undefined }
          }
        }).pipe(
          Effect.tap(({ taken }) =>
            taken ? replicas.replicated(claimsKey(scope), `the claim of ${name}`) : Effect.void
          )
        ),
      release: (scope, name, holder) =>
        call(() => claimsRedis.eval(releaseClaimScript, 1, claimsKey(scope), name, holder)).pipe(
          Effect.zipRight(replicas.replicated(claimsKey(scope), `the release of ${name}`))
        ),
      get: (scope, name) =>
        call(() => claimsRedis.hget(claimsKey(scope), name)).pipe(Effect.map((holder) => holder ?? undefined)),
      list: (scope) =>
        call(() => claimsRedis.hgetall(claimsKey(scope))).pipe(Effect.map((fields) => Object.entries(fields)))
    }
    const recordKey = keys.record
    const writeRecord = (key: string, holder: string, text: string, ttlMillis: number, mode: string) =>
      call(
        () =>
          commands.eval(writeRecordScript, 1, recordKey(key), holder, text, String(ttlMillis), mode) as Promise<number>
      ).pipe(Effect.map((written) => written === 1))
    const records: RecordStore = {
      get: (key) =>
        call(() => commands.get(recordKey(key))).pipe(
          Effect.map((text) => {
            const record = parseHeldRecord(text ?? undefined)
            return record === "closed" ? undefined : record
          })
        ),
      put: (key, holder, value, ttlMillis, mode) =>
        writeRecord(key, holder, heldRecordText(holder, value), ttlMillis, mode),
      close: (key, holder, ttlMillis) => writeRecord(key, holder, closedRecordText, ttlMillis, "close")
    }
    const counters: CounterStore = {
      add: (key, by, windowMillis) =>
        call(
          () =>
            commands.eval(
              addCounterScript,
              1,
              keys.count(key),
              String(by),
              String(windowMillis ?? 0)
            ) as Promise<number>
        ),
      raise: (key, value, lastingMillis) =>
        call(
          () =>
            commands.eval(
              raiseScript,
              1,
              keys.max(key),
              String(value),
              String(Math.max(0, Math.ceil(lastingMillis ?? 0)))
            ) as Promise<number>
        )
    }

    const broker: Broker = {
      kind: "redis",
      nodeId: options.nodeId,
      publish: (channel, bytes, onLost) => {
        if (commands.status !== "ready") return false
        const sending = sharded
          ? commands.spublish(channelOf(channel), toBuffer(bytes))
          : commands.publish(channelOf(channel), toBuffer(bytes))
        sending.catch(() => onLost?.())
        return true
      },
      subscribe: (channel, deliver) => subscriptions.subscribe(channelOf(channel), deliver),
      unsubscribe: (channel) => subscriptions.unsubscribe(channelOf(channel)),
      isUp: () => commands.status === "ready" && subscriptions.isUp(),
      onReconnect: subscriptions.onReconnect,
      onDisconnect: subscriptions.onDisconnect,
      presence,
      claims,
      counters,
      records,
      sever: Effect.sync(() => {
        commands.disconnect()
        claimsRedis.disconnect()
        subscriptions.disconnect()
      })
    }
    return broker
  })
