import { describe, expect } from "bun:test"
import { Effect, Either, FastCheck as fc, Option } from "effect"
import { MemoryStreamStore } from "../../../layers/Storage/MemoryStreamStore.ts"
import { StreamStore } from "../../../layers/Storage/StreamStore.ts"
import { it } from "../../support/effect.ts"
import type { StreamBackend } from "./StreamStoreContract.ts"

const unique = (base: string) => `${base}-${crypto.randomUUID().slice(0, 8)}`
const pairs = (entries: ReadonlyArray<{ readonly seq: number; readonly payload: string }>) =>
  entries.map(({ seq, payload }) => [seq, payload])

/** appendMany: consecutive seqs in order, trimmed as if each payload had been appended on its own. */
export const streamStoreBatchContract = (backend: StreamBackend) =>
  describe(`StreamStore appendMany: ${backend.name}`, () => {
    const test = <E>(name: string, body: () => Effect.Effect<void, E, StreamStore>, timeout?: number) =>
      it.skipIf(backend.skip === true).live(name, () => Effect.provide(Effect.suspend(body), backend.layer), timeout)

    test("returns consecutive seqs in order, after and before single appends", () =>
      Effect.gen(function* () {
        const store = yield* StreamStore
        const stream = unique("batch")
        expect(yield* store.appendMany(stream, [], {})).toEqual([])
        yield* store.append(stream, "first", {})
        const batch = yield* store.appendMany(stream, ["a", "b", "c", "d"], {})
        expect(pairs(batch)).toEqual([
          [2, "a"],
          [3, "b"],
          [4, "c"],
          [5, "d"]
        ])
        expect((yield* store.append(stream, "last", {})).seq).toBe(6)
        expect(pairs(yield* store.readAfter(stream, 0))).toEqual([[1, "first"], ...pairs(batch), [6, "last"]])
        expect(yield* store.position(stream)).toMatchObject({ first: 1, last: 6 })
      }))

    test("a batch larger than the bounds keeps only its newest entries; oversized entries are dropped", () =>
      Effect.gen(function* () {
        const store = yield* StreamStore
        const stream = unique("batch")
        yield* store.appendMany(stream, ["old1", "old2"], { maxEntries: 3 })
        const batch = yield* store.appendMany(
          stream,
          Array.from({ length: 300 }, (_, i) => `m${i}`),
          { maxEntries: 3 }
        )
        expect(batch.map((entry) => entry.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i + 3))
        expect(pairs(yield* store.readAfter(stream, 0))).toEqual([
          [300, "m297"],
          [301, "m298"],
          [302, "m299"]
        ])
        yield* store.appendMany(stream, ["yy", "x".repeat(11)], { maxBytes: 10 })
        expect(yield* store.readAfter(stream, 0)).toEqual([])
        expect(yield* store.position(stream)).toMatchObject({ first: 0, last: 304 })
      }))

    test("a batch appended again under its id (its answer lost) returns the same seqs and is stored once", () =>
      Effect.gen(function* () {
        const store = yield* StreamStore
        const stream = unique("resent")
        const batch = crypto.randomUUID()
        const first = yield* store.appendMany(stream, ["a", "b", "c"], {}, batch)
        yield* store.append(stream, "other", {})
        const again = yield* store.appendMany(stream, ["a", "b", "c"], {}, batch)
        expect(pairs(again)).toEqual(pairs(first))
        expect(again.map((entry) => entry.at)).toEqual(first.map((entry) => entry.at))
        expect(pairs(yield* store.readAfter(stream, 0))).toEqual([...pairs(first), [4, "other"]])
        expect(pairs(yield* store.appendMany(stream, ["a"], {}))).toEqual([[5, "a"]])
      }))

    const lossy = backend.droppingAnswers
    if (lossy)
      for (const drops of [1, 2])
        it.skipIf(backend.skip === true).live(
          drops === 1
            ? "an answer lost after the write: the resend under the batch id returns its seqs, stored once"
            : "no answer to the resend either: the whole batch is reported unsure, and it is stored once",
          () =>
            Effect.gen(function* () {
              const store = yield* StreamStore
              const stream = unique("lost")
              const got = yield* Effect.either(store.appendMany(stream, ["a", "b", "c"], {}))
              if (drops === 1)
                expect(Either.map(got, pairs)).toEqual(
                  Either.right([
                    [1, "a"],
                    [2, "b"],
                    [3, "c"]
                  ])
                )
              else
                expect(Either.getLeft(got).pipe(Option.getOrThrow)).toMatchObject({
                  _tag: "PartialAppend",
                  stored: [],
                  unsure: 3
                })
              expect(pairs(yield* store.readAfter(stream, 0))).toEqual([
                [1, "a"],
                [2, "b"],
                [3, "c"]
              ])
            }).pipe(Effect.provide(lossy(drops)))
        )

    test(
      "trims like one append per payload (against the memory store)",
      () =>
        Effect.gen(function* () {
          const store = yield* StreamStore
          const model = yield* Effect.provide(StreamStore, MemoryStreamStore)
          const property = fc.asyncProperty(
            fc.array(fc.array(fc.fullUnicodeString({ maxLength: 12 }), { maxLength: 6 }), { maxLength: 6 }),
            fc.record({ maxEntries: fc.nat(8), maxBytes: fc.nat(48) }, { requiredKeys: [] }),
            async (batches, bounds) => {
              const run = Effect.gen(function* () {
                const key = unique("model")
                for (const payloads of batches) {
                  const got = yield* store.appendMany(key, payloads, bounds)
                  const want = yield* Effect.forEach(payloads, (payload) => model.append(key, payload, bounds))
                  expect(pairs(got)).toEqual(pairs(want))
                  expect(pairs(yield* store.readAfter(key, 0))).toEqual(pairs(yield* model.readAfter(key, 0)))
                  const [position, wanted] = [yield* store.position(key), yield* model.position(key)]
                  expect([position.first, position.last]).toEqual([wanted.first, wanted.last])
                }
              })
              await Effect.runPromise(run)
            }
          )
          yield* Effect.promise(() => fc.assert(property, { numRuns: 25 }))
        }),
      20_000
    )
  })
