import type { Connection, WireMessage } from "../../layers/Transport/Transport.ts"
import { Command, userChange } from "./Packet.ts"

/**
 * On a cluster, a joiner's roster is a presence read, and a member listed there may still have its _NEW_USER on the
 * way (sent just before the read, or while this node started listening to the room). This keeps track of who was
 * listed to whom on one node, so that _NEW_USER reaches only the members here who were not listed that member.
 */
export class ListedJoins {
  /** Members whose _NEW_USER was handed out here (or who were listed to the first joiner), until their _DEL_USER. */
  private readonly known = new Set<number>()
  /** Listed to the room's first joiner here: their _NEW_USER, if it still comes, goes to nobody. */
  private readonly toAll = new Set<number>()
  /** Listed to later joiners here before their _NEW_USER was handed out: it goes to the other members only. */
  private readonly toSome = new Map<number, Set<Connection<unknown>>>()

  /**
   * `joiner` was listed `ids`. For the room's first member here (`first`) every later joiner here lists them too,
   * so their late _NEW_USER goes to nobody; otherwise it skips the joiners that listed them.
   */
  listed(joiner: Connection<unknown>, ids: Iterable<number>, first: boolean): void {
    for (const id of ids) {
      if (first) {
        this.toAll.add(id)
        this.known.add(id)
      } else if (!this.known.has(id)) {
        const listers = this.toSome.get(id)
        if (listers === undefined) this.toSome.set(id, new Set([joiner]))
        else listers.add(joiner)
      }
    }
  }

  /**
   * A frame about to be handed to this node's members: "all" (not a listed member's _NEW_USER), "none", or the
   * members who must not get it.
   */
  recipients(frame: WireMessage): "all" | "none" | ReadonlySet<Connection<unknown>> {
    const change = typeof frame === "string" ? undefined : userChange(frame)
    if (change === undefined) return "all"
    const skip = this.toSome.get(change.id)
    this.toSome.delete(change.id)
    const toNobody = this.toAll.delete(change.id)
    if (change.cmd === Command.DEL_USER) {
      this.known.delete(change.id)
      return "all"
    }
    this.known.add(change.id)
    return toNobody ? "none" : (skip ?? "all")
  }
}
