import { describe, expect } from "bun:test"
import { Effect, FastCheck, Logger, LogLevel } from "effect"
import { it } from "../support/effect.ts"
import { type Client, connectHydrogen, ok, post, readerKey, startTestHydrogen, type TestHydrogen } from "./support.ts"

type Channel = "a" | "b"
type Step =
  | {
      readonly kind: "subscribe"
      readonly client: number
      readonly channel: Channel
      readonly filtered: boolean
      readonly high: boolean
    }
  | { readonly kind: "unsubscribe"; readonly client: number; readonly channel: Channel }
  | {
      readonly kind: "publish"
      readonly events: ReadonlyArray<{ readonly channel: Channel; readonly k: number; readonly high: boolean }>
    }

const channel = FastCheck.constantFrom<Channel>("a", "b")
const client = FastCheck.integer({ min: 0, max: 2 })
const step: FastCheck.Arbitrary<Step> = FastCheck.oneof(
  {
    weight: 3,
    arbitrary: FastCheck.record({
      kind: FastCheck.constant("subscribe" as const),
      client,
      channel,
      filtered: FastCheck.boolean(),
      high: FastCheck.boolean()
    })
  },
  { weight: 1, arbitrary: FastCheck.record({ kind: FastCheck.constant("unsubscribe" as const), client, channel }) },
  {
    weight: 3,
    arbitrary: FastCheck.record({
      kind: FastCheck.constant("publish" as const),
      events: FastCheck.array(
        FastCheck.record({ channel, k: FastCheck.integer({ min: 0, max: 9 }), high: FastCheck.boolean() }),
        { minLength: 1, maxLength: 6 }
      )
    })
  }
)

interface ModelSubscription {
  readonly filtered: boolean
  readonly high: boolean
}

/** What each client should see for one batch: high events, then normal ones to high subscriptions, then the rest. */
const expectedFor = (
  subscriptions: Map<Channel, ModelSubscription>,
  events: ReadonlyArray<{ channel: Channel; k: number; high: boolean; label: string }>
) => {
  const wants = (e: { channel: Channel; k: number }) => {
    const s = subscriptions.get(e.channel)
    return s !== undefined && (!s.filtered || e.k >= 5)
  }
  const high = events.filter((e) => e.high && wants(e))
  const normalToHigh = events.filter((e) => !e.high && wants(e) && subscriptions.get(e.channel)!.high)
  const normalToNormal = events.filter((e) => !e.high && wants(e) && !subscriptions.get(e.channel)!.high)
  return [...high, ...normalToHigh, ...normalToNormal].map((e) => e.label)
}

/** Reads events up to the marker event of round `round`; returns the labels before it. */
const untilMarker = (ws: Client, marker: string, round: number) =>
  Effect.gen(function* () {
    const labels: Array<string> = []
    while (true) {
      const message = yield* ws.nextJson()
      if (message.type !== "event") continue
      if (message.channel === marker) {
        if (message.data.round === round) return labels
        continue
      }
      labels.push(message.data.label)
    }
  })

/** One run on a shared server: its own clients and channels named `<run>.a`, `<run>.b`, `<run>.marker`. */
const runSteps = (hydrogen: TestHydrogen, steps: ReadonlyArray<Step>, run: string) =>
  Effect.gen(function* () {
    const name = (channel: Channel) => `${run}.${channel}`
    const marker = `${run}.marker`
    const clients = yield* Effect.forEach([0, 1, 2], () => connectHydrogen(hydrogen, readerKey))
    const model = [0, 1, 2].map(() => new Map<Channel, ModelSubscription>())
    for (const ws of clients) yield* ok(ws, "subscriptions", "subscribe", { channel: marker })
    let round = 0
    let label = 0
    for (const s of steps) {
      if (s.kind === "subscribe") {
        yield* ok(clients[s.client]!, "subscriptions", "subscribe", {
          channel: name(s.channel),
          priority: s.high ? "high" : "normal",
          ...(s.filtered ? { filter: { k: { gte: 5 } } } : {})
        })
        model[s.client]!.set(s.channel, { filtered: s.filtered, high: s.high })
      } else if (s.kind === "unsubscribe") {
        yield* ok(clients[s.client]!, "subscriptions", "unsubscribe", { channel: name(s.channel) })
        model[s.client]!.delete(s.channel)
      } else {
        const events = s.events.map((e) => ({ ...e, label: `e${label++}` }))
        const batch = yield* post(hydrogen, "/api/batch", {
          publications: events.map((e) => ({
            channel: name(e.channel),
            action: "x",
            priority: e.high ? "high" : "normal",
            data: { k: e.k, label: e.label }
          }))
        })
        expect(batch.status).toBe(200)
        round++
        yield* post(hydrogen, "/api/publish", { channel: marker, action: "end", data: { round } })
        for (let i = 0; i < 3; i++)
          expect(yield* untilMarker(clients[i]!, marker, round)).toEqual(expectedFor(model[i]!, events))
      }
    }
  }).pipe(Effect.scoped, Effect.provide(Logger.minimumLogLevel(LogLevel.Warning)))

describe("hydrogen delivery model", () => {
  it.effect(
    "random subscribe / unsubscribe / publish steps match the reference model (filters, priorities), 200 runs in memory",
    () =>
      Effect.gen(function* () {
        // One server for every run (runs differ by channel names), so a run costs its steps only.
        const hydrogen = yield* startTestHydrogen()
        let run = 0
        yield* Effect.promise(() =>
          FastCheck.assert(
            FastCheck.asyncProperty(FastCheck.array(step, { minLength: 5, maxLength: 30 }), (steps) =>
              Effect.runPromise(runSteps(hydrogen, steps, `r${run++}`))
            ),
            { numRuns: 200 }
          )
        )
      }),
    60_000
  )
})
