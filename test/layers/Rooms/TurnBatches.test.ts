import { describe, expect } from "bun:test"
import { Effect, FastCheck } from "effect"
import {
  type BatchFrame,
  decodeBatch,
  decodeEnvelope,
  EnvelopeKind,
  envelopeHeader
} from "../../../layers/Cluster/Envelope.ts"
import { TurnBatches } from "../../../layers/Rooms/TurnBatches.ts"
import { it } from "../../support/effect.ts"

const header = envelopeHeader("node-a")
const framesOf = (envelope: Uint8Array): Array<BatchFrame> => {
  const decoded = decodeEnvelope(envelope)!
  if (decoded.kind === EnvelopeKind.batch) return decodeBatch(decoded.body)!
  return [decoded.kind === EnvelopeKind.text ? new TextDecoder().decode(decoded.body) : decoded.body.slice()]
}
const show = (frame: BatchFrame) => (typeof frame === "string" ? frame : `bin ${[...frame].join(",")}`)

describe("TurnBatches", () => {
  it.effect(
    "sends every frame once, in publish order across rooms, each batch within the byte limit unless it holds one frame (property)",
    () =>
      Effect.sync(() => {
        const publish = FastCheck.record({
          room: FastCheck.constantFrom("r", "s"),
          frame: FastCheck.oneof(
            FastCheck.string({ unit: "grapheme", maxLength: 300 }),
            FastCheck.uint8Array({ maxLength: 300 })
          )
        })
        FastCheck.assert(
          FastCheck.property(
            FastCheck.array(publish, { maxLength: 60 }),
            FastCheck.integer({ min: 64, max: 2000 }),
            (ops, limit) => {
              const sent: Array<{ room: string; frame: string }> = []
              const batches = new TurnBatches(
                header,
                (room, envelope, count) => {
                  const frames = framesOf(envelope)
                  expect(frames.length).toBe(count)
                  if (count > 1) expect(envelope.length).toBeLessThanOrEqual(limit)
                  for (const frame of frames) sent.push({ room, frame: show(frame) })
                },
                limit
              )
              for (const { room, frame } of ops) {
                const reused = typeof frame === "string" ? frame : frame.slice()
                batches.add(room, reused)
                // The caller may reuse its buffer once add returned: what was queued must not change.
                if (typeof reused !== "string") reused.fill(0)
              }
              batches.flush()
              expect(sent).toEqual(ops.map(({ room, frame }) => ({ room, frame: show(frame) })))
            }
          )
        )
      })
  )
})
