import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Data, Effect } from "effect"

export class PageBuildError extends Data.TaggedError("PageBuildError")<{ readonly message: string }> {}

const pageHeaders = {
  "content-security-policy":
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer"
}

/**
 * The page (GET /) and its script (GET /page.js), bundled once at start from page.ts, which uses
 * the same typed client and WebCrypto code as the tests, so the browser speaks exactly our v1.2.
 */
export const neighbourhoodPageRoutes = Effect.gen(function* () {
  const html = yield* Effect.promise(() => Bun.file(new URL("./index.html", import.meta.url)).text())
  const built = yield* Effect.promise(() =>
    Bun.build({
      entrypoints: [new URL("./page.ts", import.meta.url).pathname],
      target: "browser",
      minify: true,
      format: "esm"
    })
  )
  const output = built.outputs[0]
  if (!built.success || !output) {
    return yield* new PageBuildError({
      message: `the neighbourhood page did not build: ${built.logs.map(String).join("; ").slice(0, 300)}`
    })
  }
  const script = yield* Effect.promise(() => output.text())
  return HttpRouter.empty.pipe(
    HttpRouter.get(
      "/",
      HttpServerResponse.text(html, { contentType: "text/html; charset=utf-8", headers: pageHeaders })
    ),
    HttpRouter.get(
      "/page.js",
      HttpServerResponse.text(script, { contentType: "text/javascript; charset=utf-8", headers: pageHeaders })
    ),
    HttpRouter.get("/favicon.ico", HttpServerResponse.empty({ status: 204 }))
  )
})
