import { describe, expect } from "bun:test"
import { Arbitrary, Duration, Effect, FastCheck, Layer, Schema } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { MemoryTaskStore } from "../../layers/Storage/MemoryTaskStore.ts"
import { MemoryDatagramNetwork, MemoryUdp } from "../../layers/Udp/MemoryUdp.ts"
import { makeTasks, TaskRequest } from "../../src/droneengage/Tasks.ts"
import { makeUdpProxy } from "../../src/droneengage/UdpProxy.ts"
import { answerUdpProxy, UdpProxyRequest } from "../../src/droneengage/UdpProxyMessage.ts"
import type { Envelope } from "../../src/droneengage/Wire.ts"
import { it } from "../support/effect.ts"

/** Property tests of the 9001-9004 and 9008 request codecs: any input gets an answer of the documented shape. */

const caller = { accountId: "acc-1", accountName: "alpha", unitName: "unit-1" }
const taskReasons = ["task-invalid", "task-too-large", "task-quota", "task-storage", "foreign-account"]
const anyBody = FastCheck.oneof(
  FastCheck.jsonValue(),
  FastCheck.string(),
  FastCheck.jsonValue().map((value) => JSON.stringify(value)),
  FastCheck.record(
    { ai: FastCheck.constantFrom("alpha", "acc-1", "beta", ""), mt: FastCheck.anything(), t: FastCheck.jsonValue() },
    { requiredKeys: [] }
  )
)
const run = <A>(effect: Effect.Effect<A>) => Effect.runPromise(effect)

describe("task request codec (9001-9004)", () => {
  it.live("any body gets Replies or a refusal with a documented reason and a short text, never a crash", () =>
    Effect.gen(function* () {
      const tasks = yield* makeTasks({ maxBodyBytes: 4096, maxTasksPerAccount: 1_000_000, maxLoadBytes: 1 << 30 })
      yield* Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(FastCheck.constantFrom(9001, 9002, 9003, 9004), anyBody, async (mt, ms) => {
            const outcome = await run(tasks.handle(caller, { ty: "s", mt, ms } as Envelope))
            if (outcome._tag === "Refused") {
              expect(taskReasons).toContain(outcome.reason)
              expect(outcome.text.length).toBeLessThanOrEqual(300)
            } else
              for (const frame of outcome.frames)
                expect(JSON.parse(frame)).toMatchObject({ ty: "i", tg: "unit-1", sd: "_SYS_" })
          }),
          { numRuns: 300 }
        )
      )
    }).pipe(Effect.provide(MemoryTaskStore))
  )

  it.live("every valid save of the caller's own account is answered Done and loads back with its type and body", () =>
    Effect.gen(function* () {
      const tasks = yield* makeTasks({ maxBodyBytes: 1 << 20, maxTasksPerAccount: 1_000_000, maxLoadBytes: 1 << 30 })
      const saves = Arbitrary.make(TaskRequest).map((request) => ({
        ...request,
        ai: "alpha",
        mt: request.mt ?? 1027,
        t: request.t === undefined ? { n: 1 } : JSON.parse(JSON.stringify(request.t) ?? "null"),
        lts: undefined
      }))
      yield* Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(saves, async (request) => {
            const saved = await run(tasks.handle(caller, { ty: "s", mt: 9002, ms: request } as Envelope))
            expect(saved._tag === "Replies" && JSON.parse(saved.frames[0]!).ms).toBe("Done")
            const { t: _body, ...filters } = request
            const loaded = await run(tasks.handle(caller, { ty: "s", mt: 9001, ms: filters } as Envelope))
            if (loaded._tag !== "Replies") throw new Error(`load refused: ${loaded.text}`)
            const last = JSON.parse(loaded.frames[loaded.frames.length - 1]!)
            expect([last.mt, last.ms]).toEqual([request.mt, request.t])
          }),
          { numRuns: 150 }
        )
      )
    }).pipe(Effect.provide(MemoryTaskStore))
  )
})

describe("UDP proxy request codec (9008)", () => {
  it.live("any valid request is answered with {socket1, socket2, en}; any other body with udp-proxy-invalid", () =>
    Effect.gen(function* () {
      const proxy = yield* makeUdpProxy({
        serverName: "relay",
        hostname: "0.0.0.0",
        publicHost: "relay.example",
        ports: undefined,
        allowFixedPorts: false,
        idleTimeout: Duration.minutes(5),
        stickyGrace: Duration.minutes(1),
        reapInterval: Duration.seconds(10),
        maxPairs: 4,
        maxPairsPerAccount: 4,
        packetsPerSecond: 100,
        bytesPerSecond: 100_000,
        peerLock: false
      })
      const isValid = Schema.is(UdpProxyRequest)
      const bodies = FastCheck.oneof(Arbitrary.make(UdpProxyRequest), FastCheck.jsonValue())
      yield* Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(bodies, async (ms) => {
            const outcome = await run(answerUdpProxy(proxy, caller, { ty: "s", mt: 9008, ms } as Envelope))
            if (!isValid(ms)) {
              expect(outcome).toMatchObject({ _tag: "Refused", reason: "udp-proxy-invalid" })
              return
            }
            if (outcome._tag !== "Replies") throw new Error(`refused: ${outcome.text}`)
            const reply = JSON.parse(outcome.frames[0]!)
            expect(reply).toMatchObject({ ty: "i", tg: "unit-1", sd: "_SYS_", mt: 9008 })
            expect(reply.ms.en).toBe(ms.en)
            expect(typeof reply.ms.socket1.port).toBe("number")
            expect(typeof reply.ms.socket2.address).toBe("string")
          }),
          { numRuns: 200 }
        )
      )
    }).pipe(Effect.provide(Layer.merge(MemoryUdp(new MemoryDatagramNetwork()), Metrics.Default)))
  )
})
