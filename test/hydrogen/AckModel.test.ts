import { describe, expect, test } from "bun:test"
import { Clock, Duration, Effect, FastCheck, Logger, LogLevel, TestClock, TestContext } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { makeAckTracker } from "../../src/hydrogen/Acks.ts"
import { eventId } from "../../src/hydrogen/EventIds.ts"
import { anonymous } from "../../src/hydrogen/Permissions.ts"
import { AckedEvent, type HydrogenConnection, Session } from "../../src/hydrogen/Session.ts"

const retryMillis = 2000
const maxAttempts = 3
const sessionCount = 3

type Step =
  | { readonly kind: "publish"; readonly to: ReadonlyArray<boolean>; readonly native: boolean }
  | { readonly kind: "ack"; readonly session: number; readonly event: number; readonly plain: boolean }
  | { readonly kind: "tick" }

const step: FastCheck.Arbitrary<Step> = FastCheck.oneof(
  {
    weight: 3,
    arbitrary: FastCheck.record({
      kind: FastCheck.constant("publish" as const),
      to: FastCheck.array(FastCheck.boolean(), { minLength: sessionCount, maxLength: sessionCount }),
      native: FastCheck.boolean()
    })
  },
  {
    weight: 5,
    arbitrary: FastCheck.record({
      kind: FastCheck.constant("ack" as const),
      session: FastCheck.nat(sessionCount - 1),
      // Mostly recent events, sometimes one never published.
      event: FastCheck.nat(30),
      plain: FastCheck.boolean()
    })
  },
  { weight: 2, arbitrary: FastCheck.record({ kind: FastCheck.constant("tick" as const) }) }
)

interface ModelEntry {
  attempts: number
  sentAt: number
}

/** What the tracker should hold: per session, pending event ordinal → attempts and last send. */
const runScript = (script: ReadonlyArray<Step>) =>
  Effect.gen(function* () {
    const settings = { ackRetryInterval: Duration.millis(retryMillis), ackMaxAttempts: maxAttempts } as Parameters<
      typeof makeAckTracker
    >[0]
    const metrics = yield* Metrics
    const acks = yield* makeAckTracker(settings, metrics)
    const sent = Array.from({ length: sessionCount }, () => [] as Array<string>)
    const sessions = sent.map((inbox, i) => {
      const connection = {
        isOpen: () => true,
        send: (text: string) => (inbox.push(text), "sent")
      } as unknown as HydrogenConnection
      return new Session(`s${i}`, anonymous, connection)
    })
    const model = sessions.map(() => new Map<number, ModelEntry>())
    const modelSent = sessions.map(() => [] as Array<string>)
    let next = 0
    let undeliverable = 0
    for (const s of script) {
      const now = yield* Clock.currentTimeMillis
      if (s.kind === "publish") {
        const ordinal = next++
        const event = new AckedEvent(ordinal, eventId("model", ordinal), "jobs", ordinal + 1, `event-${ordinal}`, now)
        s.to.forEach((to, i) => {
          if (!to) return
          acks.track(sessions[i]!, event, s.native)
          model[i]!.set(ordinal, { attempts: 1, sentAt: now })
          if (!s.native) modelSent[i]!.push(event.text)
        })
      } else if (s.kind === "ack") {
        const id = eventId("model", Math.max(0, next - 1 - s.event))
        const ordinal = Math.max(0, next - 1 - s.event)
        const session = sessions[s.session]!
        const taken = s.plain ? acks.ackPlain(session, `{"type":"ack","id":"${id}"}`) : acks.ack(session, id)
        expect(taken).toBe(model[s.session]!.delete(ordinal))
      } else {
        yield* TestClock.adjust(Duration.millis(retryMillis / 2))
        const swept = now + retryMillis / 2
        model.forEach((pending, i) => {
          for (const [ordinal, entry] of [...pending].sort(([a], [b]) => a - b)) {
            if (swept - entry.sentAt < retryMillis) continue
            if (entry.attempts >= maxAttempts) {
              pending.delete(ordinal)
              undeliverable++
            } else {
              modelSent[i]!.push(`event-${ordinal}`)
              pending.set(ordinal, { attempts: entry.attempts + 1, sentAt: swept })
            }
          }
        })
      }
      sessions.forEach((session, i) => {
        expect(session.pending.size).toBe(model[i]!.size)
        expect(session.pending.values().map((e) => [e.ordinal, e.attempts, e.sentAt])).toEqual(
          [...model[i]!].sort(([a], [b]) => a - b).map(([o, e]) => [o, e.attempts, e.sentAt])
        )
        expect(sent[i]).toEqual(modelSent[i]!)
      })
    }
    const text = yield* metrics.render
    const value = (series: string) =>
      Number(
        text
          .split("\n")
          .find((line) => line.startsWith(`${series} `))
          ?.slice(series.length + 1) ?? 0
      )
    expect(value("switchboard_hydrogen_acks_pending")).toBe(model.reduce((sum, pending) => sum + pending.size, 0))
    expect(value('switchboard_hydrogen_undeliverable_total{reason="no_ack"}')).toBe(undeliverable)
  })

describe("hydrogen ack tracking (model)", () => {
  test("tracking, plain and decoded acks, redelivery and giving up match a per-session map of pending events (TestClock)", async () => {
    await FastCheck.assert(
      FastCheck.asyncProperty(FastCheck.array(step, { maxLength: 60 }), (script) =>
        Effect.runPromise(
          runScript(script).pipe(
            Effect.scoped,
            Effect.provide(Metrics.Default),
            Effect.provide(TestContext.TestContext),
            Logger.withMinimumLogLevel(LogLevel.Error)
          )
        )
      ),
      { numRuns: 30 }
    )
    // Generous: each run builds a tracker and moves a TestClock; the shared CI box may be slow.
  }, 60_000)
})
