import { Either } from "effect"
import type { Connection, WireMessage } from "../../layers/Transport/Transport.ts"
import { Command, readPacket, userChange } from "./Packet.ts"

/** A member of the room as a roster lists it. */
export interface Listed {
  readonly id: number
  readonly nick: Uint8Array
}

/** A _NEW_USER or _DEL_USER this node's members must be told to catch up, to all of them but `skip`. */
export interface RosterChange extends Listed {
  /** Command.NEW_USER or Command.DEL_USER */
  readonly cmd: number
  readonly skip?: ReadonlySet<Connection<unknown>>
}

const nickOf = (frame: Uint8Array) =>
  Either.match(readPacket(frame), { onLeft: () => new Uint8Array(0), onRight: (p) => p.data })

/**
 * What one node's members of a room were told about the room's members (rosters, _NEW_USER, _DEL_USER). On a
 * cluster a joiner's roster is a presence read, and a member listed there may still have its _NEW_USER on the way
 * (sent just before the read, or while this node started listening to the room): that _NEW_USER reaches only the
 * members here who were not listed that member. After an outage, `catchUp` says what they missed.
 */
export class ListedJoins {
  /** Members every member here was told of (listed to the first joiner, or their _NEW_USER handed out), by id. */
  private readonly known = new Map<number, Uint8Array>()
  /** Listed to the room's first joiner here (or told after an outage): their _NEW_USER, if it still comes, goes to nobody. */
  private readonly toAll = new Set<number>()
  /** Listed to later joiners here before their _NEW_USER was handed out: it goes to the other members only. */
  private readonly toSome = new Map<number, { readonly nick: Uint8Array; readonly listers: Set<Connection<unknown>> }>()

  /**
   * `joiner` was listed `members`. For the room's first member here (`first`) every later joiner here lists them too,
   * so their late _NEW_USER goes to nobody; otherwise it skips the joiners that listed them.
   */
  listed(joiner: Connection<unknown>, members: Iterable<Listed>, first: boolean): void {
    for (const { id, nick } of members) {
      if (first) {
        this.toAll.add(id)
        this.known.set(id, nick)
      } else if (!this.known.has(id)) {
        const some = this.toSome.get(id)
        if (some === undefined) this.toSome.set(id, { nick, listers: new Set([joiner]) })
        else some.listers.add(joiner)
      }
    }
  }

  /**
   * A frame about to be handed to this node's members: "all" (not a listed member's _NEW_USER), "none" (a listed
   * member's late _NEW_USER, or the _DEL_USER of a member nobody here was told of), or the members who must not get it.
   */
  recipients(frame: WireMessage): "all" | "none" | ReadonlySet<Connection<unknown>> {
    const change = typeof frame === "string" ? undefined : userChange(frame)
    if (change === undefined) return "all"
    if (change.cmd === Command.DEL_USER) return this.forget(change.id) ? "all" : "none"
    const skip = this.toSome.get(change.id)?.listers
    this.toSome.delete(change.id)
    const toNobody = this.toAll.delete(change.id)
    this.known.set(change.id, nickOf(frame as Uint8Array))
    return toNobody ? "none" : (skip ?? "all")
  }

  /** Whether every member here was told of `id` (listed, announced, or caught up). */
  knows(id: number): boolean {
    return this.known.has(id)
  }

  /** A member left (or its node died): whether anyone here was told of it (then they are told it left). */
  forget(id: number): boolean {
    const listedToSome = this.toSome.delete(id)
    this.toAll.delete(id)
    return this.known.delete(id) || listedToSome
  }

  /**
   * The room's members now (`present`, join order, from presence) against what this node's members were told:
   * the _DEL_USER and _NEW_USER they missed (while the broker was away, or before this node listened to the room),
   * each once; a late frame about them is then not handed out again. This node's own members (`local`) are skipped:
   * their joins and leaves never cross the broker.
   */
  catchUp(present: ReadonlyArray<Listed>, local: ReadonlySet<number>): ReadonlyArray<RosterChange> {
    const changes: Array<RosterChange> = []
    const now = new Set(present.map((member) => member.id))
    const gone = [...this.known, ...[...this.toSome].map(([id, { nick }]) => [id, nick] as const)]
    for (const [id, nick] of gone)
      if (!local.has(id) && !now.has(id) && this.forget(id)) changes.push({ cmd: Command.DEL_USER, id, nick })
    for (const { id, nick } of present) {
      if (local.has(id) || this.known.has(id)) continue
      const skip = this.toSome.get(id)?.listers
      this.toSome.delete(id)
      changes.push(skip === undefined ? { cmd: Command.NEW_USER, id, nick } : { cmd: Command.NEW_USER, id, nick, skip })
      this.known.set(id, nick)
      this.toAll.add(id)
    }
    return changes
  }
}
