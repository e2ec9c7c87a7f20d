import type { Connection, WireMessage } from "../../layers/Transport/Transport.ts"

/**
 * What a chat node sends the room's other nodes on a cluster: [kind][n: 8 bytes, big-endian][tPacket frame].
 * `numbered`: n is the message's seq in the room's history. `after`: a frame without a seq (join, leave, empty
 * message), to hand out once seq n has been, so it keeps its place after what its node had sent before it.
 * `reach` (no frame): the room's history reaches seq n, sent after an outage so the others read what they missed.
 */
const Kind = { numbered: 0xc1, after: 0xc2, reach: 0xc3 } as const
const HEADER = 9

const wrap = (kind: number, n: number, frame: Uint8Array) => {
  const out = new Uint8Array(HEADER + frame.length)
  out[0] = kind
  const high = Math.floor(n / 2 ** 32)
  const low = n >>> 0
  out[1] = high >>> 24
  out[2] = high >>> 16
  out[3] = high >>> 8
  out[4] = high
  out[5] = low >>> 24
  out[6] = low >>> 16
  out[7] = low >>> 8
  out[8] = low
  out.set(frame, HEADER)
  return out
}

export const wrapNumbered = (seq: number, frame: Uint8Array) => wrap(Kind.numbered, seq, frame)
export const wrapAfter = (after: number, frame: Uint8Array) => wrap(Kind.after, after, frame)
export const wrapReach = (last: number) => wrap(Kind.reach, last, new Uint8Array(0))

export interface Unwrapped {
  readonly numbered: boolean
  readonly n: number
  readonly frame: Uint8Array
  /** A `reach` marker: nothing to hand out, the history reaches n. */
  readonly reach?: true
}

/** Undefined for anything not wrapped by a chat node (a text frame, a bare tPacket). */
export const unwrap = (message: WireMessage): Unwrapped | undefined => {
  if (typeof message === "string" || message.length < HEADER) return undefined
  const kind = message[0]
  if (kind !== Kind.numbered && kind !== Kind.after && kind !== Kind.reach) return undefined
  const high = ((message[1]! << 24) | (message[2]! << 16) | (message[3]! << 8) | message[4]!) >>> 0
  const low = ((message[5]! << 24) | (message[6]! << 16) | (message[7]! << 8) | message[8]!) >>> 0
  const unwrapped = { numbered: kind === Kind.numbered, n: high * 2 ** 32 + low, frame: message.subarray(HEADER) }
  return kind === Kind.reach ? { ...unwrapped, reach: true } : unwrapped
}

interface Waiting {
  readonly after: number
  readonly frame: WireMessage
  readonly except: Connection<unknown> | undefined
}

/**
 * One room's delivery on one node, in seq order: a numbered frame waits until every earlier seq was handed out,
 * a frame without a seq until the seq it follows was. A gap (an earlier seq not here yet, or never coming because
 * the broker lost it) asks for a fill from the history, where every seq is stored before it is sent. Synchronous;
 * the fill itself is the caller's (`needFill`, answered with `filled`).
 */
export class RoomOrder {
  /** The last seq handed to this node's members; undefined until the room's starting point is known. */
  delivered: number | undefined = undefined
  /** While a join or leave holds the room nothing is handed out; it all goes right after. */
  paused = false
  /** While above 0 nothing is handed out either (a roster catch-up after an outage must come first). */
  holds = 0
  private readonly held = new Map<number, WireMessage>()
  private readonly waiting: Array<Waiting> = []
  /** Seqs up to here that the history no longer has (trimmed): skipped unless held. */
  private skipTo = 0
  /** The starting point could not be read: the first frame that comes sets it. */
  private adoptFirst = false
  /** The history is known to reach this seq (after an outage): everything up to it is read and handed out. */
  private reached = 0

  /**
   * `admits`: whether a frame may be handed out now (false: it and everything after it wait until `release` is called
   * again; chat holds a message whose sender's join this node's members were not told yet).
   */
  constructor(
    private readonly deliver: (frame: WireMessage, except: Connection<unknown> | undefined) => void,
    private readonly needFill: () => void,
    private readonly admits: (frame: WireMessage) => boolean = () => true
  ) {}

  /** The room's last seq when this node started listening (everything after it arrives live), or undefined if unknown. */
  start(last: number | undefined): void {
    if (last === undefined) {
      this.adoptFirst = true
      return
    }
    this.delivered = last
    for (const seq of this.held.keys()) if (seq <= last) this.held.delete(seq)
    this.release()
  }

  offer(seq: number, frame: WireMessage): void {
    if (this.delivered === undefined && this.adoptFirst) this.delivered = seq - 1
    if (this.delivered !== undefined && seq <= this.delivered) return
    if (!this.held.has(seq)) this.held.set(seq, frame)
    this.release()
  }

  offerAfter(after: number, frame: WireMessage, except?: Connection<unknown>): void {
    if (this.delivered === undefined && this.adoptFirst) this.delivered = after
    this.waiting.push({ after, frame, except })
    this.release()
  }

  /** The history reaches `last` (read after an outage, or told by another node): what is missing up to it is filled. */
  reach(last: number): void {
    if (last <= this.reached) return
    this.reached = last
    this.release()
  }

  /** Hands out everything whose turn has come. */
  release(): void {
    if (this.paused || this.holds > 0 || this.delivered === undefined) return
    let delivered = this.delivered
    while (true) {
      const first = this.waiting[0]
      if (first !== undefined && first.after <= delivered) {
        if (!this.admits(first.frame)) return
        this.waiting.shift()
        this.deliver(first.frame, first.except)
        continue
      }
      const next = this.held.get(delivered + 1)
      if (next !== undefined) {
        if (!this.admits(next)) return
        this.held.delete(delivered + 1)
        this.delivered = ++delivered
        this.deliver(next, undefined)
        continue
      }
      if (delivered < this.skipTo) {
        this.delivered = ++delivered
        continue
      }
      break
    }
    if (this.held.size > 0 || this.waiting.length > 0 || this.reached > delivered) this.needFill()
  }

  /** The last seq a fill must read up to, or undefined when nothing waits on a missing seq. */
  fillTarget(): number | undefined {
    if (this.paused || this.holds > 0 || this.delivered === undefined) return undefined
    let target = Math.max(this.delivered, this.reached)
    for (const seq of this.held.keys()) if (seq > target) target = seq
    for (const { after } of this.waiting) if (after > target) target = after
    return target > this.delivered ? target : undefined
  }

  /**
   * The history's entries after `from` (oldest first), read for a fill up to `upTo`: what is missing is taken from
   * them; seqs before the first entry (or up to `upTo` when none came back) are gone from the history and skipped.
   */
  filled(from: number, upTo: number, entries: ReadonlyArray<readonly [number, WireMessage]>): void {
    for (const [seq, frame] of entries)
      if (seq > (this.delivered ?? from) && !this.held.has(seq)) this.held.set(seq, frame)
    const firstKept = entries.length > 0 ? entries[0]![0] : upTo + 1
    this.skipTo = Math.max(this.skipTo, Math.min(firstKept, upTo + 1) - 1)
    this.release()
  }
}
