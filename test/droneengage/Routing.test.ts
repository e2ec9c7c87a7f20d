import { describe, expect } from "bun:test"
import { Effect, Either } from "effect"
import { encodeBinaryFrame, parseFrame } from "../../src/droneengage/Wire.ts"
import { it } from "../support/effect.ts"
import { connectUnit, seedAccounts, startStack, TestServices, type Unit } from "./harness.ts"

/** Every frame a unit received before the pong of a ping sent now: frames arrive in order, so that is all it was sent. */
const received = (unit: Unit) =>
  Effect.gen(function* () {
    yield* unit.send(JSON.stringify({ ty: "s", mt: 9005, ms: { probe: true } }))
    const frames: Array<string | Uint8Array> = []
    while (true) {
      const frame = yield* unit.next()
      if (typeof frame === "string" && frame.includes('"OK:pong"')) return frames
      frames.push(frame)
    }
  })

type Sender = "g1" | "d1"
interface Case {
  readonly label: string
  readonly from: Sender
  readonly message: { ty: "g" | "i"; tg?: string }
  readonly binary?: boolean
  readonly expect: ReadonlyArray<string>
}

const cases: ReadonlyArray<Case> = [
  { label: "ty g from a GCS", from: "g1", message: { ty: "g" }, expect: ["g2", "d1", "d2"] },
  { label: "ty g from an agent", from: "d1", message: { ty: "g" }, expect: ["g1", "g2"] },
  { label: "ty i without tg from a GCS", from: "g1", message: { ty: "i" }, expect: ["g2", "d1", "d2"] },
  { label: "ty i without tg from an agent", from: "d1", message: { ty: "i" }, expect: ["g1", "g2"] },
  { label: "_GCS_ from a GCS", from: "g1", message: { ty: "i", tg: "_GCS_" }, expect: ["g2"] },
  { label: "_GCS_ from an agent", from: "d1", message: { ty: "i", tg: "_GCS_" }, expect: ["g1", "g2"] },
  { label: "_GD_ from a GCS", from: "g1", message: { ty: "i", tg: "_GD_" }, expect: ["g2", "d1", "d2"] },
  { label: "_GD_ from an agent", from: "d1", message: { ty: "i", tg: "_GD_" }, expect: ["g1", "g2", "d2"] },
  { label: "_AGN_ from a GCS", from: "g1", message: { ty: "i", tg: "_AGN_" }, expect: ["d1", "d2"] },
  { label: "_AGN_ from an agent", from: "d1", message: { ty: "i", tg: "_AGN_" }, expect: ["d2"] },
  { label: "unit d2 from a GCS", from: "g1", message: { ty: "i", tg: "d2" }, expect: ["d2"] },
  { label: "unit d2 from an agent", from: "d1", message: { ty: "i", tg: "d2" }, expect: ["d2"] },
  { label: "unit g1 from an agent", from: "d1", message: { ty: "i", tg: "g1" }, expect: ["g1"] },
  { label: "unit g2 from a GCS", from: "g1", message: { ty: "i", tg: "g2" }, expect: ["g2"] },
  { label: "itself from a GCS", from: "g1", message: { ty: "i", tg: "g1" }, expect: [] },
  { label: "binary ty g from a GCS", from: "g1", message: { ty: "g" }, binary: true, expect: ["g2", "d1", "d2"] },
  { label: "binary ty g from an agent", from: "d1", message: { ty: "g" }, binary: true, expect: ["g1", "g2"] },
  {
    label: "binary _AGN_ from a GCS",
    from: "g1",
    message: { ty: "i", tg: "_AGN_" },
    binary: true,
    expect: ["d1", "d2"]
  },
  {
    label: "binary to unit g2 from an agent",
    from: "d1",
    message: { ty: "i", tg: "g2" },
    binary: true,
    expect: ["g2"]
  },
  {
    label: "binary _GD_ from an agent",
    from: "d1",
    message: { ty: "i", tg: "_GD_" },
    binary: true,
    expect: ["g1", "g2", "d2"]
  }
]

const body = (n: number) => Uint8Array.from({ length: 16 }, (_, i) => (i * 7 + n) & 0xff)

describe("DroneEngage routing matrix (memory transport, TestClock)", () => {
  it.effect("every ty/tg reaches exactly the original's receivers; other groups and accounts see nothing", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const units: Record<string, Unit> = {
        g1: yield* connectUnit(stack, "alpha", "g", "g1"),
        g2: yield* connectUnit(stack, "alpha", "g", "g2"),
        d1: yield* connectUnit(stack, "alpha", "d", "d1"),
        d2: yield* connectUnit(stack, "alpha", "d", "d2"),
        // Same account, other group; other account with the same unit names.
        other_group: yield* connectUnit(stack, "alpha", "g", "g3", "2"),
        beta_d2: yield* connectUnit(stack, "beta", "d", "d2"),
        beta_g1: yield* connectUnit(stack, "beta", "g", "g1")
      }
      for (const [n, c] of cases.entries()) {
        // The client's own sd and p are lies the relay must overwrite.
        const header = { ...c.message, mt: 1000 + n, ms: { n }, sd: "spoofed", p: 0x7fffffff }
        yield* units[c.from]!.send(c.binary ? encodeBinaryFrame(header, body(n)) : JSON.stringify(header))
      }
      const got: Record<string, Array<string>> = {}
      for (const [name, unit] of Object.entries(units)) {
        got[name] = []
        for (const frame of yield* received(unit)) {
          const parsed = Either.getOrThrow(parseFrame(frame))
          const n = (parsed.envelope.mt as number) - 1000
          const c = cases[n]!
          expect(parsed.envelope.sd).toBe(c.from)
          expect(parsed.envelope.p).toBe(0xffffffff)
          expect(parsed._tag).toBe(c.binary ? "Binary" : "Text")
          if (parsed._tag === "Binary") expect([...parsed.body]).toEqual([...body(n)])
          got[name].push(c.label)
        }
      }
      for (const name of Object.keys(units)) {
        const expected = cases.filter((c) => c.expect.includes(name)).map((c) => c.label)
        expect({ name, got: got[name]!.sort() }).toEqual({ name, got: expected.sort() })
      }
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("a unit target that is not in the group gets an error reply, not silence", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const g1 = yield* connectUnit(stack, "alpha", "g", "g1")
      yield* connectUnit(stack, "beta", "d", "d9")
      yield* g1.send(JSON.stringify({ ty: "i", tg: "d9", mt: 1, ms: {} }))
      expect(yield* g1.nextJson()).toEqual({
        ty: "s",
        sd: "_SYS_",
        mt: 9100,
        ms: { s: "ERR:target-not-found", em: 'no unit named "d9" in this group', mt: 1 }
      })
    }).pipe(Effect.provide(TestServices))
  )
})
