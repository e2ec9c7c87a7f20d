import { Clock, Context, Duration, Effect, Layer, Option, Runtime } from "effect"
import { repeatEvery } from "../../src/shared/Sweeps.ts"
import { type Broker, ClusterBroker, holderLiveness } from "./Broker.ts"

/** A name this node holds in a scope; `holder` tells this claim from a later one of the same name. */
export interface Claim {
  readonly scope: string
  readonly name: string
  readonly holder: string
}

/**
 * Names unique across the nodes of a cluster (a DroneEngage unit per account, a chat nick). Two
 * rules, as the protocols need: `claim` replaces any holder wherever it is (its `onReplaced` runs
 * on its node), `claimIfFree` refuses while a live node holds the name. Claims of a node that stops
 * heartbeating count as free after the node TTL. Broker trouble never fails a call: the node then
 * decides alone (logged) and checks its claims again when the broker returns.
 */
export interface ClaimsService {
  readonly claim: (scope: string, name: string, onReplaced: Effect.Effect<void>) => Effect.Effect<Claim>
  readonly claimIfFree: (
    scope: string,
    name: string,
    onReplaced: Effect.Effect<void>
  ) => Effect.Effect<Option.Option<Claim>>
  /**
   * `claim`, but only while fewer than `limit` other names of the scope are held by live nodes: the
   * count and the take are one atomic step on the broker, so of concurrent claims on several nodes
   * only as many as the limit allows succeed. None when the limit is reached.
   */
  readonly claimWithin: (
    scope: string,
    name: string,
    limit: number,
    onReplaced: Effect.Effect<void>
  ) => Effect.Effect<Option.Option<Claim>>
  /** Gives the name up, unless a later claim already took it. */
  readonly release: (claim: Claim) => Effect.Effect<void>
  /** Names of the scope held by live nodes (this node's included). */
  readonly holders: (scope: string) => Effect.Effect<ReadonlyArray<string>>
  /**
   * Until when (Clock millis) `claim` is surely this node's: the broker answered its take (or the check
   * after an outage), and no other node can take it before this node's last heartbeat runs out.
   * -Infinity for a claim decided on this node alone, or no longer held; absent means for ever.
   */
  readonly heldUntil?: (claim: Claim) => number
}

export class Claims extends Context.Tag("switchboard/Claims")<Claims, ClaimsService>() {}

interface Held {
  readonly claim: Claim
  readonly onReplaced: Effect.Effect<void>
  /** The broker answered the take (or the recheck kept it); false while decided on this node alone. */
  confirmed?: boolean
}

const keyOf = (scope: string, name: string) => `${scope}\u0000${name}`

/** How many names of `scope` other than `name` these claims hold. */
const othersHeld = (held: Iterable<Held>, scope: string, name: string) => {
  let count = 0
  for (const { claim } of held) if (claim.scope === scope && claim.name !== name) count++
  return count
}

/** The claims of one process: a map, the default and the single-node double. */
export const makeLocalClaims = (): ClaimsService => {
  const held = new Map<string, Held>()
  let sequence = 0
  const claim = (scope: string, name: string, onReplaced: Effect.Effect<void>) =>
    Effect.suspend(() => {
      const key = keyOf(scope, name)
      const previous = held.get(key)
      const claim: Claim = { scope, name, holder: `local/${++sequence}` }
      held.set(key, { claim, onReplaced })
      return Effect.as(previous ? previous.onReplaced : Effect.void, claim)
    })
  return {
    claim,
    claimWithin: (scope, name, limit, onReplaced) =>
      Effect.suspend(() =>
        othersHeld(held.values(), scope, name) >= limit
          ? Effect.succeed(Option.none())
          : Effect.map(claim(scope, name, onReplaced), Option.some)
      ),
    claimIfFree: (scope, name, onReplaced) =>
      Effect.sync(() => {
        const key = keyOf(scope, name)
        if (held.has(key)) return Option.none()
        const claim: Claim = { scope, name, holder: `local/${++sequence}` }
        held.set(key, { claim, onReplaced })
        return Option.some(claim)
      }),
    release: (claim) =>
      Effect.sync(() => {
        const key = keyOf(claim.scope, claim.name)
        if (held.get(key)?.claim.holder === claim.holder) held.delete(key)
      }),
    holders: (scope) =>
      Effect.sync(() => [...held.values()].filter(({ claim }) => claim.scope === scope).map(({ claim }) => claim.name)),
    heldUntil: (claim) =>
      held.get(keyOf(claim.scope, claim.name))?.claim.holder === claim.holder
        ? Number.POSITIVE_INFINITY
        : Number.NEGATIVE_INFINITY
  }
}

export const LocalClaimsLive = Layer.sync(Claims, makeLocalClaims)

export interface BrokerClaimsOptions {
  readonly heartbeat?: Duration.DurationInput
  readonly nodeTtl?: Duration.DurationInput
}

/** Sent to the node whose claim was replaced: which one. */
interface Eviction {
  readonly scope: string
  readonly name: string
  readonly holder: string
}

const evictionChannel = (liveness: string) => `claims/${liveness}`

/**
 * Claims on the cluster broker. The store maps scope/name → holder `<liveness id>/<n>`; the
 * liveness id is this layer's own heartbeat entry (`<nodeId>.claims`), so it learns by itself when
 * the cluster took this node for dead. A replacing claim tells the displaced holder's node on that
 * node's eviction channel (at most once, like any broker message; the node checks its claims again
 * after an outage, where such a message could be lost).
 */
export const makeBrokerClaims = (options: BrokerClaimsOptions = {}) =>
  Effect.gen(function* () {
    const broker: Broker = yield* ClusterBroker
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const nodeTtl = Duration.toMillis(options.nodeTtl ?? "5 seconds")
    const liveness = `${broker.nodeId}.claims`
    const held = new Map<string, Held>()
    let sequence = 0
    let stale = false
    /** When this node's liveness runs out at the earliest: its last answered heartbeat's start plus the TTL. */
    let aliveUntil = Number.NEGATIVE_INFINITY

    /** Marks the claims for a recheck once the broker answers again; logs once per outage, not once per call. */
    const brokerTrouble = (what: string) => (error: Error) =>
      Effect.suspend(() => {
        const first = !stale
        stale = true
        return first
          ? Effect.logWarning(`cluster claims: ${what} decided on this node alone (${error.message})`)
          : Effect.void
      })

    /** Drops a claim held here and runs its owner's eviction. */
    const evictHere = (key: string, holder: string) =>
      Effect.suspend(() => {
        const current = held.get(key)
        if (current?.claim.holder !== holder) return Effect.void
        held.delete(key)
        return current.onReplaced
      })

    const tellDisplaced = (claim: Claim, previous: string | undefined) => {
      if (previous === undefined) return
      const owner = holderLiveness(previous)
      if (owner === liveness) return
      const eviction: Eviction = { scope: claim.scope, name: claim.name, holder: previous }
      broker.publish(evictionChannel(owner), new TextEncoder().encode(JSON.stringify(eviction)))
    }

    yield* broker.subscribe(evictionChannel(liveness), (bytes) => {
      try {
        const { scope, name, holder } = JSON.parse(new TextDecoder().decode(bytes)) as Eviction
        runFork(evictHere(keyOf(scope, name), holder))
      } catch {
        // Not an eviction: ignore it.
      }
    })
    yield* Effect.addFinalizer(() => broker.unsubscribe(evictionChannel(liveness)))

    /** After this node was taken for dead (or lost messages): keep what is still ours, give up what another took. */
    const recheck = Effect.gen(function* () {
      stale = false
      for (const [key, { claim }] of [...held]) {
        const current = yield* broker.claims.get(claim.scope, claim.name)
        const kept =
          current === claim.holder ||
          (current === undefined && (yield* broker.claims.take(claim.scope, claim.name, claim.holder, "ifFree")).taken)
        const entry = held.get(key)
        if (kept && entry?.claim.holder === claim.holder) entry.confirmed = true
        else if (!kept) yield* evictHere(key, claim.holder)
      }
    })
    const heartbeat = Effect.gen(function* () {
      const sentAt = yield* Clock.currentTimeMillis
      const wasAlive = yield* broker.presence.heartbeat(liveness, nodeTtl)
      if (!wasAlive || stale) yield* recheck
      aliveUntil = sentAt + nodeTtl
    }).pipe(Effect.catchAll(brokerTrouble("a heartbeat")))
    yield* heartbeat
    yield* repeatEvery("cluster claims heartbeat", options.heartbeat ?? "1500 millis", () => heartbeat)
    broker.onReconnect(() => void (stale = true))

    const confirm = (claim: Claim) => {
      const entry = held.get(keyOf(claim.scope, claim.name))
      if (entry?.claim.holder === claim.holder) entry.confirmed = true
    }

    const hold = (scope: string, name: string, onReplaced: Effect.Effect<void>): Claim => {
      const claim: Claim = { scope, name, holder: `${liveness}/${++sequence}` }
      held.set(keyOf(scope, name), { claim, onReplaced })
      return claim
    }

    const service: ClaimsService = {
      claim: (scope, name, onReplaced) =>
        Effect.gen(function* () {
          const key = keyOf(scope, name)
          const local = held.get(key)
          if (local) yield* evictHere(key, local.claim.holder)
          const claim = hold(scope, name, onReplaced)
          yield* broker.claims.take(scope, name, claim.holder, "replace").pipe(
            Effect.tap(({ previous }) => tellDisplaced(claim, previous)),
            Effect.tap(() => confirm(claim)),
            Effect.catchAll(brokerTrouble(`the claim of ${name}`))
          )
          return claim
        }),
      claimWithin: (scope, name, limit, onReplaced) =>
        Effect.gen(function* () {
          const claim: Claim = { scope, name, holder: `${liveness}/${++sequence}` }
          const result = yield* broker.claims.take(scope, name, claim.holder, { within: limit }).pipe(
            Effect.map((answer) => ({ ...answer, confirmed: true })),
            Effect.catchAll((error) =>
              Effect.as(brokerTrouble(`the claim of ${name}`)(error), {
                taken: othersHeld(held.values(), scope, name) < limit,
                previous: undefined,
                confirmed: false
              })
            )
          )
          if (!result.taken) return Option.none()
          const key = keyOf(scope, name)
          const local = held.get(key)
          if (local) yield* evictHere(key, local.claim.holder)
          held.set(key, { claim, onReplaced, confirmed: result.confirmed })
          tellDisplaced(claim, result.previous)
          return Option.some(claim)
        }),
      claimIfFree: (scope, name, onReplaced) =>
        Effect.gen(function* () {
          if (held.has(keyOf(scope, name))) return Option.none()
          const claim: Claim = { scope, name, holder: `${liveness}/${++sequence}` }
          const answer = yield* broker.claims.take(scope, name, claim.holder, "ifFree").pipe(
            Effect.map((result) => ({ taken: result.taken, confirmed: true })),
            Effect.catchAll((error) =>
              Effect.as(brokerTrouble(`the claim of ${name}`)(error), { taken: true, confirmed: false })
            )
          )
          // Another claim of the same name on this node may have won while the broker answered.
          if (!answer.taken || held.has(keyOf(scope, name))) return Option.none()
          held.set(keyOf(scope, name), { claim, onReplaced, confirmed: answer.confirmed })
          return Option.some(claim)
        }),
      release: (claim) =>
        Effect.suspend(() => {
          const key = keyOf(claim.scope, claim.name)
          if (held.get(key)?.claim.holder === claim.holder) held.delete(key)
          return broker.claims
            .release(claim.scope, claim.name, claim.holder)
            .pipe(Effect.catchAll(brokerTrouble(`the release of ${claim.name}`)))
        }),
      holders: (scope) =>
        Effect.gen(function* () {
          const listed = yield* broker.claims.list(scope)
          const others = listed.filter(([, holder]) => holderLiveness(holder) !== liveness)
          const alive = yield* broker.presence.alive([...new Set(others.map(([, holder]) => holderLiveness(holder)))])
          const own = [...held.values()].filter(({ claim }) => claim.scope === scope).map(({ claim }) => claim.name)
          return [...own, ...others.filter(([, holder]) => alive.has(holderLiveness(holder))).map(([name]) => name)]
        }).pipe(
          Effect.catchAll((error) =>
            Effect.zipRight(
              brokerTrouble("a count of claims")(error),
              Effect.sync(() =>
                [...held.values()].filter(({ claim }) => claim.scope === scope).map(({ claim }) => claim.name)
              )
            )
          )
        ),
      heldUntil: (claim) => {
        const entry = held.get(keyOf(claim.scope, claim.name))
        return entry?.claim.holder === claim.holder && entry.confirmed ? aliveUntil : Number.NEGATIVE_INFINITY
      }
    }
    return service
  })

/** Claims across the cluster; needs a ClusterBroker. */
export const BrokerClaimsLive = (options: BrokerClaimsOptions = {}) => Layer.scoped(Claims, makeBrokerClaims(options))
