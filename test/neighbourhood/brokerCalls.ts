import { Context, Effect, Layer, TestClock } from "effect"
import { type Broker, ClusterBroker } from "../../layers/Cluster/Broker.ts"

// A real broker answers in real time while the TestClock moves only when a test steps it: a step that
// did not wait for the answers would use up a test's bounded steps whenever the broker is slow, as on a
// loaded box. So each step waits for them, and meanwhile moves the clock with real time, as the broker's
// TTLs run in real time (the nodes' heartbeats keep their pace, no more).

let pending = 0
let waiting: Array<() => void> = []

const answered = () => {
  pending--
  if (pending > 0) return
  const resume = waiting
  waiting = []
  for (const done of resume) done()
}

const counted = <A, E, R>(call: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    pending++
    return Effect.ensuring(call, Effect.sync(answered))
  })

/** A store whose calls are counted until they answer (or fail). */
const countedStore = <S extends object>(store: S): S =>
  Object.fromEntries(
    Object.entries(store).map(([name, call]) => [
      name,
      typeof call === "function"
        ? (...args: Array<unknown>) => counted((call as (...a: Array<unknown>) => Effect.Effect<unknown>)(...args))
        : call
    ])
  ) as S

/** `broker` whose presence, claim, counter and record calls a step waits for. */
export const countingCalls = (broker: Layer.Layer<ClusterBroker>) =>
  Layer.map(broker, (context) => {
    const node: Broker = Context.get(context, ClusterBroker)
    return Context.add(context, ClusterBroker, {
      ...node,
      presence: countedStore(node.presence),
      claims: countedStore(node.claims),
      counters: countedStore(node.counters),
      records: countedStore(node.records)
    })
  })

/** Whether no counted call is under way any more, or `millis` of real time passed first. */
const answeredWithin = (millis: number) =>
  Effect.async<boolean>((resume) => {
    if (pending === 0) return resume(Effect.succeed(true))
    const done = () => {
      clearTimeout(timer)
      resume(Effect.succeed(true))
    }
    const timer = setTimeout(() => {
      waiting = waiting.filter((other) => other !== done)
      resume(Effect.succeed(false))
    }, millis)
    waiting.push(done)
    return Effect.sync(() => {
      clearTimeout(timer)
      waiting = waiting.filter((other) => other !== done)
    })
  })

/** Completes once no counted broker call is under way (at once when none is), the clock following real time. */
export const brokerCallsAnswered = Effect.gen(function* () {
  for (;;) {
    const since = performance.now()
    if (yield* answeredWithin(100)) return
    yield* TestClock.adjust(Math.round(performance.now() - since))
  }
})
