import { describe, expect, test } from "bun:test"
import type { Connection } from "../../layers/Transport/Transport.ts"
import { ListedJoins } from "../../src/chat/ListedJoins.ts"
import { Command, encodePacket, packet } from "../../src/chat/Packet.ts"

const user = (cmd: number, id: number) => encodePacket(packet(cmd, { p1: id, data: new Uint8Array(0) }))
const joiner = (name: string) => ({ name }) as unknown as Connection<unknown>

describe("chat: members listed to joiners on a cluster node", () => {
  test("a late _NEW_USER skips whoever listed that member; the first joiner's go to nobody; a leave resets", () => {
    const listed = new ListedJoins()
    const [jo, kim] = [joiner("jo"), joiner("kim")]
    listed.listed(jo, [1, 2], true)
    // Kim lists 1 (known since jo's listing) and 3 (not yet announced here).
    listed.listed(kim, [1, 3], false)
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
    listed.listed(kim, [5], false)
    expect(listed.recipients(notPacket)).toBe("all")
  })
})
