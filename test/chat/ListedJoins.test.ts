import { describe, expect, test } from "bun:test"
import type { Connection } from "../../layers/Transport/Transport.ts"
import { ListedJoins } from "../../src/chat/ListedJoins.ts"
import { Command, encodePacket, packet } from "../../src/chat/Packet.ts"

const user = (cmd: number, id: number) => encodePacket(packet(cmd, { p1: id, data: new Uint8Array(0) }))
const joiner = (name: string) => ({ name }) as unknown as Connection<unknown>
const members = (...ids: ReadonlyArray<number>) => ids.map((id) => ({ id, nick: new TextEncoder().encode(`u${id}`) }))
const told = (changes: ReturnType<ListedJoins["catchUp"]>) =>
  changes.map((change) => `${change.cmd === Command.NEW_USER ? "+" : "-"}${change.id}${change.skip ? "*" : ""}`)

describe("chat: members listed to joiners on a cluster node", () => {
  test("a late _NEW_USER skips whoever listed that member; the first joiner's go to nobody; a leave resets", () => {
    const listed = new ListedJoins()
    const [jo, kim] = [joiner("jo"), joiner("kim")]
    listed.listed(jo, members(1, 2), true)
    // Kim lists 1 (known since jo's listing) and 3 (not yet announced here).
    listed.listed(kim, members(1, 3), false)
    expect(listed.recipients(user(Command.NEW_USER, 1))).toBe("none")
    expect(listed.recipients(user(Command.NEW_USER, 3))).toEqual(new Set([kim]))
    expect(listed.recipients(user(Command.NEW_USER, 3))).toBe("all")
    expect(listed.recipients(user(Command.DEL_USER, 2))).toBe("all")
    expect(listed.recipients(user(Command.NEW_USER, 2))).toBe("all")
    // Anything else (messages, text, a binary frame that is no tPacket) goes to everyone.
    expect(listed.recipients(user(Command.NEW_MSG, 4))).toBe("all")
    expect(listed.recipients("text")).toBe("all")
    const notPacket = user(Command.NEW_USER, 5)
    notPacket[0] = 0
    listed.listed(kim, members(5), false)
    expect(listed.recipients(notPacket)).toBe("all")
  })

  test("a _DEL_USER of a member nobody here was told of goes to nobody", () => {
    const listed = new ListedJoins()
    listed.listed(joiner("jo"), members(1), true)
    expect(listed.recipients(user(Command.DEL_USER, 2))).toBe("none")
    expect(listed.recipients(user(Command.DEL_USER, 1))).toBe("all")
    expect(listed.recipients(user(Command.DEL_USER, 1))).toBe("none")
  })

  test("catch-up: the joins and leaves missed, once, this node's own members skipped; late frames about them not again", () => {
    const listed = new ListedJoins()
    const [jo, kim] = [joiner("jo"), joiner("kim")]
    // 1 and 2 listed to jo (first here); 9 is jo's own node's member; kim listed 3, whose _NEW_USER has not come.
    listed.listed(jo, members(1, 2), true)
    expect(listed.recipients(user(Command.NEW_USER, 9))).toBe("all")
    listed.listed(kim, members(3), false)
    // Now: 2 left, 4 joined, 3 still there (only jo was not told), 9 here.
    expect(told(listed.catchUp(members(1, 3, 9, 4), new Set([9])))).toEqual(["-2", "+3*", "+4"])
    expect(listed.catchUp(members(1, 3, 9, 4), new Set([9]))).toEqual([])
    // The frames lost in the outage that still come late: nobody gets them again.
    expect(listed.recipients(user(Command.DEL_USER, 2))).toBe("none")
    expect(listed.recipients(user(Command.NEW_USER, 4))).toBe("none")
    expect(listed.recipients(user(Command.NEW_USER, 3))).toBe("none")
    // A member that left after the catch-up: told once.
    expect(listed.recipients(user(Command.DEL_USER, 4))).toBe("all")
    expect(told(listed.catchUp(members(1, 3, 9), new Set([9])))).toEqual([])
    expect(listed.forget(1)).toBe(true)
    expect(listed.forget(1)).toBe(false)
  })
})
