import { eventOrdinal } from "./EventIds.ts"
import type { PendingAck } from "./Session.ts"

/**
 * The events one session must still ack, ordered by ordinal (the number in the event id). Events
 * are tracked in nearly ascending order and acked in nearly the same order, so adding is an array
 * push and an ack takes the head: no hashing, no Map entry per subscriber per event. An acked
 * event leaves a hole that the head skips; the arrays are compacted once half of them is holes.
 * Ordinals must be unique among the events a session tracks: every AckedEvent comes from this
 * process's Channels, whose counter makes them (events of another node would need their own index).
 */
export class PendingAcks {
  private ordinals: Array<number> = []
  private entries: Array<PendingAck | undefined> = []
  private head = 0
  /** How many events are pending. */
  size = 0

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

  has(ordinal: number): boolean {
    const last = this.ordinals.length - 1
    if (this.size === 0 || ordinal > this.ordinals[last]!) return false
    const slot = this.slotOf(ordinal)
    return slot >= 0 && this.entries[slot] !== undefined
  }

  /** Adds an entry that is not pending yet (callers check `has`). */
  add(entry: PendingAck): void {
    const ordinal = entry.ordinal
    const ordinals = this.ordinals
    this.size++
    if (ordinals.length === this.head || ordinal > ordinals[ordinals.length - 1]!) {
      ordinals.push(ordinal)
      this.entries.push(entry)
      return
    }
    const slot = this.slotOf(ordinal)
    if (slot >= 0) {
      this.entries[slot] = entry
      return
    }
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
    return entry?.id === id ? entry : undefined
  }

  /** Removes and returns the pending entry of this ordinal and id; undefined when it is not pending. */
  take(ordinal: number, id: string): PendingAck | undefined {
    const slot = this.slotOf(ordinal)
    if (slot < 0) return undefined
    const entry = this.entries[slot]
    if (entry === undefined || entry.id !== id) return undefined
    this.removeAt(slot)
    return entry
  }

  /**
   * Like `take` for the id written in `text` from `start` up to its last two characters (a plain
   * ack), compared in place: no substring per ack.
   */
  takeWritten(ordinal: number, text: string, start: number): PendingAck | undefined {
    const slot = this.slotOf(ordinal)
    if (slot < 0) return undefined
    const entry = this.entries[slot]
    if (entry === undefined || entry.id.length !== text.length - start - 2 || !text.startsWith(entry.id, start))
      return undefined
    this.removeAt(slot)
    return entry
  }

  private removeAt(slot: number) {
    this.entries[slot] = undefined
    this.size--
    if (slot === this.head) this.skipHoles()
    else if (this.entries.length - this.head > 2048 && this.size * 4 < this.entries.length - this.head) this.compact()
  }

  /** Replaces a pending entry by one for the same event (a resend: new attempts and time). */
  replace(entry: PendingAck): void {
    const slot = this.slotOf(entry.ordinal)
    if (slot >= 0 && this.entries[slot] !== undefined) this.entries[slot] = entry
  }

  /** The pending entries, oldest event first (a copy: safe to take or replace while iterating). */
  values(): Array<PendingAck> {
    const values: Array<PendingAck> = []
    for (let i = this.head; i < this.entries.length; i++) {
      const entry = this.entries[i]
      if (entry !== undefined) values.push(entry)
    }
    return values
  }

  private skipHoles() {
    const entries = this.entries
    if (this.size === 0) {
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
