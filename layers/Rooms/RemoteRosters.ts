import type { RoomMember } from "./Rooms.ts"

interface Tracked {
  /** When the room was first listed here (a room listed but never joined is forgotten after a while). */
  readonly since: number
  readonly byNode: Map<string, Map<string, RoomMember>>
}

/**
 * The members other nodes hold in the rooms this node has listed, kept up to date from the
 * cluster's joins and leaves, so that when one of those nodes dies this node can report its
 * members as gone to its own clients (who saw them in a roster) exactly once.
 */
export class RemoteRosters {
  private readonly rooms = new Map<string, Tracked>()

  /** Adds what a listing of `room` found on other (live) nodes. */
  seed(room: string, now: number, members: ReadonlyArray<readonly [string, RoomMember]>) {
    let tracked = this.rooms.get(room)
    if (!tracked) this.rooms.set(room, (tracked = { since: now, byNode: new Map() }))
    for (const [nodeId, member] of members) this.joined(room, nodeId, member)
  }

  /** Whether `room` has been listed here (its leaves of dead nodes are then reported by `expire`). */
  tracks(room: string): boolean {
    return this.rooms.has(room)
  }

  joined(room: string, nodeId: string, member: RoomMember) {
    const tracked = this.rooms.get(room)
    if (!tracked) return
    let members = tracked.byNode.get(nodeId)
    if (!members) tracked.byNode.set(nodeId, (members = new Map()))
    members.set(member.id, member)
  }

  /** Forgets a member; returns it when it was tracked. */
  left(room: string, nodeId: string, memberId: string): RoomMember | undefined {
    const members = this.rooms.get(room)?.byNode.get(nodeId)
    const member = members?.get(memberId)
    if (member) members!.delete(memberId)
    return member
  }

  /** Nodes holding tracked members. */
  nodes(): ReadonlyArray<string> {
    const nodes = new Set<string>()
    for (const { byNode } of this.rooms.values())
      for (const [nodeId, members] of byNode) if (members.size) nodes.add(nodeId)
    return [...nodes]
  }

  /**
   * Removes and returns the members of dead nodes; forgets rooms with no local member that were
   * listed before `forgetListedBefore` (this node left them, or never joined after listing).
   */
  expire(
    isDead: (nodeId: string) => boolean,
    hasLocalMembers: (room: string) => boolean,
    forgetListedBefore: number
  ): ReadonlyArray<readonly [string, RoomMember]> {
    const gone: Array<readonly [string, RoomMember]> = []
    for (const [room, tracked] of this.rooms) {
      if (!hasLocalMembers(room) && tracked.since < forgetListedBefore) {
        this.rooms.delete(room)
        continue
      }
      for (const [nodeId, members] of tracked.byNode) {
        if (!isDead(nodeId)) continue
        for (const member of members.values()) gone.push([room, member])
        tracked.byNode.delete(nodeId)
      }
    }
    return gone
  }
}
