import { describe, expect } from "bun:test"
import { Duration, Effect, Layer, Option } from "effect"
import { ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { makeBrokerClaims } from "../../../layers/Cluster/Claims.ts"
import { makeNatsBroker } from "../../../layers/Cluster/NatsBroker.ts"
import { makeNatsStreamStore } from "../../../layers/Storage/NatsStreamStore.ts"
import { makeNatsTokens } from "../../../layers/Tokens/NatsTokens.ts"
import { MemoryNetwork } from "../../../layers/Transport/MemoryTransport.ts"
import { it } from "../../support/effect.ts"
import { natsServerAvailable, startNatsServer } from "../../support/natsServer.ts"
import { eventually, nextReconnect, roomNode } from "./outageNodes.ts"

describe("NATS server restarted without its JetStream storage", () => {
  it.skipIf(!natsServerAvailable).live(
    "the nodes make their buckets and streams again: rooms cross, presence converges, claims are re-taken, new tokens and history work",
    () =>
      Effect.gen(function* () {
        // Acquired first, so stopped last: the nodes close over a live server.
        const server = yield* Effect.acquireRelease(Effect.promise(startNatsServer), (server) =>
          Effect.promise(server.stop)
        )
        const network = yield* MemoryNetwork
        const prefix = "sbtest.restart"
        const brokerOf = (nodeId: string) =>
          Layer.scoped(ClusterBroker, makeNatsBroker({ url: server.url, prefix, nodeId })).pipe(Layer.orDie)
        const a = yield* roomNode(network, brokerOf("a"))
        const b = yield* roomNode(network, brokerOf("b"))
        const claimsOn = (broker: ClusterBroker["Type"]) =>
          makeBrokerClaims({ heartbeat: "200 millis" }).pipe(Effect.provideService(ClusterBroker, broker))
        const claimsA = yield* claimsOn(a.broker)
        const claimsB = yield* claimsOn(b.broker)
        const tokensA = yield* makeNatsTokens({ url: server.url, prefix })
        const tokensB = yield* makeNatsTokens({ url: server.url, prefix })
        const historyA = yield* makeNatsStreamStore({ url: server.url, prefix })
        const historyB = yield* makeNatsStreamStore({ url: server.url, prefix })

        const a1 = yield* a.connect("a1")
        const b1 = yield* b.connect("b1")
        yield* a1.send("before")
        expect(yield* b1.next()).toBe("before")
        const alice = yield* claimsA.claimIfFree("nick", "alice", Effect.void)
        expect(Option.isSome(alice)).toBe(true)
        const oldKey = yield* tokensA.issue("relay/login-key", "unit-0", Duration.minutes(1))
        const oldEntry = yield* historyA.append("channel", "old", {})

        const backA = yield* nextReconnect(a.broker)
        const backB = yield* nextReconnect(b.broker)
        const connections = yield* Effect.promise(server.connections)
        yield* Effect.promise(server.restartWithoutStorage)
        yield* backA
        yield* backB
        // Tokens and history have connections of their own: every one is back before the test goes on.
        yield* eventually(
          "every connection back",
          Effect.map(Effect.promise(server.connections), (now) => (now === connections ? now : undefined))
        )

        // Rooms: core subjects need no storage; the subscriptions were replayed on reconnect.
        yield* a1.send("after")
        expect(yield* b1.next()).toBe("after")
        yield* b1.send("back")
        expect(yield* a1.next()).toBe("back")
        // Presence: each node's next heartbeat finds its liveness key gone and writes its members again.
        const listed = yield* eventually(
          "both members listed again",
          Effect.map(b.broker.presence.list("r"), (entries) => (entries.length === 2 ? entries : undefined))
        )
        expect(listed.length).toBe(2)
        // Claims: node A's heartbeat after the reconnect re-takes "alice"; node B sees it held, and can take a new name.
        const holder = Option.getOrThrow(alice).holder
        yield* eventually(
          "alice re-taken by node A",
          Effect.map(b.broker.claims.get("nick", "alice"), (held) => (held === holder ? held : undefined))
        )
        expect(Option.isNone(yield* claimsB.claimIfFree("nick", "alice", Effect.void))).toBe(true)
        expect(Option.isSome(yield* claimsB.claimIfFree("nick", "bob", Effect.void))).toBe(true)
        // Tokens: one issued before is gone with the storage; one issued now is redeemed on the other node.
        const key = yield* tokensA.issue("relay/login-key", "unit-1", Duration.minutes(1))
        expect(yield* tokensB.take("relay/login-key", key)).toEqual(Option.some("unit-1"))
        expect(yield* tokensB.take("relay/login-key", oldKey)).toEqual(Option.none())
        // History: the stream is made again, empty, in a new epoch; appends number from 1 again on every node.
        const entry = yield* historyA.append("channel", "new", {})
        expect(entry.seq).toBe(oldEntry.seq)
        const position = yield* historyB.position("channel")
        expect(position.last).toBe(entry.seq)
        expect((yield* historyB.readAfter("channel", 0)).map((read) => read.payload)).toEqual(["new"])
      }).pipe(Effect.provide(MemoryNetwork.Default)),
    60_000
  )
})
