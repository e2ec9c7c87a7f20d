import { Clock, Context, Data, Duration, Effect, Layer, Option, type Scope } from "effect"
import { repeatEvery } from "../../src/shared/Sweeps.ts"

/** One upload: an unguessable id (what URLs carry) pointing at a content-addressed blob. */
export interface StoredFile {
  /** 128 random bits, base64url: knowing a file's content does not reveal its URL. */
  readonly id: string
  /** SHA-256 of the bytes (hex): the blob's name, so the same bytes are stored once. */
  readonly sha256: string
  readonly size: number
  readonly contentType: string
  readonly name: string
  readonly createdAt: number
}

export class FileStoreError extends Data.TaggedError("FileStoreError")<{
  readonly reason: "TooLarge" | "Unavailable"
  readonly message: string
}> {}

/**
 * A blob store for uploads with a size and age quota: files are kept by id, their bytes by
 * SHA-256, so one upload stored twice costs its bytes once. When a new blob would pass the
 * quota the oldest uploads are deleted first; uploads older than `maxAge` are deleted by a sweep.
 */
export interface FileStoreService {
  readonly put: (
    bytes: Uint8Array,
    meta: { readonly contentType: string; readonly name: string }
  ) => Effect.Effect<StoredFile, FileStoreError>
  readonly get: (
    id: string
  ) => Effect.Effect<Option.Option<{ readonly file: StoredFile; readonly bytes: Uint8Array }>, FileStoreError>
  readonly remove: (id: string) => Effect.Effect<void, FileStoreError>
  /** Distinct bytes stored, files (ids) and blobs. */
  readonly usage: Effect.Effect<{ readonly bytes: number; readonly files: number; readonly blobs: number }>
}

export class FileStore extends Context.Tag("switchboard/FileStore")<FileStore, FileStoreService>() {}

export interface FileStoreOptions {
  /** Bytes all blobs may take together. */
  readonly quotaBytes: number
  /** Uploads older than this are deleted. */
  readonly maxAge: Duration.DurationInput
}

/** Where blobs and the upload records live (a directory, or memory in tests). */
export interface BlobBackend {
  readonly writeBlob: (sha256: string, bytes: Uint8Array) => Effect.Effect<void, FileStoreError>
  readonly readBlob: (sha256: string) => Effect.Effect<Option.Option<Uint8Array>, FileStoreError>
  readonly deleteBlob: (sha256: string) => Effect.Effect<void, FileStoreError>
  readonly listBlobs: Effect.Effect<ReadonlyArray<string>, FileStoreError>
  readonly saveRecord: (file: StoredFile) => Effect.Effect<void, FileStoreError>
  readonly deleteRecord: (id: string) => Effect.Effect<void, FileStoreError>
  readonly loadRecords: Effect.Effect<ReadonlyArray<StoredFile>, FileStoreError>
}

const randomId = () => Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64url")
const sha256Hex = (bytes: Uint8Array) => new Bun.CryptoHasher("sha256").update(bytes).digest("hex")

/** The quota and dedup rules over any backend; records are indexed in memory (loaded at start). */
export const makeFileStore = (
  backend: BlobBackend,
  options: FileStoreOptions
): Effect.Effect<FileStoreService, FileStoreError, Scope.Scope> =>
  Effect.gen(function* () {
    const maxAgeMillis = Duration.toMillis(Duration.decode(options.maxAge))
    /** id → record, oldest first (Map keeps insertion order; records load sorted by age). */
    const files = new Map<string, StoredFile>()
    /** sha256 → { size, ids referring to it }. */
    const blobs = new Map<string, { readonly size: number; readonly ids: Set<string> }>()
    let bytesUsed = 0

    const index = (file: StoredFile) => {
      files.set(file.id, file)
      let blob = blobs.get(file.sha256)
      if (!blob) {
        blobs.set(file.sha256, (blob = { size: file.size, ids: new Set() }))
        bytesUsed += file.size
      }
      blob.ids.add(file.id)
    }

    const drop = (id: string) =>
      Effect.gen(function* () {
        const file = files.get(id)
        if (!file) return
        files.delete(id)
        yield* backend.deleteRecord(id)
        const blob = blobs.get(file.sha256)
        if (!blob) return
        blob.ids.delete(id)
        if (blob.ids.size > 0) return
        blobs.delete(file.sha256)
        bytesUsed -= blob.size
        yield* backend.deleteBlob(file.sha256)
      })

    // Start from what the backend holds; blobs no record points at (an interrupted upload) are removed.
    const records = [...(yield* backend.loadRecords)].sort((a, b) => a.createdAt - b.createdAt)
    for (const record of records) index(record)
    for (const sha of yield* backend.listBlobs) if (!blobs.has(sha)) yield* backend.deleteBlob(sha)

    const expire = (now: number) =>
      Effect.gen(function* () {
        for (const file of [...files.values()]) {
          if (now - file.createdAt < maxAgeMillis) break
          yield* drop(file.id)
        }
      }).pipe(Effect.catchAll((error) => Effect.logWarning(`file store sweep: ${error.message}`)))
    yield* repeatEvery(
      "file store expiry",
      Duration.max(Duration.minutes(1), Duration.millis(Math.min(maxAgeMillis / 10, 3_600_000))),
      expire
    )

    // One upload at a time keeps the quota arithmetic and the records consistent.
    const lock = yield* Effect.makeSemaphore(1)

    const put: FileStoreService["put"] = (bytes, meta) =>
      lock.withPermits(1)(
        Effect.gen(function* () {
          if (bytes.length > options.quotaBytes) {
            return yield* new FileStoreError({
              reason: "TooLarge",
              message: `a file of ${bytes.length} bytes exceeds the storage quota`
            })
          }
          const now = yield* Clock.currentTimeMillis
          yield* expire(now)
          const sha256 = sha256Hex(bytes)
          if (!blobs.has(sha256)) {
            for (const file of [...files.values()]) {
              if (bytesUsed + bytes.length <= options.quotaBytes) break
              yield* drop(file.id)
            }
            yield* backend.writeBlob(sha256, bytes)
          }
          const file: StoredFile = {
            id: randomId(),
            sha256,
            size: bytes.length,
            contentType: meta.contentType,
            name: meta.name,
            createdAt: now
          }
          yield* backend.saveRecord(file)
          index(file)
          return file
        })
      )

    const get: FileStoreService["get"] = (id) =>
      Effect.gen(function* () {
        const file = files.get(id)
        if (!file) return Option.none()
        if ((yield* Clock.currentTimeMillis) - file.createdAt >= maxAgeMillis) return Option.none()
        const bytes = yield* backend.readBlob(file.sha256)
        return Option.map(bytes, (b) => ({ file, bytes: b }))
      })

    return {
      put,
      get,
      remove: (id) => lock.withPermits(1)(drop(id)),
      usage: Effect.sync(() => ({ bytes: bytesUsed, files: files.size, blobs: blobs.size }))
    }
  })

/** Blobs and records in memory: the test double, and `files.backend = "memory"`. */
export const memoryBlobBackend = (): BlobBackend => {
  const blobs = new Map<string, Uint8Array>()
  const records = new Map<string, StoredFile>()
  return {
    writeBlob: (sha, bytes) => Effect.sync(() => void blobs.set(sha, new Uint8Array(bytes))),
    readBlob: (sha) => Effect.sync(() => Option.fromNullable(blobs.get(sha))),
    deleteBlob: (sha) => Effect.sync(() => void blobs.delete(sha)),
    listBlobs: Effect.sync(() => [...blobs.keys()]),
    saveRecord: (file) => Effect.sync(() => void records.set(file.id, file)),
    deleteRecord: (id) => Effect.sync(() => void records.delete(id)),
    loadRecords: Effect.sync(() => [...records.values()])
  }
}

export const MemoryFileStore = (options: FileStoreOptions) =>
  Layer.scoped(FileStore, makeFileStore(memoryBlobBackend(), options))
