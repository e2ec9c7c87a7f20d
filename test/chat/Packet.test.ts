import { describe, expect, test } from "bun:test"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import {
  Command,
  decodeFrame,
  encodeNewMessage,
  encodePacket,
  FRAME_SIGNATURE,
  HEADER_BYTES,
  packet,
  readPacket,
  TPacket,
  TPacketFromBytes
} from "../../src/chat/Packet.ts"

const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })
const anyPacket = fc.record({ uid: int32, cmd: int32, p1: int32, p2: int32, data: fc.uint8Array({ maxLength: 300 }) })

describe("tPacket codec", () => {
  test('the header is 24 bytes: "Ej8@", then uid, size, cmd, p1, p2 as little-endian int32', () => {
    const bytes = encodePacket({
      uid: 0x01020304,
      cmd: Command.NEW_MSG,
      p1: -1,
      p2: 0x1000,
      data: new TextEncoder().encode("hi")
    })
    expect(Buffer.from(bytes).toString("hex")).toBe(
      "456a3840" + "04030201" + "1a000000" + "07000000" + "ffffffff" + "00100000" + "6869"
    )
  })

  test("round trip: decode(encode(p)) = p, and size = 24 + data length", () =>
    fc.assert(
      fc.property(anyPacket, (p) => {
        const bytes = encodePacket(p)
        expect(new DataView(bytes.buffer).getInt32(8, true)).toBe(HEADER_BYTES + p.data.length)
        const decoded = decodeFrame(bytes)
        expect(Either.isRight(decoded)).toBe(true)
        expect(Either.getOrThrow(decoded)).toEqual(p)
      })
    ))

  test("round trip through the Schema with packets derived from the schema itself", () =>
    fc.assert(
      fc.property(Arbitrary.make(TPacket), (p) => {
        const fitted = { ...p, uid: p.uid | 0, cmd: p.cmd | 0, p1: p.p1 | 0, p2: p.p2 | 0 }
        const bytes = Schema.encodeSync(TPacketFromBytes)(fitted)
        expect(Schema.decodeSync(TPacketFromBytes)(bytes)).toEqual(fitted)
      })
    ))

  test("the broadcast's _NEW_MSG encoder writes what encodePacket writes", () =>
    fc.assert(
      fc.property(int32, fc.uint8Array({ maxLength: 300 }), (sender, text) => {
        const expected = encodePacket(packet(Command.NEW_MSG, { p1: sender, data: text }))
        expect([...encodeNewMessage(sender, text)]).toEqual([...expected])
      })
    ))

  test("random bytes never make the decoder throw; whatever it accepts re-encodes to the same bytes", () =>
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const decoded = decodeFrame(bytes)
        if (Either.isRight(decoded)) expect([...encodePacket(decoded.right)]).toEqual([...bytes])
      }),
      { numRuns: 2000 }
    ))

  test("readPacket (the server's hot path) and the full Schema decode agree on any bytes", () =>
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 80 }),
          anyPacket.map(encodePacket),
          fc
            .tuple(anyPacket.map(encodePacket), fc.nat(), fc.integer({ min: 0, max: 255 }))
            .map(([bytes, at, value]) => {
              bytes[at % bytes.length] = value
              return bytes
            })
        ),
        (bytes) => {
          const fast = readPacket(bytes)
          const full = decodeFrame(bytes)
          expect(Either.isRight(fast)).toBe(Either.isRight(full))
          if (Either.isRight(fast) && Either.isRight(full)) expect(fast.right).toEqual(full.right)
        }
      ),
      { numRuns: 2000 }
    ))

  test("random bytes behind a valid signature never throw either", () =>
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (tail) => {
        const bytes = new Uint8Array(4 + tail.length)
        bytes.set(FRAME_SIGNATURE)
        bytes.set(tail, 4)
        const result = readPacket(bytes)
        if (Either.isRight(result)) expect(HEADER_BYTES + result.right.data.length).toBe(bytes.length)
      }),
      { numRuns: 2000 }
    ))

  test("a size field that disagrees with the frame length is detected", () =>
    fc.assert(
      fc.property(anyPacket, int32, (p, size) => {
        const bytes = encodePacket(p)
        fc.pre(size !== bytes.length)
        new DataView(bytes.buffer).setInt32(8, size, true)
        expect(readPacket(bytes)).toEqual(Either.left("size"))
      })
    ))

  test("truncated or extended frames are detected", () =>
    fc.assert(
      fc.property(anyPacket, fc.integer({ min: 1, max: 30 }), fc.boolean(), (p, n, cut) => {
        const bytes = encodePacket(p)
        const changed = cut
          ? bytes.subarray(0, Math.max(0, bytes.length - n))
          : Uint8Array.from([...bytes, ...new Uint8Array(n)])
        expect(Either.isLeft(readPacket(changed))).toBe(true)
      })
    ))

  test("frames shorter than the header or with another signature are refused", () => {
    expect(readPacket(new Uint8Array(23))).toEqual(Either.left("short"))
    const bytes = encodePacket({ uid: 1, cmd: 0, p1: 0, p2: 0, data: new Uint8Array(0) })
    bytes[3] = 0x41
    expect(readPacket(bytes)).toEqual(Either.left("signature"))
    expect(Either.isLeft(decodeFrame(bytes))).toBe(true)
  })

  test("a frame that is a view into a larger buffer decodes from its own offset", () => {
    const packet = encodePacket({ uid: 5, cmd: Command.SET_ROOM, p1: 0, p2: 0, data: new TextEncoder().encode("room") })
    const big = new Uint8Array(packet.length + 10)
    big.set(packet, 7)
    const decoded = readPacket(big.subarray(7, 7 + packet.length))
    expect(Either.getOrThrow(decoded).uid).toBe(5)
  })
})
