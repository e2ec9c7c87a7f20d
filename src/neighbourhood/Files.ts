import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Clock, Effect, Option, type Scope } from "effect"
import { FileStore, type FileStoreError } from "../../layers/Storage/FileStore.ts"
import { ClientAddress } from "../../layers/Transport/Transport.ts"
import { makeKeyedLimiter } from "../shared/RateLimiter.ts"
import { uploadFormOverhead } from "./Config.ts"

export interface FileApiOptions {
  /** Largest file in bytes; a larger upload gets 413. */
  readonly maxBytes: number
  /** Base of file_url; None: the origin the upload request came to. */
  readonly publicUrl: Option.Option<string>
  /** Uploads per minute one address may make (a burst of as many). */
  readonly uploadsPerMinute?: number
}

/** Types a browser may show inline from our origin; anything else (HTML, SVG, scripts) downloads. */
const inlineTypes =
  /^(image\/(png|jpeg|gif|webp|avif)|text\/plain|application\/pdf|audio\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+)$/
const mediaType = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/

const cleanType = (value: string | null | undefined) => {
  const type = (value ?? "").split(";")[0]!.trim().toLowerCase()
  return mediaType.test(type) ? type : "application/octet-stream"
}

const cleanName = (value: string | undefined) =>
  (value ?? "file").replace(/[\u0000-\u001f\u007f"\\/]/g, "_").slice(0, 200) || "file"

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(body, { status, headers })

/** Reads at most `limit` bytes of a body; undefined when it is longer. */
const readLimited = async (
  body: ReadableStream<Uint8Array> | null,
  limit: number
): Promise<Uint8Array<ArrayBuffer> | undefined> => {
  if (!body) return new Uint8Array()
  const chunks: Array<Uint8Array> = []
  let total = 0
  const reader = body.getReader()
  while (true) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > limit) {
      await reader.cancel().catch(() => undefined)
      return undefined
    }
    chunks.push(value)
  }
  const bytes = new Uint8Array(total)
  let offset = 0
  for (const chunk of chunks) {
    bytes.set(chunk, offset)
    offset += chunk.byteLength
  }
  return bytes
}

type Upload =
  | { readonly bytes: Uint8Array; readonly contentType: string; readonly name: string }
  | { readonly problem: number; readonly message: string }

/** The uploaded file: the `file` field of a multipart form (v1.2 "in the same format as an HTTP form"), or a raw body. */
const readUpload = async (request: Request, maxBytes: number): Promise<Upload> => {
  const tooLarge = { problem: 413, message: `file larger than ${maxBytes} bytes` }
  const declared = Number(request.headers.get("content-length") ?? "0")
  if (declared > maxBytes + uploadFormOverhead) return tooLarge
  const contentType = request.headers.get("content-type") ?? ""
  const body = await readLimited(request.body, maxBytes + uploadFormOverhead)
  if (!body) return tooLarge
  if (!contentType.toLowerCase().startsWith("multipart/form-data")) {
    if (body.byteLength > maxBytes) return tooLarge
    if (body.byteLength === 0) return { problem: 400, message: "empty upload" }
    return { bytes: body, contentType: cleanType(contentType), name: "file" }
  }
  let form: FormData
  try {
    form = await new Response(body, { headers: { "content-type": contentType } }).formData()
  } catch {
    return { problem: 400, message: "unreadable multipart form" }
  }
  const file = form.get("file")
  if (!file || typeof file === "string") return { problem: 400, message: 'the form has no file field named "file"' }
  if (file.size > maxBytes) return tooLarge
  return {
    bytes: new Uint8Array(await file.arrayBuffer()),
    contentType: cleanType(file.type),
    name: cleanName(file.name)
  }
}

/**
 * The v1.2 file API on the WebSocket port: POST /api/upload → {"file_url": absolute URL},
 * GET /files/<id> → the bytes. Ids are 128 random bits (the URL is the only secret, as v1.2
 * says); files are stored through the FileStore (content-addressed, with quota and expiry).
 */
export const makeFileRoutes = (
  options: FileApiOptions
): Effect.Effect<HttpRouter.HttpRouter, never, FileStore | Scope.Scope> =>
  Effect.gen(function* () {
    const store = yield* FileStore
    const perMinute = options.uploadsPerMinute ?? 30
    const limiter = yield* makeKeyedLimiter("neighbourhood uploads", {
      ratePerSecond: perMinute / 60,
      burst: perMinute
    })
    const storeFailed = (error: FileStoreError) =>
      error.reason === "TooLarge"
        ? Effect.succeed(json(413, { error: error.message }))
        : Effect.logError(error.message).pipe(Effect.as(json(503, { error: "file storage is unavailable" })))

    const upload = Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const address = Option.getOrElse(yield* Effect.serviceOption(ClientAddress), () => "unknown")
      const now = yield* Clock.currentTimeMillis
      if (!limiter.admit(address, now)) {
        return json(
          429,
          { error: "too many uploads; try again later" },
          { "retry-after": String(limiter.retryAfter(address, now)) }
        )
      }
      const source = request.source as Request
      const received = yield* Effect.promise(() => readUpload(source, options.maxBytes))
      if ("problem" in received) return json(received.problem, { error: received.message })
      const stored = yield* store.put(received.bytes, { contentType: received.contentType, name: received.name })
      const base = Option.getOrElse(options.publicUrl, () => new URL(source.url).origin).replace(/\/+$/, "")
      return json(200, { file_url: `${base}/files/${stored.id}` })
    }).pipe(Effect.catchTag("FileStoreError", storeFailed))

    const download = Effect.gen(function* () {
      const { id } = yield* HttpRouter.params
      if (!id || !/^[A-Za-z0-9_-]{22}$/.test(id)) return json(404, { error: "no such file" })
      const found = yield* store.get(id)
      if (Option.isNone(found)) return json(404, { error: "no such file" })
      const { file, bytes } = found.value
      const disposition = inlineTypes.test(file.contentType) ? "inline" : "attachment"
      return HttpServerResponse.uint8Array(bytes, {
        contentType: file.contentType,
        headers: {
          "content-disposition": `${disposition}; filename*=UTF-8''${encodeURIComponent(file.name)}`,
          "x-content-type-options": "nosniff",
          "content-security-policy": "default-src 'none'; sandbox",
          "cache-control": "private, max-age=3600"
        }
      })
    }).pipe(Effect.catchTag("FileStoreError", storeFailed))

    return HttpRouter.empty.pipe(HttpRouter.post("/api/upload", upload), HttpRouter.get("/files/:id", download))
  })
