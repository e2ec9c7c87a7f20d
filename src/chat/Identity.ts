import { Effect, Option } from "effect"
import { type Claim, Claims, makeLocalClaims } from "../../layers/Cluster/Claims.ts"
import { Counters } from "../../layers/Cluster/Counters.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { Rooms } from "../../layers/Rooms/Rooms.ts"
import { bytesKey } from "./HistoryText.ts"

/** User ids start at 0x1000 like the original's and stay positive int32s (they travel in p1). */
const firstUserId = 0x1000
const userIdSpan = 2 ** 31 - firstUserId
/** Ids a node takes from the shared counter at once, so a connect rarely waits for the broker. */
const userIdBlock = 64
const userIdCounter = "chat/user-ids"
const nickScope = "chat/nicks"

export interface ChatIdentity {
  /** The next user id: unique on this server, and across the cluster when the rooms span nodes. */
  readonly nextUserId: Effect.Effect<number>
  /**
   * Claims a nick (exact bytes) server-wide, or cluster-wide; false when someone holds it.
   * `onLost` runs if the claim is taken away later (only after this node was cut off from the cluster).
   */
  readonly claimNick: (nick: Uint8Array, onLost: Effect.Effect<void>) => Effect.Effect<boolean>
  readonly releaseNick: (nick: Uint8Array) => Effect.Effect<void>
  /** Nicks held by this node's connections (for /health). */
  readonly users: () => number
}

/**
 * Who is who on a chat server: nicks through the Claims Tag (refused while held, the chat's rule;
 * a local map when no Claims is provided) and user ids from the shared Counters when the rooms span
 * nodes (a block at a time), from a local count otherwise.
 */
export const makeChatIdentity = (server: string) =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    const fanout = yield* Rooms
    const claims = Option.getOrElse(yield* Effect.serviceOption(Claims), makeLocalClaims)
    const counters = fanout.spansNodes ? Option.getOrUndefined(yield* Effect.serviceOption(Counters)) : undefined
    const usersGauge = metrics
      .gauge("switchboard_chat_users", "Connections with an accepted nick", ["server"])
      .labels({ server })
    const held = new Map<string, Claim>()
    let next = 0
    let blockEnd = counters === undefined ? Number.POSITIVE_INFINITY : 0

    /** Takes the next block of the cluster's id sequence; while the broker is away, goes on locally (logged). */
    const refill = Effect.suspend(() =>
      counters!.add(userIdCounter, userIdBlock).pipe(
        Effect.tap((end) =>
          Effect.sync(() => {
            next = end - userIdBlock
            blockEnd = end
          })
        ),
        Effect.catchAll((error) =>
          Effect.zipRight(
            Effect.sync(() => (blockEnd = next + userIdBlock)),
            Effect.logWarning(`chat user ids allocated on this node alone (${error.message})`)
          )
        )
      )
    )

    const identity: ChatIdentity = {
      nextUserId: Effect.suspend(() => {
        const take = Effect.sync(() => firstUserId + (next++ % userIdSpan))
        return next < blockEnd ? take : Effect.zipRight(refill, take)
      }),
      claimNick: (nick, onLost) =>
        Effect.suspend(() => {
          const key = bytesKey(nick)
          if (held.has(key)) return Effect.succeed(false)
          return Effect.map(
            claims.claimIfFree(
              nickScope,
              key,
              Effect.zipRight(
                Effect.sync(() => forget(key)),
                onLost
              )
            ),
            (claim) => {
              if (Option.isNone(claim) || held.has(key)) return false
              held.set(key, claim.value)
              usersGauge.inc()
              return true
            }
          )
        }),
      releaseNick: (nick) =>
        Effect.suspend(() => {
          const key = bytesKey(nick)
          const claim = held.get(key)
          if (claim === undefined) return Effect.void
          forget(key)
          return claims.release(claim)
        }),
      users: () => held.size
    }
    const forget = (key: string) => {
      if (held.delete(key)) usersGauge.dec()
    }
    return identity
  })
