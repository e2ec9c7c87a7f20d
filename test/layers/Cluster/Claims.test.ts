import { describe, expect } from "bun:test"
import { Deferred, Effect, Layer, Option } from "effect"
import { ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { BrokerClaimsLive, Claims, makeLocalClaims } from "../../../layers/Cluster/Claims.ts"
import { it } from "../../support/effect.ts"
import {
  buildNode,
  type ClusterBackend,
  cleanRedisAfterAll,
  memoryBackend,
  natsBackend,
  natsPrefix,
  nodeTtlMillis,
  redisBackend,
  runPrefix
} from "./backends.ts"

const prefix = runPrefix("claims")
cleanRedisAfterAll(prefix)

describe("local claims (one process)", () => {
  it.effect("claimWithin refuses past the limit, never counting the name itself", () =>
    Effect.gen(function* () {
      const claims = makeLocalClaims()
      expect(Option.isSome(yield* claims.claimWithin("units", "d1", 1, Effect.void))).toBe(true)
      expect(Option.isSome(yield* claims.claimWithin("units", "d1", 1, Effect.void))).toBe(true)
      expect(Option.isNone(yield* claims.claimWithin("units", "d2", 1, Effect.void))).toBe(true)
    })
  )

  it.effect("a claim replaces the holder, claimIfFree refuses while held, release frees", () =>
    Effect.gen(function* () {
      const claims = makeLocalClaims()
      const replaced = yield* Deferred.make<void>()
      const first = yield* claims.claim("units", "d1", Deferred.succeed(replaced, undefined))
      yield* claims.claim("units", "d1", Effect.void)
      expect(yield* Deferred.isDone(replaced)).toBe(true)
      expect(Option.isNone(yield* claims.claimIfFree("units", "d1", Effect.void))).toBe(true)
      // Releasing a replaced claim leaves the later one in place.
      yield* claims.release(first)
      expect(yield* claims.holders("units")).toEqual(["d1"])
    })
  )
})

const scenarios = (backend: ClusterBackend) => {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  const cluster = Effect.gen(function* () {
    const brokers = yield* backend.cluster()
    const node = (nodeId: string) =>
      Effect.map(
        buildNode(BrokerClaimsLive({ nodeTtl: nodeTtlMillis }).pipe(Layer.provideMerge(brokers.broker(nodeId)))),
        (built) => ({ claims: built.get(Claims), broker: built.get(ClusterBroker), scope: built.scope })
      )
    return { node, expire: (nodeId: string) => brokers.expire(`${nodeId}.claims`) }
  })

  describe(`Claims on ${backend.name}`, () => {
    test("a later claim on another node replaces the holder there; the count is cluster-wide", () =>
      Effect.gen(function* () {
        const { node } = yield* cluster
        const [a, b] = yield* Effect.all([node("node-a"), node("node-b")])
        const replacedOnA = yield* Deferred.make<void>()
        yield* a.claims.claim("acct-1", "d1", Deferred.succeed(replacedOnA, undefined))
        yield* a.claims.claim("acct-1", "g1", Effect.void)
        yield* b.claims.claim("acct-1", "d2", Effect.void)
        expect([...(yield* b.claims.holders("acct-1"))].sort()).toEqual(["d1", "d2", "g1"])
        yield* b.claims.claim("acct-1", "d1", Effect.void)
        yield* Deferred.await(replacedOnA)
        expect([...(yield* a.claims.holders("acct-1"))].sort()).toEqual(["d1", "d2", "g1"])
        // Another scope is another namespace.
        expect(yield* a.claims.holders("acct-2")).toEqual([])
      }))

    test("claimIfFree refuses a name a live node holds, anywhere, until it is released", () =>
      Effect.gen(function* () {
        const { node } = yield* cluster
        const [a, b] = yield* Effect.all([node("node-a"), node("node-b")])
        const held = yield* a.claims.claimIfFree("nicks", "alice", Effect.void)
        expect(Option.isSome(held)).toBe(true)
        expect(Option.isNone(yield* b.claims.claimIfFree("nicks", "alice", Effect.void))).toBe(true)
        expect(Option.isNone(yield* a.claims.claimIfFree("nicks", "alice", Effect.void))).toBe(true)
        yield* a.claims.release(Option.getOrThrow(held))
        expect(Option.isSome(yield* b.claims.claimIfFree("nicks", "alice", Effect.void))).toBe(true)
      }))

    test("claimWithin counts and takes in one step: of concurrent claims on two nodes, the limit's number win", () =>
      Effect.gen(function* () {
        const { node } = yield* cluster
        const [a, b] = yield* Effect.all([node("node-a"), node("node-b")])
        for (let round = 0; round < 5; round++) {
          const scope = `limited-${round}`
          const results = yield* Effect.all(
            ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"].map((name, i) =>
              (i % 2 === 0 ? a : b).claims.claimWithin(scope, name, 3, Effect.void)
            ),
            { concurrency: "unbounded" }
          )
          expect(results.filter(Option.isSome)).toHaveLength(3)
          expect(yield* a.claims.holders(scope)).toHaveLength(3)
          // A name already held is replaced, never counted; a release frees a place.
          const won = results.flatMap((result) => (Option.isSome(result) ? [result.value] : []))
          expect(Option.isSome(yield* b.claims.claimWithin(scope, won[0]!.name, 3, Effect.void))).toBe(true)
          expect(Option.isNone(yield* b.claims.claimWithin(scope, "u9", 3, Effect.void))).toBe(true)
          yield* (won[1]!.holder.startsWith("node-a") ? a : b).claims.release(won[1]!)
          expect(Option.isSome(yield* a.claims.claimWithin(scope, "u9", 3, Effect.void))).toBe(true)
        }
      }))

    test("the claims of a crashed node are free once its heartbeat has expired", () =>
      Effect.gen(function* () {
        const { node, expire } = yield* cluster
        const [a, b] = yield* Effect.all([node("node-a"), node("node-b")])
        expect(Option.isSome(yield* a.claims.claimIfFree("nicks", "bob", Effect.void))).toBe(true)
        yield* a.broker.sever
        expect(Option.isNone(yield* b.claims.claimIfFree("nicks", "bob", Effect.void))).toBe(true)
        yield* expire("node-a")
        expect(yield* b.claims.holders("nicks")).toEqual([])
        expect(Option.isSome(yield* b.claims.claimIfFree("nicks", "bob", Effect.void))).toBe(true)
      }))
  })
}

scenarios(memoryBackend)
scenarios(redisBackend(prefix))
scenarios(redisBackend(prefix, "cluster"))
scenarios(natsBackend(natsPrefix("claims")))
