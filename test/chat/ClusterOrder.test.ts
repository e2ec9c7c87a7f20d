import { describe, expect } from "bun:test"
import { Deferred, Effect, Fiber } from "effect"
import { readStoredMessage } from "../../src/chat/HistoryText.ts"
import { Command, type TPacket } from "../../src/chat/Packet.ts"
import { type ClusterBackend, memoryBackend, natsBackend, redisBackend } from "../layers/Cluster/backends.ts"
import { it } from "../support/effect.ts"
import {
  brokerHistories,
  chatCluster,
  type HistoryStores,
  pushedBeforeProbe,
  sharedMemoryHistory
} from "./clusterSupport.ts"
import { type ChatClient, text } from "./support.ts"

const histories = brokerHistories("chat-order")
const ROUNDS = 6
const BURST = 5

interface Member {
  readonly client: ChatClient
  readonly nick: string
  /** Every line this member got, in order: history (_LOGGED_MSG) then live (_NEW_MSG, as "nick: text"). */
  readonly seen: Array<string>
  /** How many of them came as history. */
  history: number
}

const scenarios = (backend: ClusterBackend, historyStores: HistoryStores) => {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  describe(`chat message order across nodes (${backend.name})`, () => {
    test("senders on two nodes, joiners on a third and on a sender's node: the history's order everywhere, nothing missed or twice", () =>
      Effect.gen(function* () {
        // The clock stands still on memory: a burst budget that lasts the whole test.
        const { node, join } = yield* chatCluster(backend, historyStores, { messageBurst: 1000 })
        const [a, b, c] = yield* Effect.all([node("order-a"), node("order-b"), node("order-c")])
        const nicks = new Map<number, string>()
        const record = (member: Member, packets: ReadonlyArray<TPacket>) => {
          for (const p of packets) {
            if (p.cmd === Command.LOGGED_MSG) member.history = member.seen.push(text(p))
            else if (p.cmd === Command.NEW_MSG) member.seen.push(`${nicks.get(p.p1)}: ${text(p)}`)
          }
        }
        const enter = (port: number, nick: string) =>
          Effect.map(join(port, nick, "race"), ({ client, roster }) => {
            nicks.set(roster[0]!.p1, nick)
            const member: Member = { client, nick, seen: [], history: 0 }
            record(member, roster)
            return member
          })
        /** Reads `member`'s packets until the line `line` came. */
        const until = (member: Member, line: string) =>
          Effect.gen(function* () {
            while (member.seen.at(-1) !== line) record(member, [yield* member.client.next])
          })

        const senders = [
          yield* enter(a.port, "a1"),
          yield* enter(a.port, "a2"),
          yield* enter(b.port, "b1"),
          yield* enter(b.port, "b2")
        ]
        const firstRound = yield* Deferred.make<void>()
        let firstRoundsDone = 0
        /** Bursts of messages, each burst sent at once; the next once this sender saw its own last one. */
        const send = (member: Member) =>
          Effect.gen(function* () {
            for (let round = 0; round < ROUNDS; round++) {
              for (let i = 0; i < BURST; i++) member.client.sendMessage(`${member.nick} ${round * BURST + i}`)
              yield* until(member, `${member.nick}: ${member.nick} ${round * BURST + BURST - 1}`)
              if (round === 0 && ++firstRoundsDone === senders.length) yield* Deferred.succeed(firstRound, undefined)
            }
          })
        const sending = yield* Effect.fork(Effect.all(senders.map(send), { concurrency: "unbounded" }))
        yield* Deferred.await(firstRound)
        // While the others send: the first member on node C, a second one there, then one on a sender's node.
        const joiners = [yield* enter(c.port, "j1"), yield* enter(c.port, "j2"), yield* enter(a.port, "j3")]
        yield* Fiber.join(sending)

        const total = senders.length * ROUNDS * BURST
        const history = yield* a.store.readAfter("chat/race", 0)
        expect(history.map((entry) => entry.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1))
        const inSeqOrder = history.map((entry) => readStoredMessage(entry.payload).line)
        for (const member of [...senders, ...joiners]) {
          while (member.seen.length < total) record(member, [yield* member.client.next])
          expect({ nick: member.nick, seen: member.seen }).toEqual({ nick: member.nick, seen: inSeqOrder })
          // Nothing more on its way (joins and leaves aside).
          const rest = yield* pushedBeforeProbe(member.client)
          expect(rest.filter((p) => p.cmd === Command.NEW_MSG || p.cmd === Command.LOGGED_MSG)).toEqual([])
        }
        // Every sender's first burst was out before the first joiner came: it has those as history.
        expect(joiners[0]!.history).toBeGreaterThanOrEqual(senders.length * BURST)
      }))
  })
}

scenarios(memoryBackend, sharedMemoryHistory)
scenarios(redisBackend(histories.prefix), histories.redis)
scenarios(natsBackend(histories.jetStreamPrefix), histories.nats)
