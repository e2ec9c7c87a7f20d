import { describe, expect } from "bun:test"
import { Effect, Layer } from "effect"
import { ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { MemoryBrokerHub } from "../../layers/Cluster/MemoryBroker.ts"
import { BrokerRoomsLive } from "../../layers/Rooms/BrokerRooms.ts"
import { startAuthenticator } from "../../src/droneengage/Authenticator.ts"
import { startRelay } from "../../src/droneengage/Relay.ts"
import { UnitRoomsLive } from "../../src/droneengage/UnitRooms.ts"
import { it } from "../support/effect.ts"
import {
  authenticatorConfig,
  connect,
  connectQuery,
  expectNothing,
  login,
  pingPong,
  relayConfig,
  relayOnline,
  seedAccounts,
  TestServices
} from "./harness.ts"

/** A relay node of a cluster: its own unit rooms over broker-backed Rooms on `hub`; tokens are the shared store of TestServices. */
const relayNode = (hub: MemoryBrokerHub, nodeId: string, authenticatorS2sPort: number) =>
  startRelay(relayConfig(authenticatorS2sPort, { serverId: nodeId })).pipe(
    Effect.provide(UnitRoomsLive("relay").pipe(Layer.provide(BrokerRoomsLive()), Layer.provide(Layer.succeed(ClusterBroker, hub.node(nodeId)))))
  )

describe("DroneEngage relays as one cluster (memory broker, TestClock)", () => {
  it.effect("a key issued by one relay is redeemed on the other; a group message from an agent on relay B reaches the GCS on relay A", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const hub = new MemoryBrokerHub()
      const authenticator = yield* startAuthenticator(authenticatorConfig())
      const relayA = yield* relayNode(hub, "relay-a", authenticator.s2s.port)
      const relayB = yield* relayNode(hub, "relay-b", authenticator.s2s.port)
      yield* relayOnline(authenticator, "relay-a")
      yield* relayOnline(authenticator, "relay-b")
      const seat = (account: string, actor: "g" | "d", name: string, port: number) =>
        Effect.gen(function* () {
          const { body } = yield* login({ authUrl: authenticator.http.url } as never, account, actor)
          expect(body.e).toBe(0)
          // Whichever relay issued the key, the unit connects to the one this test chose.
          const unit = yield* connect(port, `/?${connectQuery(body, name)}`)
          expect((yield* unit.nextJson()).mt).toBe(9007)
          yield* pingPong(unit)
          return unit
        })
      const gcs = yield* seat("alpha", "g", "g1", relayA.server.port)
      const agent = yield* seat("alpha", "d", "d1", relayB.server.port)
      const otherAccount = yield* seat("beta", "g", "g1", relayA.server.port)
      yield* agent.send(JSON.stringify({ ty: "g", mt: 1042, ms: { alt: 120 } }))
      const heard = yield* gcs.nextJson()
      expect(heard).toMatchObject({ ty: "g", mt: 1042, sd: "d1", ms: { alt: 120 } })
      // Unit-addressed across nodes too, and the other account hears nothing.
      yield* gcs.send(JSON.stringify({ ty: "i", tg: "d1", mt: 1043, ms: {} }))
      expect(yield* agent.nextJson()).toMatchObject({ mt: 1043, sd: "g1" })
      yield* expectNothing(otherAccount)
      yield* expectNothing(gcs)
    }).pipe(Effect.provide(TestServices)))
})
