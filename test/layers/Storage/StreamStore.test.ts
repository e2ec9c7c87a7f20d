import type { SqlClient } from "@effect/sql"
import { describe, expect } from "bun:test"
import { Effect, FastCheck as fc, Layer } from "effect"
import { MemoryStreamStore } from "../../../layers/Storage/MemoryStreamStore.ts"
import { makeSqlStreamStore, SqlStreamStore } from "../../../layers/Storage/SqlStreamStore.ts"
import { StreamStore } from "../../../layers/Storage/StreamStore.ts"
import { it } from "../../support/effect.ts"
import { mysqlAvailable, sqliteFile, sqliteMemory, tempDirectory, throwawayMysql } from "./backends.ts"
import { streamStoreBatchContract } from "./StreamStoreBatchContract.ts"
import { streamStoreContract } from "./StreamStoreContract.ts"

const dir = tempDirectory("streams")
const mysql = throwawayMysql("streams")
const sqlStreams = <E>(database: Layer.Layer<SqlClient.SqlClient, E>) => SqlStreamStore.pipe(Layer.provide(database))
const droppingAnswers =
  <E>(database: Layer.Layer<SqlClient.SqlClient, E>) =>
  (drops: number) => {
    let left = drops
    return Layer.effect(StreamStore, makeSqlStreamStore({ dropAnswer: () => left-- > 0 })).pipe(Layer.provide(database))
  }

for (const backend of [
  { name: "memory", layer: MemoryStreamStore, persistent: false },
  {
    name: "sqlite :memory:",
    layer: sqlStreams(sqliteMemory()),
    persistent: false,
    droppingAnswers: droppingAnswers(sqliteMemory())
  },
  {
    name: "sqlite file",
    layer: sqlStreams(sqliteFile(dir, "streams")),
    persistent: true,
    droppingAnswers: droppingAnswers(sqliteFile(dir, "streams"))
  },
  {
    name: "mysql",
    layer: sqlStreams(mysql.layer),
    persistent: true,
    skip: !mysqlAvailable,
    droppingAnswers: droppingAnswers(mysql.layer)
  }
]) {
  streamStoreContract(backend)
  streamStoreBatchContract(backend)
}

describe("memory store: appendNow", () => {
  it.effect("appending on the spot and through append keeps one sequence, trimmed alike", () =>
    Effect.gen(function* () {
      const store = yield* Effect.provide(StreamStore, MemoryStreamStore)
      const model = yield* Effect.provide(StreamStore, MemoryStreamStore)
      const appendNow = store.appendNow!
      const property = fc.property(
        fc.array(fc.record({ now: fc.boolean(), payload: fc.fullUnicodeString({ maxLength: 12 }) }), {
          maxLength: 24
        }),
        fc.record({ maxEntries: fc.nat(8), maxBytes: fc.nat(48) }, { requiredKeys: [] }),
        (steps, bounds) => {
          const key = `now-${crypto.randomUUID().slice(0, 8)}`
          for (const { now, payload } of steps) {
            const got = now ? appendNow(key, payload, bounds, 7) : Effect.runSync(store.append(key, payload, bounds))
            const want = Effect.runSync(model.append(key, payload, bounds))
            expect({ seq: got.seq, payload: got.payload }).toEqual({ seq: want.seq, payload: want.payload })
            if (now) expect(got.at).toBe(7)
          }
          const read = (s: typeof store) =>
            Effect.runSync(s.readAfter(key, 0)).map(({ seq, payload }) => [seq, payload])
          expect(read(store)).toEqual(read(model))
        }
      )
      fc.assert(property, { numRuns: 60 })
    })
  )
})
