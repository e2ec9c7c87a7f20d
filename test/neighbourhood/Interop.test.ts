/**
 * Regressions from the interop run with xvk-64/secure-programming-2024 (docs/neighbourhood.md,
 * "Interop"), replayed with frames of the shapes recorded there: a peer that dials us says
 * server_hello (its first counter is 0) and uses the connection only once our server_hello comes
 * back on it; its clients start counting at 0.
 */
import { describe, expect, test } from "bun:test"
import { Effect, TestClock } from "effect"
import { MemoryNetwork } from "../../layers/Transport/MemoryTransport.ts"
import { NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import { type Channel, Mesh } from "../../src/neighbourhood/Mesh.ts"
import { OrderedWork } from "../../src/neighbourhood/Ordered.ts"
import { importPublicPem, signData, verifyData } from "../../src/neighbourhood/Crypto.ts"
import { encodeClientUpdate, encodeSignedData, serverHelloContent } from "../../src/neighbourhood/Wire.ts"
import { it } from "../support/effect.ts"
import {
  addressOf,
  clientPems,
  connectClient,
  listing,
  MeshTestLayer,
  portOf,
  serverKeys,
  startServer
} from "./support.ts"

/** server1 as that implementation: dials server0 and sends its server_hello with `counter`. */
const dialAsServer1 = (counter: number) =>
  Effect.gen(function* () {
    const network = yield* MemoryNetwork
    const socket = yield* network.connect(portOf(0), "/")
    const data = serverHelloContent(addressOf(1))
    const signature = yield* Effect.promise(() => signData(serverKeys[1]!.identity.signKey, data, counter))
    yield* socket.send(encodeSignedData(data, counter, signature))
    const next = Effect.map(socket.next(), (frame) => JSON.parse(String(frame)))
    return { socket, next }
  })

describe("Neighbourhood interop (v1.2 peers that are not us)", () => {
  it.effect("a peer that dials us gets our signed server_hello back on that connection, then uses it", () =>
    Effect.gen(function* () {
      yield* startServer(0, 2)
      const alice = yield* connectClient(portOf(0), clientPems[0]!)
      yield* alice.clientList
      const peer = yield* dialAsServer1(0)

      const hello = yield* peer.next
      expect(hello).toMatchObject({ type: "signed_data", data: serverHelloContent(addressOf(0)) })
      const valid = yield* Effect.promise(async () => {
        const key = await importPublicPem(serverKeys[0]!.identity.publicPem)
        return typeof key !== "string" && verifyData(key.verifyKey, hello.data, hello.counter, hello.signature)
      })
      expect(valid).toBe(true)
      expect(yield* peer.next).toEqual({ type: "client_update_request" })
      expect(yield* peer.next).toEqual({ type: "client_update", clients: [alice.client.publicPem] })

      // What it does once it has our server_hello: its own again (counter 1), a request, its client list.
      const carol = yield* Effect.promise(() => NeighbourhoodClient.fromPrivatePem(clientPems[2]!))
      const data = serverHelloContent(addressOf(1))
      const again = yield* Effect.promise(() => signData(serverKeys[1]!.identity.signKey, data, 1))
      yield* peer.socket.send(encodeSignedData(data, 1, again))
      yield* peer.socket.send('{"type":"client_update_request"}')
      yield* peer.socket.send(encodeClientUpdate([carol.publicPem]))
      expect(yield* peer.next).toEqual({ type: "client_update", clients: [alice.client.publicPem] })

      // Our client's chat to its client goes over the connection it dialled (the only one here).
      const chat = yield* Effect.promise(() =>
        alice.client.chat([{ pem: carol.publicPem, server: addressOf(1) }], "over your connection")
      )
      yield* alice.send(chat)
      expect((yield* peer.next).signature).toBe(JSON.parse(chat).signature)
      yield* alice.expectNothingElse
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("a client whose counters start at 0 (hello 0, then 1, 2, ...) is served", () =>
    Effect.gen(function* () {
      yield* startServer(0, 2)
      const bob = yield* connectClient(portOf(0), clientPems[1]!)
      yield* bob.clientList
      const fromZero = yield* Effect.promise(() => NeighbourhoodClient.fromPrivatePem(clientPems[3]!, -1))
      const dave = yield* connectClient(portOf(0), fromZero)
      expect(fromZero.lastCounter).toBe(0)
      yield* dave.send(fromZero.publicChat("counted from zero"))
      expect(yield* bob.next).toMatchObject({ kind: "public_chat", message: "counted from zero" })
      yield* dave.expectNothingElse
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("with compat.pushClientList, clients that never ask get the client list whenever one changes", () =>
    Effect.gen(function* () {
      yield* startServer(0, 2, { compat: { pushClientList: true } })
      const alice = yield* connectClient(portOf(0), clientPems[0]!)
      const pushed = Effect.gen(function* () {
        yield* TestClock.adjust("1 second")
        const incoming = yield* alice.next
        return incoming.kind === "client_list" ? listing(incoming) : incoming
      })
      expect(yield* pushed).toEqual({ [addressOf(0)]: [alice.client.fingerprint] })
      const bob = yield* connectClient(portOf(0), clientPems[1]!)
      const both = [alice.client.fingerprint, bob.client.fingerprint].sort()
      expect(yield* pushed).toEqual({ [addressOf(0)]: both })
      const peer = yield* dialAsServer1(0)
      for (let i = 0; i < 3; i++) yield* peer.next
      const carol = yield* Effect.promise(() => NeighbourhoodClient.fromPrivatePem(clientPems[2]!))
      yield* peer.socket.send(encodeClientUpdate([carol.publicPem]))
      expect(yield* pushed).toEqual({ [addressOf(0)]: both, [addressOf(1)]: [carol.fingerprint] })
    }).pipe(Effect.provide(MeshTestLayer))
  )

  test("our client_update goes on both connections to a neighbour; chats on the chosen one only", async () => {
    // That implementation lists a neighbour's clients per connection and shows the last one opened.
    const key = await importPublicPem(serverKeys[1]!.identity.publicPem)
    if (typeof key === "string") throw new Error(key)
    const mesh = new Mesh(addressOf(0), [], [{ address: addressOf(1), url: "ws://server1", key }], 100)
    const sent: Array<string> = []
    const channel = (direction: Channel["direction"]): Channel => ({
      send: (frame) => void sent.push(`${direction}:${frame}`),
      close: () => undefined,
      direction,
      work: new OrderedWork(() => undefined)
    })
    const n = mesh.neighbours.get(addressOf(1))!
    mesh.channelUp(n, channel("outbound"))
    mesh.channelUp(n, channel("inbound"))
    mesh.broadcastOnEveryChannel(mesh.clientUpdateFrame())
    expect(sent).toEqual([
      'outbound:{"type":"client_update","clients":[]}',
      'inbound:{"type":"client_update","clients":[]}'
    ])
    sent.length = 0
    mesh.broadcast("chat")
    expect(sent).toEqual(["outbound:chat"])
  })
})
