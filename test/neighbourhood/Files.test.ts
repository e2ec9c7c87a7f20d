import { describe, expect } from "bun:test"
import { type HttpApp, HttpServerResponse } from "@effect/platform"
import { Effect, Option } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { FileStore, MemoryFileStore } from "../../layers/Storage/FileStore.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { Transport } from "../../layers/Transport/Transport.ts"
import { defaultSocketLimits } from "../../src/shared/SocketLimits.ts"
import { makeFileRoutes } from "../../src/neighbourhood/Files.ts"
import { it } from "../support/effect.ts"

const startFileServer = (maxBytes: number) =>
  Effect.gen(function* () {
    const routes = yield* makeFileRoutes({ maxBytes, publicUrl: Option.none(), uploadsPerMinute: 100 })
    const transport = yield* Transport
    const http: HttpApp.Default = routes.pipe(
      Effect.catchTag("RouteNotFound", () => HttpServerResponse.unsafeJson({ error: "not found" }, { status: 404 }))
    )
    const handle = yield* transport.serve({
      name: "files",
      port: 0,
      hostname: "127.0.0.1",
      limits: defaultSocketLimits,
      http
    })
    return { base: `http://127.0.0.1:${handle.port}`, store: yield* FileStore }
  })

const form = (bytes: Uint8Array<ArrayBuffer> | string, type: string, name = "note.txt", field = "file") => {
  const body = new FormData()
  body.append(field, new File([bytes], name, { type }))
  return body
}

const upload = (base: string, body: BodyInit, headers: Record<string, string> = {}) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}/api/upload`, { method: "POST", body, headers })
    return { status: response.status, body: (await response.json()) as { file_url?: string; error?: string } }
  })

describe("Neighbourhood file API over HTTP", () => {
  it.live("uploads return an absolute unguessable file_url; GET returns the bytes; over the limit is 413", () =>
    Effect.gen(function* () {
      const { base, store } = yield* startFileServer(1024)
      const first = yield* upload(base, form("hello file", "text/plain"))
      expect(first.status).toBe(200)
      expect(first.body.file_url).toMatch(new RegExp(`^${base}/files/[A-Za-z0-9_-]{22}$`))
      const got = yield* Effect.promise(() => fetch(first.body.file_url!))
      expect(got.status).toBe(200)
      expect(got.headers.get("content-type")).toBe("text/plain")
      expect(got.headers.get("x-content-type-options")).toBe("nosniff")
      expect(yield* Effect.promise(() => got.text())).toBe("hello file")

      // The same bytes again: another URL, the same blob.
      const second = yield* upload(base, form("hello file", "text/plain", "copy.txt"))
      expect(second.body.file_url).not.toBe(first.body.file_url)
      expect(yield* store.usage).toEqual({ bytes: 10, files: 2, blobs: 1 })

      const tooBig = yield* upload(base, form(new Uint8Array(1025), "application/octet-stream"))
      expect(tooBig).toEqual({ status: 413, body: { error: "file larger than 1024 bytes" } })
      const tooBigRaw = yield* upload(base, new Uint8Array(200_000), { "content-type": "application/octet-stream" })
      expect(tooBigRaw.status).toBe(413)
      expect((yield* upload(base, form("x", "text/plain", "x.txt", "other"))).status).toBe(400)

      // Uploaded HTML never renders on our origin.
      const page = yield* upload(base, form("<script>alert(1)</script>", "text/html", "evil.html"))
      const served = yield* Effect.promise(() => fetch(page.body.file_url!))
      expect(served.headers.get("content-disposition")).toStartWith("attachment")
      expect(served.headers.get("content-security-policy")).toContain("sandbox")

      expect((yield* Effect.promise(() => fetch(`${base}/files/AAAAAAAAAAAAAAAAAAAAAA`))).status).toBe(404)
      expect((yield* Effect.promise(() => fetch(`${base}/files/../../etc/passwd`))).status).toBe(404)
    }).pipe(
      Effect.provide(BunTransportLive),
      Effect.provide(MemoryFileStore({ quotaBytes: 1_000_000, maxAge: "1 day" })),
      Effect.provide(Metrics.Default)
    )
  )
})
