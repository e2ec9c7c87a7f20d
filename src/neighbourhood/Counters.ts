/**
 * The last accepted counter per signer, across connections (v1.2: "track the last counter value
 * sent by a client and reject it if the current value is not greater"). Keeping it per key, not
 * per connection, is what refuses a captured hello + messages replayed on a new connection; a
 * client therefore continues its counter when it reconnects. Memory is bounded: beyond
 * `capacity` keys the least recently used is forgotten.
 */
export class Counters {
  private readonly last = new Map<string, number>()
  constructor(private readonly capacity: number) {}

  /** The last accepted counter of `key`, or -1 when it has none (so a first counter of 0 passes). */
  lastOf(key: string): number {
    return this.last.get(key) ?? -1
  }

  /** Whether `counter` would be accepted now (checked before the costly signature check). */
  fresh(key: string, counter: number): boolean {
    return counter > this.lastOf(key)
  }

  /**
   * Accepts `counter` if it is still greater than the last (another message of the same key may
   * have been accepted while this one's signature was checked); false means a replay.
   */
  commit(key: string, counter: number): boolean {
    const last = this.last.get(key)
    if (last !== undefined && counter <= last) return false
    // Delete then set keeps Map order = least recently used first.
    if (last !== undefined) this.last.delete(key)
    this.last.set(key, counter)
    if (this.last.size > this.capacity) {
      const oldest = this.last.keys().next().value
      if (oldest !== undefined) this.last.delete(oldest)
    }
    return true
  }

  forget(key: string): void {
    this.last.delete(key)
  }

  get size(): number {
    return this.last.size
  }
}

/** A bounded set of recently seen items (relayed signatures), oldest dropped first. */
export class RecentSet {
  private readonly items = new Set<string>()
  constructor(private readonly capacity: number) {}

  /** Adds `item`; false when it was already there (a duplicate). */
  add(item: string): boolean {
    if (this.items.has(item)) return false
    this.items.add(item)
    if (this.items.size > this.capacity) {
      const oldest = this.items.values().next().value
      if (oldest !== undefined) this.items.delete(oldest)
    }
    return true
  }
}
