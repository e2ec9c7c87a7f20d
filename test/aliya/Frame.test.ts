import { describe, expect, test } from "bun:test"
import { FastCheck as fc } from "effect"
import { aesGcmCipher, decodeBase64Lenient, desCompatCipher, encodeBase64Lines } from "../../src/aliya/Cipher.ts"
import { encodeFrame, FrameDecoder, MAGIC, MAX_BODY } from "../../src/aliya/Frame.ts"
import { encodeReply } from "../../src/aliya/Wire.ts"

const body = fc.oneof(
  { weight: 9, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: MAX_BODY - 10, maxLength: MAX_BODY }) }
)

const concat = (parts: ReadonlyArray<Uint8Array>) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.byteLength
  }
  return out
}

/** Cuts `bytes` at the given (sorted, deduplicated) positions. */
const split = (bytes: Uint8Array, cuts: ReadonlyArray<number>) => {
  const points = [...new Set(cuts.map((c) => c % (bytes.byteLength + 1)))].sort((a, b) => a - b)
  const chunks: Array<Uint8Array> = []
  let last = 0
  for (const p of [...points, bytes.byteLength]) {
    chunks.push(bytes.subarray(last, p))
    last = p
  }
  return chunks
}

describe("aliya frame codec", () => {
  test("a header is MD5('aliya') and the zero-padded length", () => {
    const frame = encodeFrame(new TextEncoder().encode("0123456789"))!
    expect(new TextDecoder().decode(frame.subarray(0, 36))).toBe(`${MAGIC}0010`)
    expect(encodeFrame(new Uint8Array(MAX_BODY + 1))).toBeUndefined()
  })

  test("any split of any frame sequence decodes to the same bodies", () => {
    fc.assert(
      fc.property(fc.array(body, { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 40 }), (bodies, cuts) => {
        const stream = concat(bodies.map((b) => encodeFrame(b)!))
        const decoder = new FrameDecoder()
        const out: Array<Uint8Array> = []
        for (const chunk of split(stream, cuts)) {
          const r = decoder.push(chunk)
          expect(r.badHeader).toBe(false)
          out.push(...r.frames)
        }
        expect(out.map((b) => Buffer.from(b).toString("hex"))).toEqual(
          bodies.map((b) => Buffer.from(b).toString("hex"))
        )
        expect(decoder.buffered).toBe(0)
      })
    )
  })

  test("garbage never throws: it yields whole frames or a bad header, and buffers at most one frame", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 10 }),
        fc.boolean(),
        (chunks, validStart) => {
          const decoder = new FrameDecoder()
          if (validStart) decoder.push(new TextEncoder().encode(MAGIC))
          for (const chunk of chunks) {
            const r = decoder.push(chunk)
            for (const f of r.frames) expect(f.byteLength).toBeLessThanOrEqual(MAX_BODY)
            expect(decoder.buffered).toBeLessThanOrEqual(36 + MAX_BODY)
          }
        }
      )
    )
  })

  test("a bad header is final", () => {
    const decoder = new FrameDecoder()
    expect(decoder.push(new TextEncoder().encode(`${"x".repeat(32)}0001a`)).badHeader).toBe(true)
    expect(decoder.push(encodeFrame(new Uint8Array(1))!).badHeader).toBe(true)
    expect(new FrameDecoder().push(new TextEncoder().encode(`${MAGIC}00-1`)).badHeader).toBe(true)
  })
})

describe("aliya body ciphers", () => {
  test("base64 lines are Python's encodebytes: 76 characters a line, each ending in a newline", () => {
    expect(new TextDecoder().decode(encodeBase64Lines(new Uint8Array(0)))).toBe("")
    const text = new TextDecoder().decode(encodeBase64Lines(new Uint8Array(100)))
    expect(text.split("\n").map((l) => l.length)).toEqual([76, 60, 0])
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 500 }), fc.array(fc.nat(), { maxLength: 5 }), (bytes, noise) => {
        const encoded = Buffer.from(encodeBase64Lines(bytes)).toString("latin1")
        // Characters outside the alphabet are ignored, as by Python's decodebytes.
        const noisy = noise.reduce(
          (s, n) => s.slice(0, n % (s.length + 1)) + " \r" + s.slice(n % (s.length + 1)),
          encoded
        )
        expect(Buffer.from(decodeBase64Lenient(Buffer.from(noisy, "latin1"))!).equals(Buffer.from(bytes))).toBe(true)
      })
    )
  })

  test("both ciphers round-trip; garbage and tampering give undefined, never a throw", () => {
    const ciphers = [
      aesGcmCipher(new Uint8Array(32).fill(7)),
      desCompatCipher(Buffer.from("abcdefgh"), Buffer.from("12345678"))
    ]
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.uint8Array({ maxLength: 200 }), (plaintext, garbage) => {
        for (const cipher of ciphers) {
          const sealed = cipher.seal(plaintext)
          expect(Buffer.from(cipher.open(sealed)!).equals(Buffer.from(plaintext))).toBe(true)
          cipher.open(garbage)
        }
      })
    )
    const aes = ciphers[0]!
    const sealed = Buffer.from(aes.seal(new TextEncoder().encode("{}"))).toString("latin1")
    const tampered = (sealed[20] === "A" ? "B" : "A").padStart(21, sealed.slice(0, 20))
    expect(aes.open(Buffer.from(tampered + sealed.slice(21), "latin1"))).toBeUndefined()
    expect(sealed).not.toBe(Buffer.from(aes.seal(new TextEncoder().encode("{}"))).toString("latin1"))
  })

  test("replies never carry true, false or null (the original client eval()s them)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = encodeReply({ status: 0, message: "ok", data: { value, flag: true, none: null } })
        const walk = (v: unknown): void => {
          expect(v === null || typeof v === "boolean").toBe(false)
          if (v && typeof v === "object") for (const x of Object.values(v)) walk(x)
        }
        walk(JSON.parse(text))
      })
    )
  })

  test("a reply is encoded as the Python-safe replacer would, whether or not it holds true, false or null", () => {
    const pythonSafe = (_key: string, value: unknown) =>
      value === true ? 1 : value === false ? 0 : value === null || value === undefined ? "" : value
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.array(fc.array(fc.integer()))), fc.integer(), (value, status) => {
        const reply = { status, message: "ok", random: "7", data: { value } }
        expect(encodeReply(reply)).toBe(JSON.stringify(reply, pythonSafe))
      })
    )
  })
})
