import { describe, expect } from "bun:test"
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { BunFileSystem } from "@effect/platform-bun"
import { Context, Effect, Layer, Option, TestClock } from "effect"
import { FileStore, type FileStoreOptions, MemoryFileStore } from "../../../layers/Storage/FileStore.ts"
import { FileSystemFileStore } from "../../../layers/Storage/FileSystemFileStore.ts"
import { it } from "../../support/effect.ts"

const bytes = (text: string) => new TextEncoder().encode(text)
const meta = { contentType: "text/plain", name: "a.txt" }
const options: FileStoreOptions = { quotaBytes: 10, maxAge: "1 hour" }

const tempDirectory = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "filestore-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/** Builds the store in the test's scope, so its expiry sweep runs while the test does. */
const storeOf = (layer: Layer.Layer<FileStore, unknown>) =>
  Effect.map(Layer.build(layer), (context) => Context.get(context, FileStore))

/** The same contract for every backend. */
const contract = (name: string, layer: () => Effect.Effect<Layer.Layer<FileStore, unknown>, never, any>) =>
  describe(`FileStore (${name})`, () => {
    it.effect("stores content once however often it is uploaded, under distinct unguessable ids", () =>
      Effect.gen(function* () {
        const store = yield* storeOf(yield* layer())
        const a = yield* store.put(bytes("same"), meta)
        const b = yield* store.put(bytes("same"), { ...meta, name: "b.txt" })
        expect(a.id).not.toBe(b.id)
        expect(a.sha256).toBe(b.sha256)
        expect(yield* store.usage).toEqual({ bytes: 4, files: 2, blobs: 1 })
        const got = yield* store.get(b.id)
        expect(Option.map(got, (g) => new TextDecoder().decode(g.bytes))).toEqual(Option.some("same"))
        yield* store.remove(a.id)
        expect(Option.isSome(yield* store.get(b.id))).toBe(true)
        yield* store.remove(b.id)
        expect(yield* store.usage).toEqual({ bytes: 0, files: 0, blobs: 0 })
      })
    )

    it.effect("evicts the oldest uploads to stay within the quota, and refuses a file larger than the quota", () =>
      Effect.gen(function* () {
        const store = yield* storeOf(yield* layer())
        const first = yield* store.put(bytes("aaaa"), meta)
        yield* TestClock.adjust("1 second")
        const second = yield* store.put(bytes("bbbb"), meta)
        yield* TestClock.adjust("1 second")
        yield* store.put(bytes("cccc"), meta)
        expect(Option.isNone(yield* store.get(first.id))).toBe(true)
        expect(Option.isSome(yield* store.get(second.id))).toBe(true)
        expect((yield* store.usage).bytes).toBe(8)
        const error = yield* Effect.flip(store.put(new Uint8Array(11), meta))
        expect(error.reason).toBe("TooLarge")
      })
    )

    it.effect("forgets uploads older than maxAge", () =>
      Effect.gen(function* () {
        const store = yield* storeOf(yield* layer())
        const old = yield* store.put(bytes("old"), meta)
        yield* TestClock.adjust("61 minutes")
        expect(Option.isNone(yield* store.get(old.id))).toBe(true)
        yield* TestClock.adjust("10 minutes")
        expect(yield* store.usage).toEqual({ bytes: 0, files: 0, blobs: 0 })
      })
    )
  })

contract("memory", () => Effect.succeed(MemoryFileStore(options)))
contract("filesystem", () =>
  Effect.map(tempDirectory, (dir) => FileSystemFileStore(dir, options).pipe(Layer.provide(BunFileSystem.layer)))
)

describe("FileStore (filesystem) across restarts", () => {
  it.effect("keeps uploads across a restart and removes blobs no upload refers to", () =>
    Effect.gen(function* () {
      const dir = yield* tempDirectory
      const layer = FileSystemFileStore(dir, { quotaBytes: 1000, maxAge: "1 day" }).pipe(
        Layer.provide(BunFileSystem.layer)
      )
      const kept = yield* Effect.scoped(Effect.flatMap(storeOf(layer), (store) => store.put(bytes("persisted"), meta)))
      yield* Effect.promise(() => writeFile(join(dir, "blobs", "f".repeat(64)), "orphan"))
      const store = yield* storeOf(layer)
      const got = yield* store.get(kept.id)
      expect(Option.map(got, (g) => new TextDecoder().decode(g.bytes))).toEqual(Option.some("persisted"))
      expect(yield* Effect.promise(() => readdir(join(dir, "blobs")))).toEqual([kept.sha256])
    })
  )
})
