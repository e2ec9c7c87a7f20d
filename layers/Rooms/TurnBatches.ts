import type { BatchFrame } from "../Cluster/Envelope.ts"

/** Past this many bytes a room's batch goes out at once instead of at the end of the turn. */
export const MAX_BATCH_BYTES = 64 * 1024

const sizeOf = (frame: BatchFrame) => (typeof frame === "string" ? frame.length * 3 : frame.length)

/**
 * The room publishes of one event-loop turn, combined per room so that a burst costs one broker
 * message per room rather than one per frame. A frame is never held past the turn it was published
 * in (flushed from `setImmediate`: the end of the turn, not a delay). Order holds per room, and across
 * rooms too: a publish to a room whose batch is not the newest flushes everything first, so the
 * broker sees this node's frames in the order they were published.
 */
export class TurnBatches {
  private readonly pending = new Map<string, { frames: Array<BatchFrame>; bytes: number }>()
  private newest: string | undefined
  private scheduled = false

  constructor(private readonly send: (room: string, frames: ReadonlyArray<BatchFrame>) => void) {}

  add(room: string, frame: BatchFrame): void {
    let batch = this.pending.get(room)
    if (batch && this.newest !== room) {
      this.flush()
      batch = undefined
    }
    if (!batch) {
      batch = { frames: [], bytes: 0 }
      this.pending.set(room, batch)
      this.newest = room
    }
    // Bytes are copied: the caller may reuse its buffer once publish returned, as it could before.
    batch.frames.push(typeof frame === "string" ? frame : frame.slice())
    batch.bytes += sizeOf(frame)
    if (batch.bytes >= MAX_BATCH_BYTES) this.flush()
    else if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.endOfTurn)
    }
  }

  /** Sends every pending batch now, oldest room first. */
  flush(): void {
    if (this.pending.size === 0) return
    const batches = [...this.pending]
    this.pending.clear()
    this.newest = undefined
    for (const [room, { frames }] of batches) this.send(room, frames)
  }

  private readonly endOfTurn = () => {
    this.scheduled = false
    this.flush()
  }
}
