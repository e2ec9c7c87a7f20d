import { type BatchFrame, BatchWriter } from "../Cluster/Envelope.ts"

/**
 * Past this many bytes a room's batch goes out at once instead of at the end of the turn. Counted
 * exactly (UTF-8 as written); well under NATS' default max_payload (1 MB), so a batch of small frames
 * always fits. A single frame larger than this still goes, alone.
 */
export const MAX_BATCH_BYTES = 256 * 1024

/**
 * The room publishes of one event-loop turn, combined per room so that a burst costs one broker
 * message per room rather than one per frame. A frame is never held past the turn it was published
 * in (flushed from `setImmediate`: the end of the turn, not a delay). Order holds per room, and across
 * rooms too: a publish to a room whose batch is not the newest flushes everything first, so the
 * broker sees this node's frames in the order they were published. Each frame is written into its
 * batch's envelope when published (a binary caller may reuse its buffer once publish returned).
 */
export class TurnBatches {
  private readonly pending = new Map<string, BatchWriter>()
  private newest: string | undefined
  private scheduled = false

  /** `send` gets the envelope (a batch, or a plain one for a lone frame) and how many frames it holds. */
  constructor(
    private readonly header: Uint8Array,
    private readonly send: (room: string, envelope: Uint8Array, frames: number) => void,
    private readonly maxBytes = MAX_BATCH_BYTES
  ) {}

  add(room: string, frame: BatchFrame): void {
    let batch = this.pending.get(room)
    // A frame that would take a non-empty batch past the limit starts a new one (after sending the old).
    if (batch && (this.newest !== room || batch.bytes + 5 + byteSize(frame) > this.maxBytes)) {
      this.flush()
      batch = undefined
    }
    if (!batch) {
      batch = new BatchWriter(this.header, byteSize(frame))
      this.pending.set(room, batch)
      this.newest = room
    }
    batch.add(frame)
    if (batch.bytes >= this.maxBytes) this.flush()
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
    for (const [room, batch] of batches) this.send(room, batch.finish(), batch.count)
  }

  private readonly endOfTurn = () => {
    this.scheduled = false
    this.flush()
  }
}

/** A frame's size in the batch: exact for bytes, an upper bound for text (3 bytes per UTF-16 unit). */
const byteSize = (frame: BatchFrame) => (typeof frame === "string" ? frame.length * 3 : frame.length)
