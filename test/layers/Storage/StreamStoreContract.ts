import { describe, expect } from "bun:test"
import { Effect, FastCheck as fc, type Layer } from "effect"
import type { StreamBounds } from "../../../src/storage/Stream.ts"
import { MemoryStreamStore } from "../../../layers/Storage/MemoryStreamStore.ts"
import { StreamStore } from "../../../layers/Storage/StreamStore.ts"
import { it } from "../../support/effect.ts"

export interface StreamBackend {
  readonly name: string
  /** Built afresh for every test (on the same storage when persistent). */
  readonly layer: Layer.Layer<StreamStore, unknown>
  readonly persistent: boolean
  readonly skip?: boolean
  /** The store with the answers of its first `drops` batch writes lost after the write (backends with a wire). */
  readonly droppingAnswers?: (drops: number) => Layer.Layer<StreamStore, unknown>
}

const unique = (base: string) => `${base}-${crypto.randomUUID().slice(0, 8)}`
const seqs = (entries: ReadonlyArray<{ readonly seq: number }>) => entries.map((e) => e.seq)
const payloads = (entries: ReadonlyArray<{ readonly payload: string }>) => entries.map((e) => e.payload)

type Op =
  | { readonly op: "append"; readonly stream: number; readonly payload: string }
  | { readonly op: "read"; readonly stream: number; readonly after: number; readonly limit: number | undefined }
  | { readonly op: "remove"; readonly stream: number }

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("append" as const),
      stream: fc.nat(1),
      payload: fc.fullUnicodeString({ maxLength: 12 })
    })
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("read" as const),
      stream: fc.nat(1),
      after: fc.integer({ min: -1, max: 30 }),
      limit: fc.option(fc.nat(6), { nil: undefined })
    })
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("remove" as const), stream: fc.nat(1) }) }
)
const boundsArbitrary: fc.Arbitrary<StreamBounds> = fc.record(
  { maxEntries: fc.nat(8), maxBytes: fc.nat(48) },
  { requiredKeys: [] }
)

/** The StreamStore contract, plus a model check of the backend against the memory store. */
export const streamStoreContract = (backend: StreamBackend) =>
  describe(`StreamStore contract: ${backend.name}`, () => {
    const test = <E>(name: string, body: () => Effect.Effect<void, E, StreamStore>, timeout?: number) =>
      it.skipIf(backend.skip === true).live(name, () => Effect.provide(Effect.suspend(body), backend.layer), timeout)

    test("seqs start at 1 and grow by one; position follows", () =>
      Effect.gen(function* () {
        const store = yield* StreamStore
        const stream = unique("room")
        const fresh = yield* store.position(stream)
        expect(fresh).toMatchObject({ first: 0, last: 0 })
        for (const [i, payload] of ["a", "b", "c"].entries()) {
          const entry = yield* store.append(stream, payload, {})
          expect(entry).toMatchObject({ seq: i + 1, payload })
          expect(typeof entry.at).toBe("number")
        }
        const position = yield* store.position(stream)
        expect(position).toEqual({ epoch: fresh.epoch, first: 1, last: 3 })
        expect(payloads(yield* store.readAfter(stream, 0))).toEqual(["a", "b", "c"])
      }))

    test("maxEntries drops the oldest entries; seqs are never reused", () =>
      Effect.gen(function* () {
        const store = yield* StreamStore
        const stream = unique("room")
        for (let i = 1; i <= 5; i++) yield* store.append(stream, `m${i}`, { maxEntries: 3 })
        expect(seqs(yield* store.readAfter(stream, 0))).toEqual([3, 4, 5])
        expect(yield* store.position(stream)).toMatchObject({ first: 3, last: 5 })
        yield* store.append(stream, "m6", { maxEntries: 1 })
        expect(seqs(yield* store.readAfter(stream, 0))).toEqual([6])
      }))

    test("maxBytes counts UTF-8 bytes and drops the oldest first", () =>
      Effect.gen(function* () {
        const store = yield* StreamStore
        const stream = unique("room")
        yield* store.append(stream, "aaaa", { maxBytes: 10 })
        yield* store.append(stream, "bbbb", { maxBytes: 10 })
        yield* store.append(stream, "éé", { maxBytes: 10 }) // 4 bytes: 12 > 10, "aaaa" goes
        expect(payloads(yield* store.readAfter(stream, 0))).toEqual(["bbbb", "éé"])
        yield* store.append(stream, "€", { maxBytes: 10 }) // 3 bytes: 11 > 10, "bbbb" goes
        expect(payloads(yield* store.readAfter(stream, 0))).toEqual(["éé", "€"])
        // An entry larger than the bound is stored and dropped at once: the stream is empty, its seq is spent.
        const big = yield* store.append(stream, "x".repeat(11), { maxBytes: 10 })
        expect(big.seq).toBe(5)
        expect(yield* store.readAfter(stream, 0)).toEqual([])
        expect(yield* store.position(stream)).toMatchObject({ first: 0, last: 5 })
        expect((yield* store.append(stream, "y", { maxBytes: 10 })).seq).toBe(6)
        expect(yield* store.position(stream)).toMatchObject({ first: 6, last: 6 })
      }))

    test("a tightened bound trims a long stream in one append", () =>
      Effect.gen(function* () {
        const store = yield* StreamStore
        const stream = unique("room")
        for (let i = 0; i < 150; i++) yield* store.append(stream, "x", {})
        yield* store.append(stream, "yy", { maxBytes: 4 })
        expect(seqs(yield* store.readAfter(stream, 0))).toEqual([149, 150, 151]) // 1 + 1 + 2 bytes
        expect(yield* store.position(stream)).toMatchObject({ first: 149, last: 151 })
        yield* store.append(stream, "z", { maxBytes: 4 })
        expect(payloads(yield* store.readAfter(stream, 0))).toEqual(["x", "yy", "z"])
      }))

    test("concurrent appends, also to a brand-new stream, get distinct consecutive seqs", () =>
      Effect.gen(function* () {
        const store = yield* StreamStore
        const stream = unique("busy")
        const entries = yield* Effect.forEach(
          Array.from({ length: 12 }, (_, i) => `m${i}`),
          (p) => store.append(stream, p, { maxEntries: 8 }),
          {
            concurrency: "unbounded"
          }
        )
        expect(seqs(entries).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1))
        expect(seqs(yield* store.readAfter(stream, 0))).toEqual([5, 6, 7, 8, 9, 10, 11, 12])
        expect(yield* store.position(stream)).toMatchObject({ first: 5, last: 12 })
      }))

    test("readAfter honours afterSeq and limit", () =>
      Effect.gen(function* () {
        const store = yield* StreamStore
        const stream = unique("room")
        for (let i = 1; i <= 6; i++) yield* store.append(stream, `m${i}`, { maxEntries: 4 })
        expect(seqs(yield* store.readAfter(stream, 0))).toEqual([3, 4, 5, 6])
        expect(seqs(yield* store.readAfter(stream, 4))).toEqual([5, 6])
        expect(seqs(yield* store.readAfter(stream, 0, 2))).toEqual([3, 4])
        expect(seqs(yield* store.readAfter(stream, 3, 1))).toEqual([4])
        expect(yield* store.readAfter(stream, 6)).toEqual([])
        expect(yield* store.readAfter(stream, 0, 0)).toEqual([])
        expect(yield* store.readAfter(unique("nothing"), 0)).toEqual([])
      }))

    test("remove starts a new epoch at seq 1; other streams are untouched", () =>
      Effect.gen(function* () {
        const store = yield* StreamStore
        const stream = unique("room")
        const other = unique("other")
        yield* store.append(stream, "old", {})
        yield* store.append(other, "kept", {})
        const before = yield* store.position(stream)
        yield* store.remove(stream)
        expect(yield* store.readAfter(stream, 0)).toEqual([])
        const after = yield* store.position(stream)
        expect(after.epoch).not.toBe(before.epoch)
        expect(after).toMatchObject({ first: 0, last: 0 })
        expect((yield* store.append(stream, "new", {})).seq).toBe(1)
        expect((yield* store.position(stream)).epoch).toBe(after.epoch)
        expect(payloads(yield* store.readAfter(other, 0))).toEqual(["kept"])
      }))

    test("stream keys are exact: case and trailing spaces matter", () =>
      Effect.gen(function* () {
        const store = yield* StreamStore
        const stream = unique("Room")
        yield* store.append(stream, "one", {})
        expect(yield* store.readAfter(stream.toLowerCase(), 0)).toEqual([])
        expect(yield* store.readAfter(`${stream} `, 0)).toEqual([])
      }))

    if (backend.persistent) {
      const stream = unique("durable")
      let epoch = ""
      test("persists across re-open (write)", () =>
        Effect.gen(function* () {
          const store = yield* StreamStore
          for (let i = 1; i <= 4; i++) yield* store.append(stream, `m${i}`, { maxEntries: 3 })
          epoch = (yield* store.position(stream)).epoch
        }))
      test("persists across re-open (read back)", () =>
        Effect.gen(function* () {
          const store = yield* StreamStore
          expect(yield* store.position(stream)).toEqual({ epoch, first: 2, last: 4 })
          expect((yield* store.append(stream, "m5", { maxEntries: 3 })).seq).toBe(5)
          expect(seqs(yield* store.readAfter(stream, 0))).toEqual([3, 4, 5])
        }))
    }

    test(
      "behaves like the memory store on random operations and bounds",
      () =>
        Effect.gen(function* () {
          const store = yield* StreamStore
          const model = yield* Effect.provide(StreamStore, MemoryStreamStore)
          const property = fc.asyncProperty(
            fc.array(opArbitrary, { maxLength: 24 }),
            boundsArbitrary,
            async (ops, bounds) => {
              const run = Effect.gen(function* () {
                const keys = [unique("p0"), unique("p1")]
                const epochs = new Map<string, [string, string]>()
                for (const key of keys)
                  epochs.set(key, [(yield* store.position(key)).epoch, (yield* model.position(key)).epoch])
                for (const step of ops) {
                  const key = keys[step.stream]!
                  if (step.op === "append") {
                    const [got, want] = [
                      yield* store.append(key, step.payload, bounds),
                      yield* model.append(key, step.payload, bounds)
                    ]
                    expect({ seq: got.seq, payload: got.payload }).toEqual({ seq: want.seq, payload: want.payload })
                  } else if (step.op === "read") {
                    const got = yield* store.readAfter(key, step.after, step.limit)
                    const want = yield* model.readAfter(key, step.after, step.limit)
                    expect(got.map(({ seq, payload }) => ({ seq, payload }))).toEqual(
                      want.map(({ seq, payload }) => ({ seq, payload }))
                    )
                  } else {
                    yield* store.remove(key)
                    yield* model.remove(key)
                  }
                  const [got, want] = [yield* store.position(key), yield* model.position(key)]
                  expect({ first: got.first, last: got.last }).toEqual({ first: want.first, last: want.last })
                  const [gotEpoch, wantEpoch] = epochs.get(key)!
                  expect(got.epoch !== gotEpoch).toBe(want.epoch !== wantEpoch)
                  epochs.set(key, [got.epoch, want.epoch])
                }
              })
              await Effect.runPromise(run)
            }
          )
          yield* Effect.promise(() => fc.assert(property, { numRuns: 40 }))
        }),
      15_000
    )
  })
