import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { SignatureVerifier, type SignatureVerifierService } from "../../layers/Crypto/SignatureVerifier.ts"
import { type Incoming, NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import { MemoryNetwork } from "../../layers/Transport/MemoryTransport.ts"
import { signData } from "../../src/neighbourhood/Crypto.ts"
import { inlineVerifier } from "../../src/neighbourhood/Verify.ts"
import { encodeClientUpdate, encodeSignedData, serverHelloContent } from "../../src/neighbourhood/Wire.ts"
import { it } from "../support/effect.ts"
import {
  addressOf,
  advanceUntil,
  clientPems,
  connectClient,
  MeshTestLayer,
  portOf,
  serverKeys,
  startServer
} from "./support.ts"

/**
 * A verifier standing in for the worker pool: each check's answer (the real one, computed inline)
 * waits until the test releases it, so a test decides in which order checks finish.
 */
const makeHeldVerifier = () => {
  const held: Array<{ readonly text: string; readonly release: () => void }> = []
  const service: SignatureVerifierService = {
    threads: 1,
    verify: (spki, text, signature) => {
      const valid = inlineVerifier.verify(spki, text, signature)
      return new Promise<boolean>((resolve) => held.push({ text, release: () => resolve(valid) }))
    }
  }
  return { service, held }
}

/** server0 checking chats with a held verifier, and two clients on it. */
const oneServer = Effect.gen(function* () {
  const verifier = makeHeldVerifier()
  yield* startServer(0, 2).pipe(Effect.provideService(SignatureVerifier, verifier.service))
  const alice = yield* connectClient(portOf(0), clientPems[0]!)
  const bob = yield* connectClient(portOf(0), clientPems[1]!)
  yield* alice.clientList
  yield* bob.clientList
  return { ...verifier, alice, bob }
})

/** server1 played by hand on server0: what server0 sends into the mesh, and a way to send as server1. */
const actAsServer1 = Effect.gen(function* () {
  const network = yield* MemoryNetwork
  const server1 = yield* network.connect(portOf(0), "/")
  const hello = serverHelloContent(addressOf(1))
  const counter = Date.now()
  const signature = yield* Effect.promise(() => signData(serverKeys[1]!.identity.signKey, hello, counter))
  yield* server1.send(encodeSignedData(hello, counter, signature))
  /** The next chat or public chat server0 sends into the mesh, skipping its hellos and client lists. */
  const nextChat = Effect.gen(function* () {
    for (;;) {
      const frame = JSON.parse(String(yield* server1.next()))
      const content = frame.type === "signed_data" ? JSON.parse(frame.data) : frame
      if (content.type === "public_chat" || content.type === "chat") return content.message as string
    }
  })
  return { server1, nextChat }
})

const messageOf = (incoming: Incoming) =>
  incoming.kind === "public_chat" || incoming.kind === "error" ? incoming.message : JSON.stringify(incoming)

describe("Neighbourhood chats checked off the event loop", () => {
  it.effect("checks that finish in any order are applied in arrival order", () =>
    Effect.gen(function* () {
      const { held, alice, bob } = yield* oneServer
      for (const text of ["one", "two", "three"]) yield* alice.send(alice.client.publicChat(text))
      yield* advanceUntil(() => held.length === 3, "three checks in flight")
      for (const check of [...held].reverse()) check.release()
      expect([messageOf(yield* bob.next), messageOf(yield* bob.next), messageOf(yield* bob.next)]).toEqual([
        "one",
        "two",
        "three"
      ])
      yield* bob.expectNothingElse
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("two frames of one sender in flight: a lower counter behind a higher one is refused", () =>
    Effect.gen(function* () {
      const { held, alice, bob } = yield* oneServer
      const lower = yield* Effect.promise(() => alice.client.publicChat("lower"))
      const higher = yield* Effect.promise(() => alice.client.publicChat("higher"))
      // Both are above the last accepted counter when they arrive, so both are checked.
      yield* alice.send(higher)
      yield* alice.send(lower)
      yield* advanceUntil(() => held.length === 2, "two checks in flight")
      held[1]!.release()
      held[0]!.release()
      expect(messageOf(yield* bob.next)).toBe("higher")
      expect(messageOf(yield* alice.next)).toContain("is not greater than the last accepted counter")
      yield* bob.expectNothingElse
      // The counter is exact afterwards: the next message goes through.
      yield* alice.send(alice.client.publicChat("next"))
      yield* advanceUntil(() => held.length === 3, "the next check")
      held[2]!.release()
      expect(messageOf(yield* bob.next)).toBe("next")
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("a bad signature checked on a worker is refused in its place", () =>
    Effect.gen(function* () {
      const { held, alice, bob } = yield* oneServer
      const genuine = JSON.parse(yield* Effect.promise(() => alice.client.publicChat("genuine")))
      yield* alice.send(
        JSON.stringify({
          ...genuine,
          signature: genuine.signature.replace(/^./, (c: string) => (c === "A" ? "B" : "A"))
        })
      )
      yield* alice.send(alice.client.publicChat("after"))
      yield* advanceUntil(() => held.length === 2, "two checks in flight")
      held[1]!.release()
      held[0]!.release()
      expect(messageOf(yield* alice.next)).toBe("signature does not verify with your key")
      expect(messageOf(yield* bob.next)).toBe("after")
      yield* bob.expectNothingElse
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("frames of a connection that closed while they were checked are not forwarded", () =>
    Effect.gen(function* () {
      const { held, alice, bob } = yield* oneServer
      const { nextChat } = yield* actAsServer1
      yield* alice.send(alice.client.publicChat("too late"))
      yield* advanceUntil(() => held.length === 1, "the check in flight")
      yield* alice.socket.close()
      // The server has seen the close once alice is off the client list.
      const listed = (list: Extract<Incoming, { kind: "client_list" }>) =>
        list.servers.some((s) => s.clients.some((c) => c.fingerprint === alice.client.fingerprint))
      for (let i = 0; listed(yield* bob.clientList); i++) if (i === 50) return yield* Effect.dieMessage("alice stayed")
      held[0]!.release()
      // bob's message after it proves alice's never went out.
      yield* bob.send(bob.client.publicChat("proof"))
      yield* advanceUntil(() => held.length === 2, "bob's check")
      held[1]!.release()
      expect(yield* nextChat).toBe("proof")
    }).pipe(Effect.provide(MeshTestLayer))
  )
  it.effect("a neighbour's relayed public chats checked on a worker reach our clients in arrival order", () =>
    Effect.gen(function* () {
      const { held, alice, bob } = yield* oneServer
      const { server1 } = yield* actAsServer1
      const carol = yield* Effect.promise(() => NeighbourhoodClient.fromPrivatePem(clientPems[2]!))
      yield* server1.send(encodeClientUpdate([carol.publicPem]))
      yield* alice.clientList
      for (const text of ["first", "second"]) yield* server1.send(yield* Effect.promise(() => carol.publicChat(text)))
      yield* advanceUntil(() => held.length === 2, "two checks in flight")
      held[1]!.release()
      held[0]!.release()
      expect([messageOf(yield* alice.next), messageOf(yield* alice.next)]).toEqual(["first", "second"])
      expect([messageOf(yield* bob.next), messageOf(yield* bob.next)]).toEqual(["first", "second"])
      yield* alice.expectNothingElse
    }).pipe(Effect.provide(MeshTestLayer))
  )
})
