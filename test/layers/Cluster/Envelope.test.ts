import { describe, expect } from "bun:test"
import { Effect, FastCheck } from "effect"
import {
  bodyText,
  decodeEnvelope,
  EnvelopeKind,
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
          if (junk.length < 2 || junk[0]! > EnvelopeKind.left || junk.length < 2 + junk[1]!)
            expect(decoded).toBeUndefined()
        })
      )
      expect(() => envelopeHeader("é".repeat(200))).toThrow()
    })
  )
})
