import { describe, expect } from "bun:test"
import { Effect, Layer, Queue } from "effect"
import { InProcessFederationLive } from "../../layers/Federation/InProcessFederation.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { connect, type Incoming, NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import { serveNeighbourhood } from "../../src/neighbourhood/Server.ts"
import { it } from "../support/effect.ts"
import { clientPems, configFor, serverKeys } from "./support.ts"

const RealSockets = Layer.mergeAll(BunTransportLive, InProcessFederationLive, InProcessRoomsLive).pipe(
  Layer.provideMerge(Metrics.Default)
)

/** Two loopback ports nobody listens on right now. */
const freePorts = () => {
  const probes = [
    Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }),
    Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
  ]
  const ports = probes.map((p) => p.port)
  for (const p of probes) p.stop(true)
  return ports as [number, number]
}

const startReal = (i: number, ports: [number, number]) => {
  const base = configFor(i, 2)
  const config = {
    ...base,
    port: ports[i]!,
    hostname: "127.0.0.1",
    redialMax: base.redialMax,
    neighbours: base.neighbours.map((n) => ({ ...n, url: `ws://127.0.0.1:${ports[1 - i]}/` }))
  }
  const neighbours = config.neighbours.map((n) => ({
    address: n.address,
    url: n.url,
    publicKeyPem: serverKeys[1 - i]!.identity.publicPem
  }))
  return serveNeighbourhood({ config, identity: serverKeys[i]!.identity, neighbours, name: `smoke${i}` })
}

const realClient = (port: number, pem: string) =>
  Effect.gen(function* () {
    const client = yield* Effect.promise(() => NeighbourhoodClient.fromPrivatePem(pem, Date.now()))
    const inbox = yield* Queue.unbounded<Incoming>()
    const socket = yield* Effect.acquireRelease(
      Effect.promise(() =>
        connect(`ws://127.0.0.1:${port}/`, client, (incoming) => Queue.unsafeOffer(inbox, incoming))
      ),
      (s) => Effect.sync(() => s.close())
    )
    /** Asks for the client list until every listed server shows the given number of clients. */
    const waitForList = (counts: Record<string, number>) =>
      Effect.gen(function* () {
        for (let attempt = 0; attempt < 2000; attempt++) {
          socket.send(client.clientListRequest())
          const incoming = yield* Queue.take(inbox)
          if (incoming.kind !== "client_list") continue
          const got = incoming.servers
            .map((s) => `${s.address}=${s.clients.length}`)
            .sort()
            .join(",")
          if (
            got ===
            Object.entries(counts)
              .map(([address, n]) => `${address}=${n}`)
              .sort()
              .join(",")
          )
            return
        }
        return yield* Effect.dieMessage("client lists did not converge over real sockets")
      })
    return { client, inbox, socket, waitForList }
  })

describe("Neighbourhood over real WebSockets", () => {
  it.live(
    "two servers link up, share client lists, and carry private and public chats",
    () =>
      Effect.gen(function* () {
        const ports = freePorts()
        yield* startReal(0, ports)
        yield* startReal(1, ports)
        const alice = yield* realClient(ports[0], clientPems[0]!)
        const bob = yield* realClient(ports[1], clientPems[1]!)
        yield* alice.waitForList({ server0: 1, server1: 1 })
        yield* bob.waitForList({ server0: 1, server1: 1 })

        alice.socket.send(
          yield* Effect.promise(() =>
            alice.client.chat([{ pem: bob.client.publicPem, server: "server1" }], "over the wire")
          )
        )
        expect(yield* Queue.take(bob.inbox)).toMatchObject({
          kind: "chat",
          message: "over the wire",
          verified: true,
          sender: alice.client.fingerprint
        })
        bob.socket.send(yield* Effect.promise(() => bob.client.publicChat("hi everyone")))
        expect(yield* Queue.take(alice.inbox)).toMatchObject({
          kind: "public_chat",
          message: "hi everyone",
          verified: true
        })
      }).pipe(Effect.provide(RealSockets)),
    20_000
  )
})
