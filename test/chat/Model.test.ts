import { describe, expect } from "bun:test"
import { Effect, Exit, FastCheck as fc, type Queue, Runtime, Scope } from "effect"
import type { RoomChange } from "../../layers/Rooms/Rooms.ts"
import { Command } from "../../src/chat/Packet.ts"
import { it } from "../support/effect.ts"
import { type ChatClient, client, leftRoom, show, startChat, type TestChat } from "./support.ts"

/** Reference model: who is connected, and each room's members (join order) and history. */
interface Model {
  readonly roomOf: Map<number, string>
  readonly rooms: Map<string, { members: Array<number>; history: Array<string> }>
}

interface Real {
  readonly chat: TestChat
  readonly changes: Queue.Dequeue<RoomChange>
  readonly run: number
  readonly clients: Map<number, ChatClient>
  readonly ids: Map<number, number>
  /** Each join takes a fresh nick, so a rejoin never waits for the old connection's nick to be released. */
  readonly nicks: Map<number, string>
  joins: number
  /** Where this run's clients live: closed when the run ends. */
  readonly scope: Scope.CloseableScope
  readonly runEffect: <A>(effect: Effect.Effect<A, never, never>) => Promise<A>
}

const nickOf = (real: Real, user: number) => real.nicks.get(user)!
const push = (p: { readonly cmd: number } & Partial<ReturnType<typeof show>>) => ({
  uid: -1,
  p1: 0,
  p2: 0,
  data: "",
  ...p
})

const expectNext = (c: ChatClient, expected: ReturnType<typeof show>) =>
  Effect.map(c.next, (p) => expect(show(p)).toEqual(expected))

class Join implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly user: number,
    readonly room: string
  ) {}
  check = (m: Readonly<Model>) => !m.roomOf.has(this.user)
  run(m: Model, real: Real) {
    const { user, room } = this
    const roomName = `${real.run}/${room}`
    return real.runEffect(
      Effect.gen(function* () {
        const c = yield* Scope.extend(client(real.chat), real.scope).pipe(Effect.orDie)
        real.clients.set(user, c)
        real.nicks.set(user, `u${real.run}-${user}-${real.joins++}`)
        c.send(Command.SET_USER_NICK, nickOf(real, user))
        c.send(Command.SET_ROOM, roomName)
        yield* expectNext(c, { cmd: Command.RESP_OK, uid: 2, p1: 0, p2: 0, data: "" })
        yield* expectNext(c, { cmd: Command.RESP_OK, uid: 3, p1: 0, p2: 0, data: "" })
        const self = yield* c.next
        real.ids.set(user, self.p1)
        expect(show(self)).toEqual(push({ cmd: Command.NEW_USER, p1: self.p1, data: nickOf(real, user) }))
        const state = m.rooms.get(room) ?? { members: [], history: [] }
        for (const other of [...state.members].reverse()) {
          yield* expectNext(c, push({ cmd: Command.NEW_USER, p1: real.ids.get(other)!, data: nickOf(real, other) }))
        }
        for (const line of state.history) yield* expectNext(c, push({ cmd: Command.LOGGED_MSG, data: line }))
        for (const other of state.members) {
          yield* expectNext(
            real.clients.get(other)!,
            push({ cmd: Command.NEW_USER, p1: self.p1, data: nickOf(real, user) })
          )
        }
        state.members.push(user)
        m.rooms.set(room, state)
        m.roomOf.set(user, room)
      })
    )
  }
  toString = () => `join(${this.user}, ${this.room})`
}

class Say implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly user: number,
    readonly text: string
  ) {}
  check = (m: Readonly<Model>) => m.roomOf.has(this.user)
  run(m: Model, real: Real) {
    const { user, text } = this
    return real.runEffect(
      Effect.gen(function* () {
        const state = m.rooms.get(m.roomOf.get(user)!)!
        real.clients.get(user)!.sendMessage(text)
        for (const member of state.members) {
          yield* expectNext(
            real.clients.get(member)!,
            push({ cmd: Command.NEW_MSG, p1: real.ids.get(user)!, data: text })
          )
        }
        if (text.length > 0) state.history.push(`${nickOf(real, user)}: ${text}`)
      })
    )
  }
  toString = () => `say(${this.user}, ${JSON.stringify(this.text)})`
}

class Leave implements fc.AsyncCommand<Model, Real> {
  constructor(readonly user: number) {}
  check = (m: Readonly<Model>) => m.roomOf.has(this.user)
  run(m: Model, real: Real) {
    const { user } = this
    return real.runEffect(
      Effect.gen(function* () {
        const roomName = m.roomOf.get(user)!
        const state = m.rooms.get(roomName)!
        real.clients.get(user)!.close()
        real.clients.delete(user)
        m.roomOf.delete(user)
        state.members.splice(state.members.indexOf(user), 1)
        // The server has taken the leaver out of the room before anyone else acts.
        yield* leftRoom(real.changes, nickOf(real, user))
        for (const member of state.members) {
          yield* expectNext(
            real.clients.get(member)!,
            push({ cmd: Command.DEL_USER, p1: real.ids.get(user)!, data: nickOf(real, user) })
          )
        }
        if (state.members.length === 0) m.rooms.delete(roomName)
      })
    )
  }
  toString = () => `leave(${this.user})`
}

const user = fc.integer({ min: 0, max: 4 })
const commands = fc.commands(
  [
    fc.tuple(user, fc.constantFrom("red", "blue")).map(([u, r]) => new Join(u, r)),
    fc.tuple(user, fc.string({ maxLength: 12 })).map(([u, t]) => new Say(u, t)),
    user.map((u) => new Leave(u))
  ],
  { maxCommands: 25 }
)

describe("chat: model-based (join / message / leave across several clients, memory network)", () => {
  it.effect(
    "every client sees exactly what the reference model predicts",
    () =>
      Effect.gen(function* () {
        const chat = yield* startChat({ limits: { messageBurst: 1000 } }) // time stands still: no refill
        const runtime = yield* Effect.runtime<never>()
        const runEffect = <A>(effect: Effect.Effect<A>) => Runtime.runPromise(runtime)(effect)
        let run = 0
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(commands, async (cmds) => {
              const scope = await runEffect(Scope.make())
              const real: Real = {
                chat,
                changes: chat.changes,
                run: run++,
                clients: new Map(),
                ids: new Map(),
                nicks: new Map(),
                joins: 0,
                scope,
                runEffect
              }
              try {
                await fc.asyncModelRun(() => ({ model: { roomOf: new Map(), rooms: new Map() }, real }), cmds)
                // Nobody got anything the model did not predict.
                for (const c of real.clients.values()) await runEffect(c.silent)
              } finally {
                await runEffect(Scope.close(scope, Exit.void))
                real.clients.clear()
              }
            }),
            { numRuns: Number(process.env.FC_RUNS ?? 300), ...(process.env.FC_SEED ? {} : { seed: 42 }) }
          )
        )
      }),
    60_000
  )
})
