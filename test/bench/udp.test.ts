import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { measure, startForwarder } from "../../bench/scenarios/udp.ts"
import { it } from "../support/effect.ts"

/** The udp bench scenario in miniature: both forwarders start and forward; correctness only, never speed. */
describe("bench: udp scenario smoke", () => {
  for (const mode of ["raw", "proxy"] as const) {
    it.live(
      `the ${mode} forwarder forwards datagrams and the measurement reads them`,
      () =>
        Effect.gen(function* () {
          const forwarder = yield* Effect.acquireRelease(
            Effect.promise(() => startForwarder(mode)),
            (f) => Effect.promise(() => f.stop())
          )
          const run = yield* Effect.promise(() => measure(forwarder, 64, 50, 200))
          expect(run.packetsPerSec).toBeGreaterThan(0)
          expect(Number.isFinite(run.cpuUsPerPacket)).toBe(true)
        }),
      20_000
    )
  }
})
