import { FastCheck as fc } from "effect"
import { startServer } from "../../bench/lib/servers.ts"
import { answers, echoes, MAX_ERROR_REPLY_BYTES } from "../answers.ts"
import type { FuzzProtocol, Violation } from "../lib/engine.ts"
import { judgeClose, Lanes } from "../lib/lanes.ts"
import { isUtf8 } from "../lib/mutate.ts"
import { type Frame, FuzzSocket, Opcode } from "../lib/ws.ts"

/**
 * tPacket chat (docs/chat.md): binary packets with a 24-byte header, broken headers, lying size
 * fields, unknown commands, text frames, huge data, floods, and handshakes in every order on fresh
 * connections. Each lane sits alone in its own room, so every frame it gets answers its own input.
 */

const MAGIC = "magic string :)"
const Command = { nop: 0, nick: 1, room: 2, ok: 3, error: 4, newMessage: 7 } as const

/** How a packet's bytes are broken on the way out (or not). */
type Damage =
  | { readonly op: "none" }
  | { readonly op: "cut"; readonly length: number }
  | { readonly op: "signature"; readonly byte: number }
  | { readonly op: "size"; readonly delta: number }
  | { readonly op: "asText" }

interface Packet {
  readonly uid: number
  readonly cmd: number
  readonly p1: number
  readonly p2: number
  /** Data: text, raw bytes, or `n` bytes of "x" (placeholder, expanded when sent). */
  readonly data: string | ReadonlyArray<number> | { readonly $huge: number }
  readonly damage: Damage
}

type ChatCase =
  | { readonly kind: "lane"; readonly packets: ReadonlyArray<Packet>; readonly repeat: number }
  | { readonly kind: "handshake"; readonly packets: ReadonlyArray<Packet> }

const damage: fc.Arbitrary<Damage> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ op: "none" as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("cut" as const), length: fc.nat(30) }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("signature" as const), byte: fc.integer({ min: 0, max: 255 }) })
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("size" as const), delta: fc.integer({ min: -30, max: 1_000_000 }) })
  },
  { weight: 1, arbitrary: fc.constant({ op: "asText" as const }) }
)

const data = fc.oneof(
  { weight: 6, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }) },
  { weight: 2, arbitrary: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom(MAGIC, "", "\u0000", "Ej8@") },
  { weight: 1, arbitrary: fc.constantFrom(64, 221, 4097, 70_000).map(($huge) => ({ $huge })) }
)

const int32 = fc.oneof(fc.integer({ min: -2, max: 300 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }))

const packet: fc.Arbitrary<Packet> = fc.record({
  uid: int32,
  cmd: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(0, 1, 2, 7) },
    { weight: 2, arbitrary: fc.integer({ min: 3, max: 8 }) },
    { weight: 1, arbitrary: int32 }
  ),
  p1: int32,
  p2: int32,
  data,
  damage
})

/** The proper opening: magic, a nick from a small pool (so nicks collide), a room. */
const opening = fc
  .tuple(fc.constantFrom("ann", "bob", "fz", "", "x".repeat(70)), fc.constantFrom("lobby", "room0", "", "r".repeat(70)))
  .map(([nick, room]) => [
    { uid: 0, cmd: Command.nop, p1: 0, p2: 0, data: MAGIC, damage: { op: "none" as const } },
    { uid: 1, cmd: Command.nick, p1: 0, p2: 0, data: nick, damage: { op: "none" as const } },
    { uid: 2, cmd: Command.room, p1: 0, p2: 0, data: room, damage: { op: "none" as const } }
  ])

const arbitrary: fc.Arbitrary<ChatCase> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("lane" as const),
      packets: fc.array(packet, { minLength: 1, maxLength: 3 }),
      repeat: fc.oneof(
        { weight: 40, arbitrary: fc.constant(1) },
        { weight: 1, arbitrary: fc.integer({ min: 20, max: 400 }) }
      )
    })
  },
  {
    weight: 1,
    // The opening, shuffled and interleaved with other packets: handshakes out of order.
    arbitrary: fc
      .tuple(opening, fc.array(packet, { maxLength: 3 }), fc.nat(2))
      .chain(([steps, extra, keep]) => fc.shuffledSubarray([...steps.slice(0, keep + 1), ...extra], { minLength: 1 }))
      .map((packets) => ({ kind: "handshake" as const, packets }))
  }
)

const encoder = new TextEncoder()
const dataBytes = (value: Packet["data"]): Uint8Array =>
  typeof value === "string"
    ? encoder.encode(value)
    : Array.isArray(value)
      ? Uint8Array.from(value)
      : new Uint8Array((value as { $huge: number }).$huge).fill(0x78)

const encode = (item: Packet): { opcode: number; bytes: Uint8Array; invalidUtf8Text: boolean } => {
  const body = dataBytes(item.data)
  const bytes = Buffer.alloc(24 + body.length)
  bytes.write("Ej8@", 0, "latin1")
  bytes.writeInt32LE(item.uid | 0, 4)
  bytes.writeInt32LE(bytes.length, 8)
  bytes.writeInt32LE(item.cmd | 0, 12)
  bytes.writeInt32LE(item.p1 | 0, 16)
  bytes.writeInt32LE(item.p2 | 0, 20)
  bytes.set(body, 24)
  switch (item.damage.op) {
    case "none":
      return { opcode: Opcode.binary, bytes, invalidUtf8Text: false }
    case "cut":
      return {
        opcode: Opcode.binary,
        bytes: bytes.subarray(0, Math.min(bytes.length, item.damage.length)),
        invalidUtf8Text: false
      }
    case "signature":
      bytes[item.damage.byte % 4] = item.damage.byte
      return { opcode: Opcode.binary, bytes, invalidUtf8Text: false }
    case "size":
      bytes.writeInt32LE((bytes.length + item.damage.delta) | 0, 8)
      return { opcode: Opcode.binary, bytes, invalidUtf8Text: false }
    case "asText":
      return { opcode: Opcode.text, bytes, invalidUtf8Text: !isUtf8(bytes) }
  }
}

const packetOf = (bytes: Uint8Array, uid: number, cmd: number, p2 = 0) => {
  const out = Buffer.alloc(24 + bytes.length)
  out.write("Ej8@", 0, "latin1")
  out.writeInt32LE(uid, 4)
  out.writeInt32LE(out.length, 8)
  out.writeInt32LE(cmd, 12)
  out.writeInt32LE(p2, 20)
  out.set(bytes, 24)
  return out
}

/** Every frame the server sends must be a well-formed packet with a server command; errors carry a documented reason. */
const judgeFrames = (frames: ReadonlyArray<Frame>, inputs: ReadonlyArray<string>): Array<Violation> => {
  const violations: Array<Violation> = []
  for (const frame of frames) {
    const p = frame.payload
    if (
      frame.opcode !== Opcode.binary ||
      p.length < 24 ||
      p.toString("latin1", 0, 4) !== "Ej8@" ||
      p.readInt32LE(8) !== p.length
    ) {
      violations.push({
        invariant: "documented-answer",
        detail: `not a tPacket: opcode ${frame.opcode}, ${p.length} bytes`
      })
      continue
    }
    const cmd = p.readInt32LE(12)
    if (!(answers.chat.serverCommands as ReadonlyArray<number>).includes(cmd)) {
      violations.push({ invariant: "documented-answer", detail: `server sent command ${cmd}` })
    } else if (cmd === Command.error) {
      const reason = p.readInt32LE(20)
      if (!(answers.chat.errorReasons as ReadonlyArray<number>).includes(reason)) {
        violations.push({ invariant: "documented-answer", detail: `_RESP_ERROR with undocumented reason ${reason}` })
      }
      const text = p.subarray(24).toString()
      if (text.length > MAX_ERROR_REPLY_BYTES || echoes(text, inputs)) {
        violations.push({ invariant: "no-echo", detail: `_RESP_ERROR carries ${text.length} bytes`, defect: "12.2" })
      }
    }
  }
  return violations
}

export const chat: FuzzProtocol<ChatCase> = {
  name: "chat",
  title: "tPacket chat WebSocket",
  arbitrary,
  describe: (testCase) => testCase,
  start: async () => {
    const server = await startServer("chat", { env: { LOG_LEVEL: "error" } })
    const url = (server.target as { url: string }).url
    let sentinel = 0x40000000
    const exchange = async (socket: FuzzSocket, send: () => void) => {
      const uid = ++sentinel
      send()
      // Command 3 is not a client command: every state after the magic answers it with _RESP_ERROR and our uid.
      socket.binary(packetOf(new Uint8Array(0), uid, Command.ok))
      return socket.until(
        (f) => f.opcode === Opcode.binary && f.payload.length >= 24 && f.payload.readInt32LE(4) === uid,
        20_000
      )
    }
    const join = async (nick: string, room: string, localAddress: string) => {
      const socket = await FuzzSocket.open({ url, localAddress })
      if (!socket.isOpen) throw new Error(`chat refused a connection: ${JSON.stringify(socket.closed)}`)
      socket.binary(packetOf(encoder.encode(MAGIC), 0, Command.nop))
      socket.binary(packetOf(encoder.encode(nick), 1, Command.nick))
      socket.binary(packetOf(encoder.encode(room), 2, Command.room))
      const joined = await socket.until((f) => f.payload.length >= 24 && f.payload.readInt32LE(4) === 2, 10_000)
      if (!joined.ended || joined.frames.at(-1)!.payload.readInt32LE(12) !== Command.ok)
        throw new Error(`chat did not admit ${nick}`)
      return socket
    }
    const lanes = new Lanes((lane, generation) => join(`lane${lane}-${generation}`, `room${lane}`, "127.0.0.1"))
    let canary = await join("canary", "canary-room", "127.0.0.2")
    let canaryRound = 0
    return {
      pids: server.pids,
      lanes: 16,
      execute: async (lane, testCase) => {
        const socket = testCase.kind === "lane" ? await lanes.get(lane) : await FuzzSocket.open({ url })
        const sent = testCase.packets.map(encode)
        const inputs = sent.map((item) => Buffer.from(item.bytes).toString())
        const repeat = testCase.kind === "lane" ? testCase.repeat : 1
        const result = await exchange(socket, () => {
          for (let i = 0; i < repeat; i++) for (const item of sent) socket.send(item.opcode, item.bytes)
        })
        const violations = judgeFrames(result.frames, inputs)
        if (!result.ended && socket.closed) {
          const invalidUtf8Text = sent.some((item) => item.invalidUtf8Text)
          violations.push(
            ...judgeClose(socket.closed.code, answers.chat.closes, {
              invalidUtf8Text,
              depth: 0,
              what: `${sent.length} packet(s) ×${repeat}`
            })
          )
        }
        if (testCase.kind === "handshake") socket.close()
        return violations
      },
      canary: async () => {
        if (!canary.isOpen) {
          const closed = canary.closed
          canary = await join("canary", "canary-room", "127.0.0.2")
          throw new Error(`the canary connection was closed: ${JSON.stringify(closed)}`)
        }
        const text = `ping ${++canaryRound}`
        canary.binary(packetOf(encoder.encode(text), 9, Command.newMessage))
        const echo = await canary.until(
          (f) =>
            f.payload.length >= 24 &&
            f.payload.readInt32LE(12) === Command.newMessage &&
            f.payload.subarray(24).toString() === text,
          10_000
        )
        if (!echo.ended) throw new Error(`canary closed: ${JSON.stringify(canary.closed)}`)
      },
      stop: async () => {
        lanes.closeAll()
        canary.close()
        await server.stop()
      }
    }
  }
}
