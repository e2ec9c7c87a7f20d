import { Context, Effect, Layer } from "effect"
import { type Broker, ClusterBroker } from "../../layers/Cluster/Broker.ts"

// A real broker answers in real time while the TestClock moves only when a test steps it: a step that
// did not wait for the answers would use up a test's bounded steps (and move its nodes' clocks past
// their heartbeats) whenever the broker is slow, as on a loaded box. So each step waits for them.

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

/** How many steps wait for broker answers now. */
export const stepsWaiting = () => waiting.length

/** Completes once no counted broker call is under way (at once when none is). */
export const brokerCallsAnswered = Effect.async<void>((resume) => {
  if (pending === 0) return resume(Effect.void)
  waiting.push(() => resume(Effect.void))
})
