import { describe, expect } from "bun:test"
import { Effect, FastCheck as fc } from "effect"
import type { ServerHandle } from "../../../layers/Transport/Transport.ts"
import { TPacketClient } from "../../../layers/Transport/TPacketClient.ts"
import { Command } from "../../../src/tpacket/Packet.ts"
import { it } from "../../support/effect.ts"
import { show, startChat } from "./chatSupport.ts"

/** Reference model: who is connected, and each room's members (join order) and history. */
interface Model {
  readonly roomOf: Map<number, string>
  readonly rooms: Map<string, { members: Array<number>; history: Array<string> }>
}

interface Real {
  readonly url: string
  readonly server: ServerHandle
  readonly run: number
  readonly clients: Map<number, TPacketClient>
  readonly ids: Map<number, number>
}

const nickOf = (real: Real, user: number) => `u${real.run}-${user}`
const push = (p: { readonly cmd: number } & Partial<ReturnType<typeof show>>) => ({ uid: -1, p1: 0, p2: 0, data: "", ...p })

const expectNext = async (c: TPacketClient, expected: ReturnType<typeof show>) => expect(show(await c.next())).toEqual(expected)

/** Until the server has run every leaver's cleanup (its connection count drops after the finalizers). */
const settled = async (real: Real) => {
  for (let i = 0; i < 300 && real.server.connectionCount() !== real.clients.size; i++) await Bun.sleep(5)
}

class Join implements fc.AsyncCommand<Model, Real> {
  constructor(readonly user: number, readonly room: string) {}
  check = (m: Readonly<Model>) => !m.roomOf.has(this.user)
  async run(m: Model, real: Real) {
    const room = `${real.run}/${this.room}`
    const c = await TPacketClient.connect(real.url)
    real.clients.set(this.user, c)
    c.setNick(nickOf(real, this.user))
    c.setRoom(room)
    await expectNext(c, { cmd: Command.RESP_OK, uid: 2, p1: 0, p2: 0, data: "" })
    await expectNext(c, { cmd: Command.RESP_OK, uid: 3, p1: 0, p2: 0, data: "" })
    const self = await c.next()
    real.ids.set(this.user, self.p1)
    expect(show(self)).toEqual(push({ cmd: Command.NEW_USER, p1: self.p1, data: nickOf(real, this.user) }))
    const state = m.rooms.get(this.room) ?? { members: [], history: [] }
    for (const other of [...state.members].reverse()) {
      await expectNext(c, push({ cmd: Command.NEW_USER, p1: real.ids.get(other)!, data: nickOf(real, other) }))
    }
    for (const line of state.history) await expectNext(c, push({ cmd: Command.LOGGED_MSG, data: line }))
    for (const other of state.members) {
      await expectNext(real.clients.get(other)!, push({ cmd: Command.NEW_USER, p1: self.p1, data: nickOf(real, this.user) }))
    }
    state.members.push(this.user)
    m.rooms.set(this.room, state)
    m.roomOf.set(this.user, this.room)
  }
  toString = () => `join(${this.user}, ${this.room})`
}

class Say implements fc.AsyncCommand<Model, Real> {
  constructor(readonly user: number, readonly text: string) {}
  check = (m: Readonly<Model>) => m.roomOf.has(this.user)
  async run(m: Model, real: Real) {
    const state = m.rooms.get(m.roomOf.get(this.user)!)!
    real.clients.get(this.user)!.sendMessage(this.text)
    for (const member of state.members) {
      await expectNext(real.clients.get(member)!, push({ cmd: Command.NEW_MSG, p1: real.ids.get(this.user)!, data: this.text }))
    }
    if (this.text.length > 0) state.history.push(`${nickOf(real, this.user)}: ${this.text}`)
  }
  toString = () => `say(${this.user}, ${JSON.stringify(this.text)})`
}

class Leave implements fc.AsyncCommand<Model, Real> {
  constructor(readonly user: number) {}
  check = (m: Readonly<Model>) => m.roomOf.has(this.user)
  async run(m: Model, real: Real) {
    const roomName = m.roomOf.get(this.user)!
    const state = m.rooms.get(roomName)!
    const c = real.clients.get(this.user)!
    c.close()
    await c.closed
    real.clients.delete(this.user)
    m.roomOf.delete(this.user)
    state.members.splice(state.members.indexOf(this.user), 1)
    for (const member of state.members) {
      await expectNext(real.clients.get(member)!, push({ cmd: Command.DEL_USER, p1: real.ids.get(this.user)!, data: nickOf(real, this.user) }))
    }
    if (state.members.length === 0) m.rooms.delete(roomName)
    await settled(real)
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

describe("chat: model-based (join / message / leave across several clients, real sockets)", () => {
  it.live(
    "every client sees exactly what the reference model predicts",
    () =>
      Effect.gen(function* () {
        const { url, handle } = yield* startChat()
        let run = 0
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(commands, async (cmds) => {
              const real: Real = { url, server: handle, run: run++, clients: new Map(), ids: new Map() }
              try {
                await fc.asyncModelRun(() => ({ model: { roomOf: new Map(), rooms: new Map() }, real }), cmds)
                // Nobody got anything the model did not predict.
                await Bun.sleep(30)
                for (const c of real.clients.values()) expect(c.pending().map(show)).toEqual([])
              } finally {
                for (const c of real.clients.values()) c.close()
                real.clients.clear()
                await settled(real)
              }
            }),
            { numRuns: 20, seed: 42 }
          )
        )
      }),
    30_000
  )
})
