import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import { it } from "../support/effect.ts"
import {
  addressOf,
  advanceUntil,
  clientPems,
  connectClient,
  listConverges,
  MeshTestLayer,
  meshUp,
  portOf,
  type RunningServer,
  startServer
} from "./support.ts"

/** Three servers, all links up, and one client on each plus a second one on server1. */
const threeServers = Effect.gen(function* () {
  const servers: Array<RunningServer> = []
  for (let i = 0; i < 3; i++) servers.push(yield* startServer(i, 3))
  yield* advanceUntil(meshUp(servers), "all links up")
  const alice = yield* connectClient(portOf(0), clientPems[0]!)
  const bob = yield* connectClient(portOf(1), clientPems[1]!)
  const carol = yield* connectClient(portOf(2), clientPems[2]!)
  const dave = yield* connectClient(portOf(1), clientPems[3]!)
  const everyone = [alice, bob, carol, dave]
  const expected = {
    [addressOf(0)]: [alice.client.fingerprint],
    [addressOf(1)]: [bob.client.fingerprint, dave.client.fingerprint],
    [addressOf(2)]: [carol.client.fingerprint]
  }
  // Every client's list shows everyone (it also teaches each client the others' keys).
  for (const c of everyone) yield* listConverges(c, expected)
  return { servers, alice, bob, carol, dave, everyone, expected }
})

describe("Neighbourhood mesh (in memory, three servers)", () => {
  it.effect("a private chat across servers opens at the recipient only", () =>
    Effect.gen(function* () {
      const { alice, bob, carol, dave } = yield* threeServers
      yield* alice.send(alice.client.chat([{ pem: bob.client.publicPem, server: addressOf(1) }], "meet at noon"))
      const atBob = yield* bob.next
      expect(atBob).toEqual({
        kind: "chat",
        sender: alice.client.fingerprint,
        participants: [alice.client.fingerprint, bob.client.fingerprint],
        message: "meet at noon",
        verified: true
      })
      // Dave shares Bob's server, so the server hands him the chat too, but he cannot open it.
      expect((yield* dave.next).kind).toBe("chat_for_others")
      yield* carol.expectNothingElse
      yield* alice.expectNothingElse
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("a group chat reaches recipients on two other servers, each server once", () =>
    Effect.gen(function* () {
      const { alice, bob, carol, dave } = yield* threeServers
      const recipients = [
        { pem: bob.client.publicPem, server: addressOf(1) },
        { pem: carol.client.publicPem, server: addressOf(2) },
        { pem: dave.client.publicPem, server: addressOf(1) }
      ]
      yield* alice.send(alice.client.chat(recipients, "team sync"))
      for (const c of [bob, carol, dave]) {
        const got = yield* c.next
        expect(got.kind === "chat" && got.message).toBe("team sync")
        expect(got.kind === "chat" && got.participants).toHaveLength(4)
        yield* c.expectNothingElse
      }
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("a public chat reaches every other client of the neighbourhood exactly once", () =>
    Effect.gen(function* () {
      const { alice, bob, carol, dave } = yield* threeServers
      yield* bob.send(bob.client.publicChat("hello all"))
      for (const c of [alice, carol, dave]) {
        expect(yield* c.next).toEqual({
          kind: "public_chat",
          sender: bob.client.fingerprint,
          message: "hello all",
          verified: true
        })
        yield* c.expectNothingElse
      }
      yield* bob.expectNothingElse
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("a burst of messages (checked in parallel) arrives everywhere in the order it was sent", () =>
    Effect.gen(function* () {
      const { alice, bob, carol } = yield* threeServers
      const texts = Array.from({ length: 30 }, (_, i) => `message ${i}`)
      const frames = yield* Effect.promise(async () => {
        const out: Array<string> = []
        for (const [i, text] of texts.entries()) {
          out.push(
            i % 3 === 2
              ? await alice.client.chat([{ pem: carol.client.publicPem, server: addressOf(2) }], text)
              : await alice.client.publicChat(text)
          )
        }
        return out
      })
      for (const frame of frames) yield* alice.socket.send(frame)
      const atCarol: Array<string> = []
      for (let i = 0; i < texts.length; i++) {
        const got = yield* carol.next
        if (got.kind === "public_chat" || got.kind === "chat") atCarol.push(got.message)
      }
      expect(atCarol).toEqual(texts)
      const atBob: Array<string> = []
      for (let i = 0; i < 20; i++) {
        const got = yield* bob.next
        if (got.kind === "public_chat") atBob.push(got.message)
      }
      expect(atBob).toEqual(texts.filter((_, i) => i % 3 !== 2))
      yield* bob.expectNothingElse
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect(
    "client_updates are coalesced, yet a new client's first public chat never overtakes its client_update",
    () =>
      Effect.gen(function* () {
        const { bob, dave } = yield* threeServers
        // Two joins in one interval: the second one's client_update is held back...
        const first = yield* connectClient(portOf(0), clientPems[4]!)
        yield* first.clientList
        const second = yield* connectClient(portOf(0), yield* Effect.promise(() => NeighbourhoodClient.generate()))
        yield* second.clientList
        // ...until its first message leaves for the mesh, which sends the update first.
        yield* second.send(second.client.publicChat("first words"))
        for (const c of [bob, dave])
          expect(yield* c.next).toMatchObject({ kind: "public_chat", message: "first words" })
      }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("both sides dial, yet each pair of servers relays over one connection, chosen alike by both", () =>
    Effect.gen(function* () {
      const { servers } = yield* threeServers
      for (const [i, j] of [
        [0, 1],
        [0, 2],
        [1, 2]
      ] as const) {
        const fromLower = servers[i]!.server.mesh
        const fromHigher = servers[j]!.server.mesh
        // The connection dialled by the server whose address sorts first: its outbound, the other's inbound.
        expect(fromLower.channelTo(fromLower.neighbours.get(addressOf(j))!)?.direction).toBe("outbound")
        expect(fromHigher.channelTo(fromHigher.neighbours.get(addressOf(i))!)?.direction).toBe("inbound")
      }
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("client lists converge after joins and leaves", () =>
    Effect.gen(function* () {
      const { alice, bob, carol, dave } = yield* threeServers
      yield* carol.socket.close()
      const erin = yield* connectClient(portOf(0), clientPems[4]!)
      const expected = {
        [addressOf(0)]: [alice.client.fingerprint, erin.client.fingerprint],
        [addressOf(1)]: [bob.client.fingerprint, dave.client.fingerprint],
        [addressOf(2)]: []
      }
      for (const c of [alice, bob, dave, erin]) yield* listConverges(c, expected)
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("a server restarted in the middle heals: links come back and lists converge again", () =>
    Effect.gen(function* () {
      const { servers, alice, carol } = yield* threeServers
      yield* servers[1]!.stop
      // Its clients are gone with it; the others stop listing it.
      yield* listConverges(alice, {
        [addressOf(0)]: [alice.client.fingerprint],
        [addressOf(2)]: [carol.client.fingerprint]
      })
      servers[1] = yield* startServer(1, 3)
      yield* advanceUntil(meshUp(servers), "links up again")
      const bob = yield* connectClient(portOf(1), clientPems[4]!)
      const expected = {
        [addressOf(0)]: [alice.client.fingerprint],
        [addressOf(1)]: [bob.client.fingerprint],
        [addressOf(2)]: [carol.client.fingerprint]
      }
      for (const c of [alice, bob, carol]) yield* listConverges(c, expected)
      yield* bob.send(bob.client.publicChat("back again"))
      for (const c of [alice, carol]) {
        expect(yield* c.next).toMatchObject({ kind: "public_chat", message: "back again", verified: true })
        yield* c.expectNothingElse
      }
    }).pipe(Effect.provide(MeshTestLayer))
  )
})
