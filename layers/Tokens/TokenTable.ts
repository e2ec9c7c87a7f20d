import { timingSafeEqual } from "node:crypto"

/** A 128-bit random token as 32 lowercase hex characters (the original's login key format). */
export const randomToken = (): string => Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex")

const digest = (token: string) => new Bun.CryptoHasher("sha256").update(token).digest("hex")

interface Entry<V> {
  readonly token: Buffer
  value: V
  expiresAt: number
}

/**
 * Expiring secret tokens. Entries are indexed by the SHA-256 of the token, so a lookup's timing
 * says nothing about the token, and the token itself is then compared with timingSafeEqual.
 */
export class TokenTable<V> {
  private readonly entries = new Map<string, Entry<V>>()
  /** Secondary key (from `indexOf`) → the entry's digest, so an entry can be found by what it holds without a scan. */
  private readonly byIndex = new Map<string, string>()

  constructor(private readonly indexOf?: (value: V) => string) {}

  insert(token: string, value: V, expiresAt: number): void {
    const key = digest(token)
    this.remove(key)
    this.entries.set(key, { token: Buffer.from(token), value, expiresAt })
    if (this.indexOf) this.byIndex.set(this.indexOf(value), key)
  }

  /** Drops the entry stored under `key` (a digest) and its index entry. */
  private remove(key: string): boolean {
    const entry = this.entries.get(key)
    if (!entry) return false
    this.entries.delete(key)
    if (this.indexOf) {
      const index = this.indexOf(entry.value)
      if (this.byIndex.get(index) === key) this.byIndex.delete(index)
    }
    return true
  }

  /** The live entry for `token` at time `now`, if any. */
  find(token: string, now: number): Entry<V> | undefined {
    return this.liveAt(this.entries.get(digest(token)), token, now)
  }

  /** The live entry for `token`, removed (a live one or not) with one digest of the token. */
  take(token: string, now: number): Entry<V> | undefined {
    const key = digest(token)
    const entry = this.liveAt(this.entries.get(key), token, now)
    this.remove(key)
    return entry
  }

  private liveAt(entry: Entry<V> | undefined, token: string, now: number): Entry<V> | undefined {
    if (!entry) return undefined
    const given = Buffer.from(token)
    if (given.length !== entry.token.length || !timingSafeEqual(given, entry.token)) return undefined
    return entry.expiresAt > now ? entry : undefined
  }

  delete(token: string): boolean {
    return this.remove(digest(token))
  }

  /** Removes the entry whose `indexOf(value)` is `index` (only with an index); false if there is none. */
  deleteByIndex(index: string): boolean {
    const key = this.byIndex.get(index)
    return key !== undefined && this.remove(key)
  }

  sweep(now: number): number {
    let removed = 0
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt <= now) {
        this.remove(key)
        removed++
      }
    }
    return removed
  }

  get size(): number {
    return this.entries.size
  }
}
