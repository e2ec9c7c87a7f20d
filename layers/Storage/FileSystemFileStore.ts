import { FileSystem } from "@effect/platform"
import { Effect, Layer, Option, Schema } from "effect"
import {
  type BlobBackend,
  FileStore,
  FileStoreError,
  type FileStoreOptions,
  makeFileStore,
  type StoredFile
} from "./FileStore.ts"

const StoredFileJson = Schema.parseJson(
  Schema.Struct({
    id: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]{22}$/)),
    sha256: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/)),
    size: Schema.NonNegativeInt,
    contentType: Schema.String,
    name: Schema.String,
    createdAt: Schema.Number
  })
)

const blobName = /^[0-9a-f]{64}$/
const recordName = /^([A-Za-z0-9_-]{22})\.json$/

/**
 * Blobs as `<dir>/blobs/<sha256>` and upload records as `<dir>/records/<id>.json`, through the
 * platform FileSystem (BunFileSystem in programs). A blob is written to a temporary name and
 * renamed, so a crash never leaves a half-written blob under a real hash.
 */
export const fileSystemBlobBackend = (directory: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const blobs = `${directory}/blobs`
    const records = `${directory}/records`
    const unavailable = (what: string) => (error: { readonly message: string }) =>
      new FileStoreError({ reason: "Unavailable", message: `file store: ${what}: ${error.message}` })
    yield* fs
      .makeDirectory(blobs, { recursive: true, mode: 0o700 })
      .pipe(Effect.mapError(unavailable(`cannot create ${blobs}`)))
    yield* fs
      .makeDirectory(records, { recursive: true, mode: 0o700 })
      .pipe(Effect.mapError(unavailable(`cannot create ${records}`)))

    const backend: BlobBackend = {
      writeBlob: (sha, bytes) =>
        Effect.gen(function* () {
          const temporary = `${blobs}/.${sha}.${crypto.randomUUID()}`
          yield* fs.writeFile(temporary, bytes, { mode: 0o600 })
          yield* fs.rename(temporary, `${blobs}/${sha}`)
        }).pipe(Effect.mapError(unavailable("cannot write a blob"))),
      readBlob: (sha) =>
        fs.readFile(`${blobs}/${sha}`).pipe(
          Effect.map(Option.some),
          Effect.catchIf(
            (error) => error._tag === "SystemError" && error.reason === "NotFound",
            () => Effect.succeed(Option.none())
          ),
          Effect.mapError(unavailable("cannot read a blob"))
        ),
      deleteBlob: (sha) =>
        fs.remove(`${blobs}/${sha}`, { force: true }).pipe(Effect.mapError(unavailable("cannot delete a blob"))),
      listBlobs: fs.readDirectory(blobs).pipe(
        Effect.map((names) => names.filter((name) => blobName.test(name))),
        Effect.mapError(unavailable("cannot list blobs"))
      ),
      saveRecord: (file) =>
        fs
          .writeFileString(`${records}/${file.id}.json`, JSON.stringify(file), { mode: 0o600 })
          .pipe(Effect.mapError(unavailable("cannot write a record"))),
      deleteRecord: (id) =>
        fs
          .remove(`${records}/${id}.json`, { force: true })
          .pipe(Effect.mapError(unavailable("cannot delete a record"))),
      loadRecords: Effect.gen(function* () {
        const loaded: Array<StoredFile> = []
        for (const name of yield* fs.readDirectory(records)) {
          if (!recordName.test(name)) continue
          const text = yield* fs.readFileString(`${records}/${name}`)
          const decoded = Schema.decodeUnknownOption(StoredFileJson)(text)
          if (Option.isSome(decoded)) loaded.push(decoded.value)
          else yield* Effect.logWarning(`file store: ignoring unreadable record ${name}`)
        }
        return loaded
      }).pipe(Effect.mapError(unavailable("cannot load records")))
    }
    return backend
  })

/** The FileStore on a directory; needs a FileSystem (BunFileSystem.layer in programs). */
export const FileSystemFileStore = (directory: string, options: FileStoreOptions) =>
  Layer.scoped(
    FileStore,
    Effect.flatMap(fileSystemBlobBackend(directory), (backend) => makeFileStore(backend, options))
  )
