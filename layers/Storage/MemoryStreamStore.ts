import { Clock, Effect, Layer } from "effect"
import { payloadBytes, type StreamBounds, type StreamEntry } from "../../src/storage/Stream.ts"
import { StreamStore } from "./StreamStore.ts"

interface MemoryStream {
  readonly epoch: string
  last: number
  /** Kept entries are entries[head..]; seqs are contiguous, so seq → index is arithmetic. */
  entries: Array<StreamEntry>
  sizes: Array<number>
  head: number
  bytes: number
  /** Named batches of the last `batchMemoryMs`, oldest first: a repeat returns these entries. */
  readonly batches: Map<string, ReadonlyArray<StreamEntry>>
}

/** How long a named batch is remembered: a resend comes within seconds. */
export const batchMemoryMs = 30_000

/** StreamStore in process memory: O(1) amortised append and trim, O(k) reads. */
export const MemoryStreamStore = Layer.sync(StreamStore, () => {
  const streams = new Map<string, MemoryStream>()
  const open = (key: string) => {
    let stream = streams.get(key)
    if (!stream)
      streams.set(
        key,
        (stream = {
          epoch: crypto.randomUUID(),
          last: 0,
          entries: [],
          sizes: [],
          head: 0,
          bytes: 0,
          batches: new Map()
        })
      )
    return stream
  }
  const dropOldest = (stream: MemoryStream) => {
    stream.bytes -= stream.sizes[stream.head]!
    stream.head++
    if (stream.head > 1024 && stream.head * 2 > stream.entries.length) {
      stream.entries = stream.entries.slice(stream.head)
      stream.sizes = stream.sizes.slice(stream.head)
      stream.head = 0
    }
  }
  const appendNow = (key: string, payload: string, bounds: StreamBounds, at: number): StreamEntry => {
    const stream = open(key)
    const entry: StreamEntry = { seq: ++stream.last, payload, at }
    const size = payloadBytes(payload)
    stream.entries.push(entry)
    stream.sizes.push(size)
    stream.bytes += size
    const maxEntries = bounds.maxEntries ?? Infinity
    const maxBytes = bounds.maxBytes ?? Infinity
    while (
      stream.entries.length - stream.head > maxEntries ||
      (stream.bytes > maxBytes && stream.head < stream.entries.length)
    ) {
      dropOldest(stream)
    }
    return entry
  }
  return {
    append: (key, payload, bounds) => Effect.map(Clock.currentTimeMillis, (at) => appendNow(key, payload, bounds, at)),
    appendMany: (key, payloads, bounds, batch) =>
      Effect.map(Clock.currentTimeMillis, (at) => {
        // Nothing is lost between caller and memory: only a batch named by the caller is remembered.
        if (batch === undefined) return payloads.map((payload) => appendNow(key, payload, bounds, at))
        const { batches } = open(key)
        for (const [id, entries] of batches) {
          if (entries.length > 0 && entries[0]!.at >= at - batchMemoryMs) break
          batches.delete(id)
        }
        const earlier = batches.get(batch)
        if (earlier) return earlier
        const entries = payloads.map((payload) => appendNow(key, payload, bounds, at))
        batches.set(batch, entries)
        return entries
      }),
    appendNow,
    readAfter: (key, afterSeq, limit = Number.MAX_SAFE_INTEGER) =>
      Effect.sync(() => {
        const stream = streams.get(key)
        if (!stream || stream.head >= stream.entries.length) return []
        const firstSeq = stream.entries[stream.head]!.seq
        const start = stream.head + Math.max(0, afterSeq + 1 - firstSeq)
        return stream.entries.slice(start, Math.min(stream.entries.length, start + limit))
      }),
    position: (key) =>
      Effect.sync(() => {
        const stream = open(key)
        return { epoch: stream.epoch, first: stream.entries[stream.head]?.seq ?? 0, last: stream.last }
      }),
    remove: (key) => Effect.sync(() => void streams.delete(key))
  }
})
