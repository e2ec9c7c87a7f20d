import { describe, expect } from "bun:test"
import { Effect, TestClock } from "effect"
import { MemoryNetwork } from "../../layers/Transport/MemoryTransport.ts"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { type Incoming, NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import { signData } from "../../src/neighbourhood/Crypto.ts"
import {
  encodeClientUpdate,
  encodeSignedData,
  helloContent,
  publicChatContent,
  serverHelloContent
} from "../../src/neighbourhood/Wire.ts"
import { it } from "../support/effect.ts"
import { addressOf, clientPems, connectClient, MeshTestLayer, portOf, serverKeys, startServer } from "./support.ts"

/** One server (server0) whose configured neighbour server1 is not running: tests play server1 by hand. */
const oneServer = (extra: Record<string, unknown> = {}) =>
  Effect.gen(function* () {
    yield* startServer(0, 2, extra)
    const alice = yield* connectClient(portOf(0), clientPems[0]!)
    const bob = yield* connectClient(portOf(0), clientPems[1]!)
    yield* alice.clientList
    yield* bob.clientList
    return { alice, bob }
  })

const errorOf = (incoming: Incoming) =>
  incoming.kind === "error" ? incoming.message : `not an error: ${JSON.stringify(incoming)}`

/** A raw connection that says server_hello as server1, signed with `key` (server1's own by default). */
const actAsServer1 = (
  signKey: CryptoKey = serverKeys[1]!.identity.signKey,
  sender = addressOf(1),
  counter = Date.now()
) =>
  Effect.gen(function* () {
    const network = yield* MemoryNetwork
    const socket = yield* network.connect(portOf(0), "/")
    const data = serverHelloContent(sender)
    yield* socket.send(encodeSignedData(data, counter, yield* Effect.promise(() => signData(signKey, data, counter))))
    return socket
  })

/** Reads what server0 sends first on an accepted server link: server_hello, client_update_request, client_update. */
const greeted = (socket: { readonly next: () => Effect.Effect<unknown> }) =>
  Effect.gen(function* () {
    const types = []
    for (let i = 0; i < 3; i++) {
      const frame = JSON.parse(String(yield* socket.next()))
      types.push(frame.type === "signed_data" ? JSON.parse(frame.data).type : frame.type)
    }
    expect(types).toEqual(["server_hello", "client_update_request", "client_update"])
  })

describe("Neighbourhood security beyond the seed", () => {
  it.effect("a replayed message is dropped, answered with an error, and reaches nobody", () =>
    Effect.gen(function* () {
      const { alice, bob } = yield* oneServer()
      const frame = yield* Effect.promise(() => alice.client.publicChat("once"))
      yield* alice.send(frame)
      expect(yield* bob.next).toMatchObject({ kind: "public_chat", message: "once" })
      yield* alice.send(frame)
      expect(errorOf(yield* alice.next)).toContain("is not greater than the last accepted counter")
      yield* bob.expectNothingElse
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("a forged message (data changed, signature kept) is dropped with an error", () =>
    Effect.gen(function* () {
      const { alice, bob } = yield* oneServer()
      const genuine = JSON.parse(yield* Effect.promise(() => alice.client.publicChat("genuine")))
      const forged = encodeSignedData(
        publicChatContent(alice.client.fingerprint, "forged"),
        genuine.counter,
        genuine.signature
      )
      yield* alice.send(forged)
      expect(errorOf(yield* alice.next)).toBe("signature does not verify with your key")
      yield* bob.expectNothingElse
      // The forgery did not burn the counter: the genuine message still goes through.
      yield* alice.send(JSON.stringify(genuine))
      expect(yield* bob.next).toMatchObject({ kind: "public_chat", message: "genuine", verified: true })
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect(
    "a captured hello and messages replayed on a new connection are refused (counters per key, across connections)",
    () =>
      Effect.gen(function* () {
        const { bob } = yield* oneServer()
        const carol = yield* Effect.promise(() => NeighbourhoodClient.fromPrivatePem(clientPems[2]!))
        const hello = yield* Effect.promise(() => carol.hello())
        const chat = yield* Effect.promise(() => carol.publicChat("original"))
        const first = yield* connectClient(portOf(0), carol, false)
        yield* first.send(hello)
        yield* first.send(chat)
        expect(yield* bob.next).toMatchObject({ kind: "public_chat", message: "original" })
        yield* first.socket.close()
        yield* bob.expectNothingElse

        const replayer = yield* connectClient(portOf(0), carol, false)
        yield* replayer.send(hello)
        expect(errorOf(yield* replayer.next)).toContain("is not greater than the last accepted counter")
        yield* replayer.send(chat)
        expect(errorOf(yield* replayer.next)).toBe("say hello before sending public_chat")
        yield* bob.expectNothingElse
        // The real client continues its counter and is welcome back.
        yield* replayer.send(carol.hello())
        yield* replayer.send(carol.publicChat("back"))
        expect(yield* bob.next).toMatchObject({ kind: "public_chat", message: "back" })
      }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("per-connection counters are an opt-in compatibility mode", () =>
    Effect.gen(function* () {
      const { bob } = yield* oneServer({ compat: { perConnectionCounters: true } })
      for (const text of ["first life", "second life"]) {
        const restarted = yield* Effect.promise(() => NeighbourhoodClient.fromPrivatePem(clientPems[2]!))
        const c = yield* connectClient(portOf(0), restarted)
        yield* c.send(restarted.publicChat(text))
        expect(yield* bob.next).toMatchObject({ kind: "public_chat", message: text })
        yield* c.socket.close()
      }
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("hello cannot take over a fingerprint another connection holds", () =>
    Effect.gen(function* () {
      const { alice, bob } = yield* oneServer()
      const twin = yield* Effect.promise(() =>
        NeighbourhoodClient.fromPrivatePem(clientPems[0]!, alice.client.lastCounter + 100)
      )
      const intruder = yield* connectClient(portOf(0), twin)
      expect(errorOf(yield* intruder.next)).toBe("this key is already connected to this server")
      expect((yield* intruder.socket.closed).code).toBe(CloseCodes.forbidden)
      yield* bob.send(bob.client.publicChat("still alice's"))
      expect(yield* alice.next).toMatchObject({ kind: "public_chat", message: "still alice's" })
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("a public_chat whose sender is not the signer is refused", () =>
    Effect.gen(function* () {
      const { alice, bob } = yield* oneServer()
      yield* alice.send(alice.client.signed(publicChatContent(bob.client.fingerprint, "I am bob")))
      expect(errorOf(yield* alice.next)).toBe("public_chat sender must be your own fingerprint")
      yield* bob.expectNothingElse
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("server_hello is accepted only from a configured neighbour signed with its configured key", () =>
    Effect.gen(function* () {
      const { alice, bob } = yield* oneServer()
      const wrongKey = yield* actAsServer1(serverKeys[2]!.identity.signKey)
      expect(JSON.parse(String(yield* wrongKey.next()))).toEqual({
        type: "error",
        message: "server_hello refused: bad signature"
      })
      expect((yield* wrongKey.closed).code).toBe(CloseCodes.unauthorized)

      const stranger = yield* actAsServer1(serverKeys[2]!.identity.signKey, "server9")
      expect((yield* stranger.closed).code).toBe(CloseCodes.forbidden)

      // The real server1: its client list and relayed public chats are taken, but only with valid signatures.
      const server1 = yield* actAsServer1()
      yield* greeted(server1)
      const carol = yield* Effect.promise(() => NeighbourhoodClient.fromPrivatePem(clientPems[2]!))
      yield* server1.send(encodeClientUpdate([carol.publicPem]))
      yield* server1.send('{"type":"client_update_request"}')
      // A client list is a set (v1.2): alice's and bob's hellos are checked concurrently, either may land first.
      const update = JSON.parse(String(yield* server1.next())) as { type: string; clients: Array<string> }
      expect(update.type).toBe("client_update")
      expect([...update.clients].sort()).toEqual([alice.client.publicPem, bob.client.publicPem].sort())
      yield* alice.clientList
      const forged = yield* Effect.promise(() => alice.client.signed(publicChatContent(carol.fingerprint, "not carol")))
      yield* server1.send(forged)
      yield* server1.send(yield* Effect.promise(() => carol.publicChat("from carol")))
      expect(yield* alice.next).toMatchObject({ kind: "public_chat", message: "from carol", verified: true })
      yield* alice.expectNothingElse
      expect(yield* bob.next).toMatchObject({ kind: "public_chat", message: "from carol" })
      yield* bob.expectNothingElse
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("a peer that sends a chat or public chat twice (flooding, two connections) is heard once", () =>
    Effect.gen(function* () {
      const { alice, bob } = yield* oneServer()
      const server1 = yield* actAsServer1()
      yield* greeted(server1)
      const carol = yield* Effect.promise(() => NeighbourhoodClient.fromPrivatePem(clientPems[2]!))
      yield* server1.send(encodeClientUpdate([carol.publicPem]))
      yield* server1.send('{"type":"client_update_request"}')
      yield* server1.next()
      const chat = yield* Effect.promise(() =>
        carol.chat([{ pem: alice.client.publicPem, server: addressOf(0) }], "just once")
      )
      const shout = yield* Effect.promise(() => carol.publicChat("once too"))
      yield* alice.clientList
      for (const frame of [chat, chat, shout, shout]) yield* server1.send(frame)
      expect(yield* alice.next).toMatchObject({ kind: "chat", message: "just once" })
      expect(yield* alice.next).toMatchObject({ kind: "public_chat", message: "once too" })
      yield* alice.expectNothingElse
      expect((yield* bob.next).kind).toBe("chat_for_others")
      expect(yield* bob.next).toMatchObject({ kind: "public_chat", message: "once too" })
      yield* bob.expectNothingElse
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("unsigned server_hello is an opt-in compatibility mode for listed addresses only", () =>
    Effect.gen(function* () {
      yield* oneServer({ compat: { unsignedServerHello: true } })
      const seedStyle = yield* actAsServer1(serverKeys[2]!.identity.signKey, addressOf(1), 12345)
      yield* greeted(seedStyle)
      yield* seedStyle.send('{"type":"client_update_request"}')
      expect(JSON.parse(String(yield* seedStyle.next()))).toMatchObject({ type: "client_update" })
      const stranger = yield* actAsServer1(serverKeys[2]!.identity.signKey, "server9")
      expect((yield* stranger.closed).code).toBe(CloseCodes.forbidden)
      // The seed's form: data as an object, a fixed counter, no signature field at all.
      const network = yield* MemoryNetwork
      const unsigned = yield* network.connect(portOf(0), "/")
      yield* unsigned.send(
        JSON.stringify({ type: "signed_data", data: { type: "server_hello", sender: addressOf(1) }, counter: 12345 })
      )
      yield* greeted(unsigned)
      yield* unsigned.send('{"type":"client_update_request"}')
      expect(JSON.parse(String(yield* unsigned.next()))).toMatchObject({ type: "client_update" })
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("a connection without hello or server_hello is closed after 10 s (4005)", () =>
    Effect.gen(function* () {
      yield* startServer(0, 2)
      const silent = yield* connectClient(portOf(0), clientPems[0]!, false)
      yield* silent.clientList
      yield* TestClock.adjust("9 seconds")
      yield* silent.clientList
      yield* TestClock.adjust("1 second")
      expect((yield* silent.socket.closed).code).toBe(CloseCodes.handshakeTimeout)
      const greeted = yield* connectClient(portOf(0), clientPems[1]!)
      yield* greeted.clientList
      yield* TestClock.adjust("11 seconds")
      yield* greeted.clientList
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("the seed's crash inputs get errors and the server carries on", () =>
    Effect.gen(function* () {
      const { alice, bob } = yield* oneServer()
      const other = yield* Effect.promise(() => NeighbourhoodClient.fromPrivatePem(clientPems[3]!))
      const inputs: Array<[string | Promise<string>, string]> = [
        ['{"type":"client_update_request"}', "client_update_request is sent by servers only"],
        [encodeClientUpdate([alice.client.publicPem]), "client_update is sent by servers only"],
        [other.signed(helloContent(other.publicPem)), "this connection already said hello with another key"],
        [alice.client.signed(serverHelloContent(addressOf(1))), "server_hello from a client"],
        ["not json", "invalid message: not JSON"],
        ["[".repeat(50_000), "invalid message: JSON nested too deeply"],
        ['{"type":"signed_data","data":"{oops","counter":1,"signature":""}', "data is not a v1.2 message: not JSON"],
        ['{"type":"signed_data","data":"{}","counter":-1,"signature":""}', "invalid message"],
        ['{"type":"mystery"}', "invalid message"]
      ]
      for (const [input, reason] of inputs) {
        yield* alice.send(input)
        expect(errorOf(yield* alice.next)).toStartWith(reason)
      }
      yield* alice.socket.send(new TextEncoder().encode('{"type":"client_list_request"}'))
      expect((yield* alice.next).kind).toBe("client_list")
      yield* alice.send(alice.client.publicChat("still standing"))
      expect(yield* bob.next).toMatchObject({ kind: "public_chat", message: "still standing" })
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("a flooding connection is told to slow down, then closed (4006)", () =>
    Effect.gen(function* () {
      yield* startServer(0, 2, {
        limits: { messageBurst: 5, rateStrikes: 3, messagesPerSecond: 1 },
        socket: { maxPayloadBytes: 4096, pingIntervalMs: 1000, pongTimeoutMs: 500 }
      })
      const flooder = yield* connectClient(portOf(0), clientPems[0]!)
      for (let i = 0; i < 4; i++) yield* flooder.send(flooder.client.clientListRequest())
      for (let i = 0; i < 4; i++) expect((yield* flooder.next).kind).toBe("client_list")
      yield* flooder.send(flooder.client.clientListRequest())
      expect(errorOf(yield* flooder.next)).toBe("rate limited: slow down")
      yield* flooder.send(flooder.client.clientListRequest())
      yield* flooder.send(flooder.client.clientListRequest())
      expect((yield* flooder.socket.closed).code).toBe(CloseCodes.rateLimited)
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("an address opening connections too fast gets HTTP 429", () =>
    Effect.gen(function* () {
      yield* startServer(0, 2, { limits: { connectionBurst: 3, connectionsPerSecond: 1 } })
      const network = yield* MemoryNetwork
      for (let i = 0; i < 3; i++) yield* network.connect(portOf(0), "/")
      const refused = yield* Effect.flip(network.connect(portOf(0), "/"))
      expect(refused.code).toBe(429)
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("oversized messages close with 1009 and silent peers with 4000, as on the other servers", () =>
    Effect.gen(function* () {
      yield* startServer(0, 2, { maxPayloadBytes: 4096, pingIntervalMs: 1000, pongTimeoutMs: 500 })
      const big = yield* connectClient(portOf(0), clientPems[1]!)
      yield* big.send(big.client.publicChat("x".repeat(5000)))
      expect((yield* big.socket.closed).code).toBe(CloseCodes.messageTooBig)

      const frozen = yield* connectClient(portOf(0), clientPems[2]!)
      frozen.socket.answerPings = false
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")
      expect((yield* frozen.socket.closed).code).toBe(CloseCodes.heartbeatTimeout)
    }).pipe(Effect.provide(MeshTestLayer))
  )
})
