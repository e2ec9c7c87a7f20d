import { describe, expect } from "bun:test"
import { Duration, Effect } from "effect"
import Redis from "ioredis"
import { makeRedisBroker } from "../../../layers/Cluster/RedisBroker.ts"
import { makeRedisStreamStore } from "../../../layers/Storage/RedisStreamStore.ts"
import { makeRedisTokens } from "../../../layers/Tokens/RedisTokens.ts"
import { it } from "../../support/effect.ts"
import { cleanRedisAfterAll, redisAvailable, redisUrl, runPrefix } from "./backends.ts"

/** CRC16/XMODEM, as Redis Cluster hashes keys. */
const crc16 = (bytes: Uint8Array) => {
  let crc = 0
  for (const byte of bytes) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
}
/** CLUSTER KEYSLOT: the hash tag (between the first `{` and the next `}`, when not empty) or the whole key. */
export const keySlot = (key: string) => {
  const open = key.indexOf("{")
  const close = open < 0 ? -1 : key.indexOf("}", open + 1)
  const hashed = close > open + 1 ? key.slice(open + 1, close) : key
  return crc16(new TextEncoder().encode(hashed)) % 16384
}

interface Seen {
  readonly source: string
  readonly args: ReadonlyArray<string>
}
/** One unit Redis runs atomically: a command, a script (with what it ran), or a MULTI's commands. */
interface Operation {
  readonly what: string
  readonly declared: ReadonlyArray<string>
  readonly touched: Array<string>
}

const prefix = runPrefix("slots")
// MONITOR sees one server: with TEST_REDIS_URL naming a cluster, the layout check needs a single Redis.
const monitorable = redisAvailable && !redisUrl.startsWith("redis-cluster://")
if (redisAvailable && !monitorable) console.warn("skipping the MONITOR slot check: TEST_REDIS_URL is a cluster")
cleanRedisAfterAll(prefix)

describe("Redis keys on one slot per operation (Redis Cluster layout)", () => {
  it.effect("CRC16 key slots match Redis Cluster's reference values", () =>
    Effect.sync(() => {
      // Values from the Redis Cluster specification and `CLUSTER KEYSLOT` on a cluster node.
      expect(crc16(new TextEncoder().encode("123456789"))).toBe(0x31c3)
      expect(keySlot("foo")).toBe(12182)
      expect(keySlot("{user1000}.following")).toBe(keySlot("{user1000}.followers"))
      expect(keySlot("foo{}{bar}")).toBe(keySlot("foo{}{bar}"))
      expect(keySlot("foo{{bar}}zap")).toBe(keySlot("{bar"))
    })
  )

  it.skipIf(!monitorable).live(
    "every script declares each key it touches, and the keys of every script, MULTI and multi-key command share a slot",
    () =>
      Effect.gen(function* () {
        const monitor = yield* Effect.promise(() => new Redis(redisUrl).monitor())
        const seen: Array<Seen> = []
        const marker = `${prefix}end-of-test`
        // MONITOR lines arrive asynchronously: a marker command, sent last, tells when all have come.
        const markerSeen = Promise.withResolvers<void>()
        monitor.on("monitor", (_time: string, args: Array<string>, source: string) => {
          seen.push({ source, args })
          if (args[1] === marker) markerSeen.resolve()
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => monitor.disconnect()))

        const broker = yield* makeRedisBroker({ url: redisUrl, prefix, nodeId: "slot-a" })
        yield* broker.presence.heartbeat("slot-a", 5000)
        yield* broker.presence.heartbeat("slot-b", 5000)
        yield* broker.presence.put("room", "slot-a/1", "{}")
        yield* broker.presence.alive(["slot-a", "slot-b", "slot-c"])
        yield* broker.presence.list("room")
        yield* broker.presence.remove("room", ["slot-a/1", "slot-a/2"])
        yield* broker.claims.take("scope", "x", "slot-a/1", "replace")
        yield* broker.claims.take("scope", "y", "slot-b/1", "replace")
        expect((yield* broker.claims.take("scope", "x", "slot-b/2", "ifFree")).taken).toBe(false)
        expect((yield* broker.claims.take("scope", "z", "slot-a/3", { within: 2 })).taken).toBe(false)
        expect((yield* broker.claims.take("scope", "z", "slot-a/3", { within: 3 })).taken).toBe(true)
        yield* broker.claims.release("scope", "x", "slot-a/1")
        yield* broker.counters.add("hits", 2, 1000)
        yield* broker.counters.raise("block", 7, 1000)
        yield* broker.records.put("session", "slot-a", "v", 1000, "keep")
        yield* broker.records.close("session", "slot-a", 1000)

        const tokens = yield* makeRedisTokens({ url: redisUrl, prefix })
        const session = yield* tokens.issue("kind", "value", Duration.minutes(1), "idx")
        expect(yield* tokens.get("kind", session, Duration.minutes(2))).toEqual(expect.anything())
        const key = yield* tokens.issue("kind", "once", Duration.minutes(1))
        yield* tokens.take("kind", key)
        expect(yield* tokens.revokeIndexed("kind", "idx")).toBe(true)
        const other = yield* tokens.issue("kind", "other", Duration.minutes(1))
        yield* tokens.revoke("kind", other)
        yield* tokens.count("kind")

        const streams = yield* makeRedisStreamStore({ url: redisUrl, prefix })
        yield* streams.append("room", "line", { maxEntries: 1 })
        yield* streams.append("room", "line 2", { maxEntries: 1 })
        yield* streams.appendMany("room", ["line 3", "line 4"], { maxEntries: 1 }, "batch-1")
        yield* streams.appendMany("room", ["line 3", "line 4"], { maxEntries: 1 }, "batch-1")
        yield* streams.readAfter("room", 0)
        yield* streams.position("room")
        yield* streams.remove("room")

        const probe = new Redis(redisUrl)
        yield* Effect.promise(() => probe.get(marker))
        yield* Effect.promise(() => markerSeen.promise)
        // What the lookups below send must not be analysed too.
        const ran = seen.slice(
          0,
          seen.findIndex(({ args }) => args[1] === marker)
        )
        monitor.disconnect()

        const keysOf = async (args: ReadonlyArray<string>): Promise<Array<string>> => {
          try {
            return (await probe.call("COMMAND", "GETKEYS", ...args)) as Array<string>
          } catch {
            return [] // a command without keys
          }
        }
        // Group what Redis ran: a script's own commands follow its EVAL; a MULTI's commands sit before its EXEC.
        const operations: Array<Operation> = []
        const multis = new Map<string, Operation>()
        let script: Operation | undefined
        // The box's Redis is shared: only commands naming this run's prefix (and their scripts' commands) are looked up.
        const mentionsPrefix = (args: ReadonlyArray<string>) => args.some((arg) => arg.includes(prefix))
        for (const { source, args } of ran) {
          const name = args[0]!.toLowerCase()
          if (source === "lua") {
            if (script) script.touched.push(...(yield* Effect.promise(() => keysOf(args))))
            continue
          }
          const ourMulti = multis.has(source) || name === "multi" || name === "exec"
          if (!ourMulti && !mentionsPrefix(args)) {
            script = undefined
            continue
          }
          const keys = name === "multi" || name === "exec" ? [] : yield* Effect.promise(() => keysOf(args))
          script = undefined
          if (name === "multi") multis.set(source, { what: "MULTI", declared: [], touched: [] })
          else if (name === "exec") {
            const multi = multis.get(source)
            if (multi) operations.push(multi)
            multis.delete(source)
          } else if (multis.has(source)) multis.get(source)!.touched.push(...keys)
          else if (name === "eval" || name === "evalsha") {
            script = { what: `script ${args[1]!.trim().split("\n")[0]}`, declared: keys, touched: [] }
            operations.push(script)
          } else operations.push({ what: name, declared: keys, touched: keys })
        }
        probe.disconnect()

        const ours = operations.filter((op) => [...op.declared, ...op.touched].some((key) => key.startsWith(prefix)))
        const scripts = ours.filter((op) => op.what.startsWith("script"))
        // Claims (take, release), counters (add, raise), tokens (take, get, revokeIndexed) and streams ran scripts.
        expect(scripts.length).toBeGreaterThanOrEqual(10)
        expect(ours.filter((op) => op.what === "MULTI").length).toBeGreaterThanOrEqual(4)
        for (const op of ours) {
          const undeclared = op.touched.filter((key) => !op.declared.includes(key))
          if (op.what.startsWith("script")) expect({ op: op.what, undeclared }).toEqual({ op: op.what, undeclared: [] })
          const slots = new Set([...op.declared, ...op.touched].map(keySlot))
          expect({ op: op.what, keys: op.touched, slots: slots.size }).toEqual({
            op: op.what,
            keys: op.touched,
            slots: Math.min(1, slots.size)
          })
        }
      })
  )
})
