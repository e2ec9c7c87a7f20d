import { Effect, Queue, Runtime } from "effect"
import { StorageError } from "../storage/Account.ts"
import { repeatEvery } from "../shared/Sweeps.ts"
import type { HydrogenCluster } from "./Cluster.ts"
import type { HydrogenError } from "./Errors.ts"
import type { Session, Subscription } from "./Session.ts"

/** Where a node announces that it holds a session now (by digest). */
export const sessionsSubject = "hydrogen/sessions"
/** A session's subscriptions, kept in the shared store under a digest of its (secret) id. */
export const sessionDigest = (sessionId: string) => new Bun.CryptoHasher("sha256").update(sessionId).digest("hex")
/** The broker's record of a session, by the digest of its id. */
export const recordKey = (digest: string) => `hydrogen-session:${digest}`
/**
 * A session record outlives the node holding it by at most this: each node puts its sessions' records
 * again every `sessionRecordRefresh` (one server-wide sweep), so a dead node's expire by themselves.
 */
export const sessionRecordTtlMillis = 60_000
export const sessionRecordRefresh = "20 seconds"

/**
 * Sessions on any node: each session's subscriptions in a shared record under the digest of its id,
 * held by the node serving it (this node's `origin`), in the broker's records: it expires unless its
 * holder puts it again (one sweep every `sessionRecordRefresh`, and at once each time the broker is back after
 * an outage, which may have cost the broker its data), and every write first checks the
 * holder in one atomic step: a node that took a session over becomes its holder, and a node whose
 * hand-over message was lost learns it at its next write (the sweep, a subscription change, or
 * the end of its recovery window) and lets the session go instead of writing over it or ending it.
 */
export const makeSessionRecords = (deps: {
  readonly bus: HydrogenCluster["Type"]
  readonly origin: string
  readonly storageFailed: (
    what: string
  ) => <A, R>(self: Effect.Effect<A, StorageError, R>) => Effect.Effect<A, HydrogenError, R>
}) =>
  Effect.gen(function* () {
    const { bus, origin } = deps
    const records = bus.records
    /**
     * The records of the sessions this node holds (digest → payload), put again by the refresh sweep.
     * A new entry object per write, so a late answer about an older write is told apart.
     */
    const remembered = new Map<string, { readonly payload: string }>()
    /** What Sessions does with a session another node holds now (given by onTaken). */
    let release: (digest: string) => Effect.Effect<void> = () => Effect.void
    /**
     * Puts the record again while this node holds it. If another node holds it now, its hand-over
     * message never came here: the session is let go as for one.
     */
    const keep = (digest: string, entry: { readonly payload: string }) =>
      records.put(recordKey(digest), origin, entry.payload, sessionRecordTtlMillis, "keep").pipe(
        Effect.flatMap((kept) =>
          kept || remembered.get(digest) !== entry
            ? Effect.void
            : Effect.suspend(() => {
                remembered.delete(digest)
                return Effect.zipRight(
                  Effect.logInfo("hydrogen: another node holds a session now (hand-over message lost): letting it go"),
                  release(digest)
                )
              })
        ),
        Effect.catchAll((error) => Effect.logWarning("hydrogen: could not share a session's record", error.message))
      )
    const keepAll = Effect.suspend(() =>
      Effect.forEach([...remembered], ([digest, entry]) => keep(digest, entry), { concurrency: 16, discard: true })
    )
    yield* repeatEvery("hydrogen session records", sessionRecordRefresh, () => keepAll)
    // The broker may be back without its data (a NATS server restarted without its storage): the records are put
    // again at once, not at the next sweep, so a session resumed on another node meanwhile finds its subscriptions.
    const runtime = yield* Effect.runtime<never>()
    bus.onReconnect(() => Runtime.runFork(runtime)(keepAll))
    const subscriptionsOf = (payload: string): ReadonlyArray<Subscription> =>
      (JSON.parse(payload) as Array<[string, Subscription["filter"] | null, "normal" | "high"]>).map(
        ([channel, filter, priority]) => ({
          channel,
          filter: filter ?? undefined,
          priority,
          native: filter === null && priority === "normal"
        })
      )

    return {
      /** Keeps the session's subscriptions in the shared store, for a resume on another node. */
      remember: (session: Session) =>
        Effect.suspend(() => {
          const payload = JSON.stringify(
            [...session.subscriptions.values()].map((s) => [s.channel, s.filter ?? null, s.priority])
          )
          const digest = sessionDigest(session.id)
          const entry = { payload }
          remembered.set(digest, entry)
          return keep(digest, entry)
        }),
      /**
       * Makes this node the holder of a session another node held (or one that died), and returns
       * its subscriptions; undefined when its holder closed it meanwhile (the session has ended).
       */
      takeOver: (sessionId: string): Effect.Effect<ReadonlyArray<Subscription> | undefined, HydrogenError> =>
        Effect.gen(function* () {
          const digest = sessionDigest(sessionId)
          const payload = (yield* records.get(recordKey(digest)))?.value ?? "[]"
          if (!(yield* records.put(recordKey(digest), origin, payload, sessionRecordTtlMillis, "take")))
            return undefined
          remembered.set(digest, { payload })
          return payload
        }).pipe(
          Effect.mapError((error) => new StorageError({ message: error.message, cause: error })),
          Effect.map((payload) => (payload === undefined ? undefined : subscriptionsOf(payload))),
          deps.storageFailed("reading a session")
        ),
      /**
       * This node ends a session it holds: its record is closed (no node takes it over from then on).
       * "elsewhere" when another node holds the session now (its hand-over message never came): then
       * the session must go quietly, as for a hand-over; "unknown" when the broker did not answer
       * (the record stays as it was).
       */
      close: (sessionId: string): Effect.Effect<"held" | "elsewhere" | "unknown"> =>
        Effect.suspend(() => {
          const digest = sessionDigest(sessionId)
          const entry = remembered.get(digest)
          remembered.delete(digest)
          return records.close(recordKey(digest), origin, sessionRecordTtlMillis).pipe(
            Effect.map((held) => (held ? ("held" as const) : ("elsewhere" as const))),
            Effect.catchAll((error) =>
              Effect.suspend(() => {
                // Still this node's as far as it knows: refreshed again until it can be closed.
                if (entry && !remembered.has(digest)) remembered.set(digest, entry)
                return Effect.as(
                  Effect.logDebug("hydrogen: could not close a session's record", error.message),
                  "unknown" as const
                )
              })
            )
          )
        }),
      /** Tells the other nodes that this node now holds the session (by digest: the id is a secret). */
      took: (sessionId: string) => bus.publish(sessionsSubject, `${origin}\n${sessionDigest(sessionId)}`),
      /**
       * Runs `letGo` with the digest of each session another node took over: announced on the bus, or
       * found held by another node in the record (when the announcement was lost).
       */
      onTaken: (letGo: (digest: string) => Effect.Effect<void>) =>
        Effect.gen(function* () {
          release = letGo
          const queue = yield* bus.subscribe(sessionsSubject)
          yield* Effect.forkScoped(
            Effect.forever(
              Effect.flatMap(Queue.take(queue), (payload) => {
                const newline = payload.indexOf("\n")
                if (payload.slice(0, newline) === origin) return Effect.void
                // The record is the new holder's to refresh now.
                remembered.delete(payload.slice(newline + 1))
                return letGo(payload.slice(newline + 1))
              })
            )
          )
        })
    }
  })
