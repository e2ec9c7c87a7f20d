import { describe, expect } from "bun:test"
import { Effect, Queue } from "effect"
import { Command, type TPacket } from "../../src/chat/Packet.ts"
import { type ClusterBackend, memoryBackend, natsBackend, redisBackend } from "../layers/Cluster/backends.ts"
import { it } from "../support/effect.ts"
import { brokerHistories, chatCluster, type HistoryStores, sharedMemoryHistory } from "./clusterSupport.ts"
import { type ChatClient, show, text } from "./support.ts"

const histories = brokerHistories("chat")

const scenarios = (backend: ClusterBackend, historyStores: HistoryStores) => {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  const cluster = chatCluster(backend, historyStores)

  /** The end of the event loop's turn (an event, not a delay): a node's batched room frames have left it by then. */
  const endOfTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

  /** The next packet that is not a reply. */
  const pushed = (client: ChatClient) => client.next

  describe(`chat across nodes (${backend.name})`, () => {
    test("joins, messages and leaves cross nodes as in one process; rosters list every node; ids differ", () =>
      Effect.gen(function* () {
        const { node, join } = yield* cluster
        const [a, b] = yield* Effect.all([node("chat-a"), node("chat-b")])
        const alice = yield* join(a.port, "alice", "lobby")
        expect(alice.roster.map(show).map((p) => [p.cmd, p.data])).toEqual([[Command.NEW_USER, "alice"]])
        const aliceId = alice.roster[0]!.p1
        alice.client.sendMessage("before bob")
        expect(text(yield* pushed(alice.client))).toBe("before bob")
        const carol = yield* join(a.port, "carol", "lobby")
        expect(yield* pushed(alice.client)).toMatchObject({ cmd: Command.NEW_USER, p1: carol.roster[0]!.p1 })
        // Node A's room frames leave at the end of its turn (batched): carol's _NEW_USER is on the broker before bob joins.
        yield* endOfTurn

        const bob = yield* join(b.port, "bob", "lobby")
        // Joiner first, then the others newest first; the history written on node A.
        expect(bob.roster.map((p) => [p.cmd, text(p)])).toEqual([
          [Command.NEW_USER, "bob"],
          [Command.NEW_USER, "carol"],
          [Command.NEW_USER, "alice"],
          [Command.LOGGED_MSG, "alice: before bob"]
        ])
        const bobId = bob.roster[0]!.p1
        expect(new Set([aliceId, carol.roster[0]!.p1, bobId]).size).toBe(3)
        expect(bob.roster[2]!.p1).toBe(aliceId)
        for (const other of [alice.client, carol.client])
          expect(show(yield* pushed(other))).toMatchObject({ cmd: Command.NEW_USER, p1: bobId, data: "bob" })

        alice.client.sendMessage("hello bob")
        for (const client of [alice.client, carol.client, bob.client])
          expect(show(yield* pushed(client))).toMatchObject({ cmd: Command.NEW_MSG, p1: aliceId, data: "hello bob" })
        bob.client.sendMessage("hi all")
        for (const client of [bob.client, alice.client, carol.client])
          expect(show(yield* pushed(client))).toMatchObject({ cmd: Command.NEW_MSG, p1: bobId, data: "hi all" })

        bob.client.close()
        for (const client of [alice.client, carol.client])
          expect(show(yield* pushed(client))).toMatchObject({ cmd: Command.DEL_USER, p1: bobId, data: "bob" })
        // Nothing else reached A's members: no duplicates through the broker.
        yield* alice.client.silent
        yield* carol.client.silent
      }))

    test("a nick is unique across nodes: refused anywhere while held, free again once its connection closed", () =>
      Effect.gen(function* () {
        const { node, connect } = yield* cluster
        const [a, b] = yield* Effect.all([node("chat-a"), node("chat-b")])
        const first = yield* connect(a.port)
        expect((yield* first.setNick("dave")).cmd).toBe(Command.RESP_OK)
        const second = yield* connect(b.port)
        expect(yield* second.setNick("dave")).toMatchObject({ cmd: Command.RESP_ERROR, p1: -1, p2: 0 })
        first.close()
        yield* first.closed
        // The release runs in node A's connection finalizer: once it is done on the broker, the nick is free.
        expect(yield* Queue.take(a.released)).toBe("dave")
        expect((yield* second.setNick("dave")).cmd).toBe(Command.RESP_OK)
      }))

    test("history is the cluster's: a joiner on B gets lines written on A after A's room emptied, and back", () =>
      Effect.gen(function* () {
        const { node, join } = yield* cluster
        const [a, b] = yield* Effect.all([node("chat-a"), node("chat-b")])
        const lines = (roster: ReadonlyArray<TPacket>) => roster.filter((p) => p.cmd === Command.LOGGED_MSG).map(text)
        const ann = yield* join(a.port, "ann", "annals")
        ann.client.sendMessage("first, on A")
        expect(text(yield* pushed(ann.client))).toBe("first, on A")
        ann.client.sendMessage("second, on A")
        expect(text(yield* pushed(ann.client))).toBe("second, on A")
        // A join on the writer's node waits for its lines to be stored (history is written after delivery).
        const amy = yield* join(a.port, "amy", "annals")
        expect(lines(amy.roster)).toEqual(["ann: first, on A", "ann: second, on A"])
        const seenOnB = yield* b.rooms.changes
        for (const c of [ann.client, amy.client]) {
          c.close()
          yield* c.closed
        }
        // Node B hears both leaves only after node A removed them from presence: B's next roster cannot list them.
        const left = new Set<string>()
        while (left.size < 2) {
          const change = yield* Queue.take(seenOnB)
          if (change._tag === "Left") left.add(change.member.id)
        }
        // The room is empty on A; its history stays in the shared store for the other nodes.
        const ben = yield* join(b.port, "ben", "annals")
        expect(ben.roster.map(text)).toEqual(["ben", "ann: first, on A", "ann: second, on A"])
        ben.client.sendMessage("reply, on B")
        expect(text(yield* pushed(ben.client))).toBe("reply, on B")
        const dan = yield* join(b.port, "dan", "annals")
        expect(lines(dan.roster)).toEqual(["ann: first, on A", "ann: second, on A", "ben: reply, on B"])
        const cat = yield* join(a.port, "cat", "annals")
        expect(cat.roster.map(text)).toEqual([
          "cat",
          "dan",
          "ben",
          "ann: first, on A",
          "ann: second, on A",
          "ben: reply, on B"
        ])
      }))

    test("members of a crashed node leave: _DEL_USER to the room's members elsewhere, and out of later rosters", () =>
      Effect.gen(function* () {
        const { node, join, expire } = yield* cluster
        const [a, b] = yield* Effect.all([node("chat-a"), node("chat-b")])
        yield* join(a.port, "erin", "r")
        const frank = yield* join(b.port, "frank", "r")
        expect(frank.roster.map(text)).toEqual(["frank", "erin"])
        const erinId = frank.roster[1]!.p1
        yield* a.broker.sever
        yield* expire("chat-a")
        // Node A cannot say erin left: node B tells its members once it sees A's heartbeat gone.
        expect(show(yield* frank.client.next)).toMatchObject({ cmd: Command.DEL_USER, p1: erinId, data: "erin" })
        const grace = yield* join(b.port, "grace", "r")
        expect(grace.roster.map(text)).toEqual(["grace", "frank"])
        expect(show(yield* frank.client.next)).toMatchObject({ cmd: Command.NEW_USER, data: "grace" })
        yield* frank.client.silent
      }))
  })
}

scenarios(memoryBackend, sharedMemoryHistory)
scenarios(redisBackend(histories.prefix), histories.redis)
scenarios(natsBackend(histories.jetStreamPrefix), histories.nats)
