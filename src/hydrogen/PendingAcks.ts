import { eventOrdinal } from "./EventIds.ts"
import type { PendingAck } from "./Session.ts"

/**
 * The events one session must still ack, ordered by ordinal (the number in the event id). Events
 * are tracked in nearly ascending order and acked in nearly the same order, so adding is an array
 * push and an ack takes the head: no hashing, no Map entry per subscriber per event. An acked
 * event leaves a hole that the head skips; the arrays are compacted once half of them is holes.
 * Ordinals are unique among one process's events; events of other nodes (a cluster) may repeat
 * an ordinal under another id prefix, and those few collisions wait in a Map keyed by id.
 */
export class PendingAcks {
  private ordinals: Array<number> = []
  private entries: Array<PendingAck | undefined> = []
  private head = 0
  private slotted = 0
  /** Entries whose ordinal's slot holds another id (another node's event with the same ordinal). */
  private collided: Map<string, PendingAck> | undefined

  /** How many events are pending. */
  get size(): number {
    return this.slotted + (this.collided?.size ?? 0)
  }

  /** The slot holding `ordinal` (pending or a hole), or -1. */
  private slotOf(ordinal: number): number {
    const ordinals = this.ordinals
    let low = this.head
    let high = ordinals.length - 1
    if (low > high || ordinal < ordinals[low]! || ordinal > ordinals[high]!) return -1
    if (ordinals[low] === ordinal) return low
    while (low <= high) {
      const middle = (low + high) >>> 1
      const at = ordinals[middle]!
      if (at === ordinal) return middle
      if (at < ordinal) low = middle + 1
      else high = middle - 1
    }
    return -1
  }

  has(ordinal: number, id: string): boolean {
    if (this.collided?.has(id)) return true
    const last = this.ordinals.length - 1
    if (this.slotted === 0 || ordinal > this.ordinals[last]!) return false
    const slot = this.slotOf(ordinal)
    return slot >= 0 && this.entries[slot]?.id === id
  }

  /** Adds an entry that is not pending yet (callers check `has`). */
  add(entry: PendingAck): void {
    const ordinal = entry.ordinal
    const ordinals = this.ordinals
    if (ordinals.length === this.head || ordinal > ordinals[ordinals.length - 1]!) {
      ordinals.push(ordinal)
      this.entries.push(entry)
      this.slotted++
      return
    }
    const slot = this.slotOf(ordinal)
    if (slot >= 0) {
      if (this.entries[slot] === undefined) {
        this.entries[slot] = entry
        this.slotted++
      } else (this.collided ??= new Map()).set(entry.id, entry)
      return
    }
    this.slotted++
    // Out of order (an event of another channel delivered earlier in the same batch): insert in place.
    let at = ordinals.length
    while (at > this.head && ordinals[at - 1]! > ordinal) at--
    ordinals.splice(at, 0, ordinal)
    this.entries.splice(at, 0, entry)
  }

  /** The pending entry with this id, if any. */
  get(id: string): PendingAck | undefined {
    const ordinal = eventOrdinal(id)
    if (ordinal === undefined) return undefined
    const entry = this.entries[this.slotOf(ordinal)]
    return entry?.id === id ? entry : this.collided?.get(id)
  }

  /** Removes and returns the pending entry of this ordinal and id; undefined when it is not pending. */
  take(ordinal: number, id: string): PendingAck | undefined {
    const slot = this.slotOf(ordinal)
    const entry = slot < 0 ? undefined : this.entries[slot]
    if (entry === undefined || entry.id !== id) return this.takeCollided(id)
    this.removeAt(slot)
    return entry
  }

  private takeCollided(id: string): PendingAck | undefined {
    const entry = this.collided?.get(id)
    if (entry !== undefined) this.collided!.delete(id)
    return entry
  }

  /**
   * Like `take` for the id written in `text` from `start` up to its last two characters (a plain
   * ack), compared in place: no substring per ack.
   */
  takeWritten(ordinal: number, text: string, start: number): PendingAck | undefined {
    const slot = this.slotOf(ordinal)
    const entry = slot < 0 ? undefined : this.entries[slot]
    if (entry === undefined || entry.id.length !== text.length - start - 2 || !text.startsWith(entry.id, start))
      return this.collided === undefined ? undefined : this.takeCollided(text.slice(start, text.length - 2))
    this.removeAt(slot)
    return entry
  }

  private removeAt(slot: number) {
    this.entries[slot] = undefined
    this.slotted--
    if (slot === this.head) this.skipHoles()
    else if (this.entries.length - this.head > 2048 && this.slotted * 4 < this.entries.length - this.head)
      this.compact()
  }

  /** Replaces a pending entry by one for the same event (a resend: new attempts and time). */
  replace(entry: PendingAck): void {
    const slot = this.slotOf(entry.ordinal)
    if (slot >= 0 && this.entries[slot]?.id === entry.id) this.entries[slot] = entry
    else if (this.collided?.has(entry.id)) this.collided.set(entry.id, entry)
  }

  /** The pending entries, oldest event first (a copy: safe to take or replace while iterating). */
  values(): Array<PendingAck> {
    const values: Array<PendingAck> = []
    for (let i = this.head; i < this.entries.length; i++) {
      const entry = this.entries[i]
      if (entry !== undefined) values.push(entry)
    }
    if (this.collided !== undefined) for (const entry of this.collided.values()) values.push(entry)
    return values
  }

  private skipHoles() {
    const entries = this.entries
    if (this.slotted === 0) {
      this.ordinals.length = 0
      entries.length = 0
      this.head = 0
      return
    }
    while (entries[this.head] === undefined) this.head++
    if (this.head > 1024 && this.head * 2 > entries.length) {
      this.ordinals = this.ordinals.slice(this.head)
      this.entries = entries.slice(this.head)
      this.head = 0
    }
  }

  /** Drops the holes (events acked out of order behind an unacked one). */
  private compact() {
    const ordinals: Array<number> = []
    const entries: Array<PendingAck> = []
    for (let i = this.head; i < this.entries.length; i++) {
      const entry = this.entries[i]
      if (entry !== undefined) {
        ordinals.push(this.ordinals[i]!)
        entries.push(entry)
      }
    }
    this.ordinals = ordinals
    this.entries = entries
    this.head = 0
  }
}
