import { describe, expect } from "bun:test"
import { Effect, FastCheck } from "effect"
import {
  BatchWriter,
  bodyText,
  decodeBatch,
  decodeEnvelope,
  EnvelopeKind,
  encodeBatch,
  encodeEnvelope,
  envelopeHeader,
  isFrom
} from "../../../layers/Cluster/Envelope.ts"
import { it } from "../../support/effect.ts"

const nodeId = FastCheck.string({ minLength: 1, maxLength: 40 })
const frame = FastCheck.oneof(
  FastCheck.string({ unit: "grapheme", maxLength: 200 }),
  FastCheck.uint8Array({ maxLength: 200 })
)

describe("cluster envelope", () => {
  it.effect(
    "round trip: kind, node id and frame come back unchanged; text stays text, bytes stay bytes (property)",
    () =>
      Effect.sync(() => {
        FastCheck.assert(
          FastCheck.property(nodeId, frame, (id, body) => {
            const kind = typeof body === "string" ? EnvelopeKind.text : EnvelopeKind.binary
            const bytes = encodeEnvelope(envelopeHeader(id), kind, body)
            const envelope = decodeEnvelope(bytes)!
            expect(envelope.kind).toBe(kind)
            expect(envelope.nodeId).toBe(id)
            if (typeof body === "string") expect(bodyText(envelope.body)).toBe(body)
            else expect([...envelope.body]).toEqual([...body])
            expect(isFrom(bytes, envelopeHeader(id))).toBe(true)
          })
        )
      })
  )

  it.effect("isFrom tells nodes apart; short or unknown-kind bytes decode to nothing (property)", () =>
    Effect.sync(() => {
      FastCheck.assert(
        FastCheck.property(nodeId, nodeId, FastCheck.uint8Array({ maxLength: 40 }), (a, b, junk) => {
          const bytes = encodeEnvelope(envelopeHeader(a), EnvelopeKind.text, "x")
          expect(isFrom(bytes, envelopeHeader(b))).toBe(a === b)
          const decoded = decodeEnvelope(junk)
          if (junk.length < 2 || junk[0]! > EnvelopeKind.batch || junk.length < 2 + junk[1]!)
            expect(decoded).toBeUndefined()
        })
      )
      expect(() => envelopeHeader("é".repeat(200))).toThrow()
    })
  )

  it.effect("batch round trip: every frame comes back in order, text as text and bytes as bytes (property)", () =>
    Effect.sync(() => {
      FastCheck.assert(
        FastCheck.property(nodeId, FastCheck.array(frame, { maxLength: 30 }), (id, frames) => {
          const bytes = encodeBatch(envelopeHeader(id), frames)
          const envelope = decodeEnvelope(bytes)!
          expect(envelope.kind).toBe(EnvelopeKind.batch)
          expect(envelope.nodeId).toBe(id)
          expect(isFrom(bytes, envelopeHeader(id))).toBe(true)
          const decoded = decodeBatch(envelope.body)!
          expect(decoded.map((f) => (typeof f === "string" ? f : [...f]))).toEqual(
            frames.map((f) => (typeof f === "string" ? f : [...f]))
          )
        })
      )
    })
  )

  it.effect("a truncated or corrupted batch decodes to nothing rather than to part of it (property)", () =>
    Effect.sync(() => {
      FastCheck.assert(
        FastCheck.property(FastCheck.array(frame, { minLength: 1, maxLength: 10 }), FastCheck.nat(), (frames, cut) => {
          const body = decodeEnvelope(encodeBatch(envelopeHeader("n"), frames))!.body
          // Cut inside the last frame (a cut on a frame boundary is a shorter batch, not a corrupt one).
          const last = frames[frames.length - 1]!
          const lastSize = 5 + (typeof last === "string" ? Buffer.byteLength(last) : last.length)
          expect(decodeBatch(body.subarray(0, body.length - 1 - (cut % (lastSize - 1))))).toBeUndefined()
          const badKind = body.slice()
          badKind[0] = EnvelopeKind.joined
          expect(decodeBatch(badKind)).toBeUndefined()
        })
      )
      expect(decodeBatch(new Uint8Array([0, 255, 255, 255, 255, 1]))).toBeUndefined()
    })
  )

  it.effect(
    "a batch written in place is byte for byte encodeBatch's, and a lone frame the plain envelope (property)",
    () =>
      Effect.sync(() => {
        FastCheck.assert(
          FastCheck.property(nodeId, FastCheck.array(frame, { minLength: 1, maxLength: 30 }), (id, frames) => {
            const header = envelopeHeader(id)
            // A small first estimate makes the buffer grow while frames are written.
            const writer = new BatchWriter(header, 0)
            for (const f of frames) writer.add(f)
            expect(writer.count).toBe(frames.length)
            const [only] = frames
            const expected =
              frames.length === 1 && only !== undefined
                ? encodeEnvelope(header, typeof only === "string" ? EnvelopeKind.text : EnvelopeKind.binary, only)
                : encodeBatch(header, frames)
            expect([...writer.finish()]).toEqual([...expected])
          })
        )
        const big = new BatchWriter(envelopeHeader("n"), 0)
        big.add("é".repeat(5000))
        big.add(new Uint8Array(9000).fill(7))
        expect(decodeBatch(decodeEnvelope(big.finish())!.body)!.map((f) => f.length)).toEqual([5000, 9000])
      })
  )
})
