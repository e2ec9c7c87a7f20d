import { describe, expect } from "bun:test"
import { existsSync } from "node:fs"
import { type HttpApp, HttpRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Layer, Option } from "effect"
import { chromium } from "playwright-core"
import { InProcessFederationLive } from "../../layers/Federation/InProcessFederation.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { MemoryFileStore } from "../../layers/Storage/FileStore.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { makeFileRoutes } from "../../src/neighbourhood/Files.ts"
import { serveNeighbourhood } from "../../src/neighbourhood/Server.ts"
import { neighbourhoodPageRoutes } from "../../src/neighbourhood/web/assets.ts"
import { it } from "../support/effect.ts"
import { configFor, serverKeys } from "./support.ts"

const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const haveBrowser = existsSync(chromiumPath)
if (!haveBrowser) console.log(`skipping the Neighbourhood page test: no browser at ${chromiumPath} (set CHROMIUM_PATH)`)

const Live = Layer.mergeAll(
  BunTransportLive,
  InProcessFederationLive,
  InProcessRoomsLive,
  MemoryFileStore({ quotaBytes: 1e6, maxAge: "1 hour" })
).pipe(Layer.provideMerge(Metrics.Default))

describe("Neighbourhood page in a browser", () => {
  it.skipIf(!haveBrowser).live(
    "two people generate keys, see each other online, and chat publicly and privately",
    () =>
      Effect.gen(function* () {
        const page = yield* neighbourhoodPageRoutes
        const files = yield* makeFileRoutes({ maxBytes: 1024, publicUrl: Option.none() })
        const http: HttpApp.Default = HttpRouter.concat(page, files).pipe(
          Effect.catchTag("RouteNotFound", () => HttpServerResponse.unsafeJson({ error: "not found" }, { status: 404 }))
        )
        const config = { ...configFor(0, 1), port: 0, hostname: "127.0.0.1" }
        const { handle } = yield* serveNeighbourhood({
          config,
          identity: serverKeys[0]!.identity,
          neighbours: [],
          http
        })
        const browser = yield* Effect.acquireRelease(
          Effect.promise(() => chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] })),
          (b) => Effect.promise(() => b.close())
        )
        const open = Effect.promise(async () => {
          const tab = await (await browser.newContext()).newPage()
          await tab.goto(`http://127.0.0.1:${handle.port}/`)
          await tab.click("#generate")
          await tab.waitForFunction(
            () => !(document.getElementById("connect") as HTMLButtonElement).disabled,
            undefined,
            { timeout: 15_000 }
          )
          await tab.click("#connect")
          await tab.waitForFunction(
            () => document.getElementById("status")!.textContent!.startsWith("connected"),
            undefined,
            { timeout: 5_000 }
          )
          return tab
        })
        const alice = yield* open
        const bob = yield* open
        const bobFingerprint = yield* Effect.promise(() => bob.textContent("#me"))
        // Alice's list refreshes every 5 s; a reconnect asks at once.
        yield* Effect.promise(() => alice.click("#connect"))
        yield* Effect.promise(() =>
          alice.waitForSelector(`#servers label[title="${bobFingerprint}"]`, { timeout: 10_000 })
        )

        yield* Effect.promise(async () => {
          await alice.fill("#message", "hello neighbourhood")
          await alice.click("#send")
          await bob.waitForFunction(
            () => document.getElementById("log")!.textContent!.includes("(public): hello neighbourhood"),
            undefined,
            { timeout: 5_000 }
          )
          await alice.check(`#servers label[title="${bobFingerprint}"] input`)
          await alice.fill("#message", "just for bob")
          await alice.click("#send")
          await bob.waitForFunction(
            () => document.getElementById("log")!.textContent!.includes("→ you: just for bob"),
            undefined,
            { timeout: 5_000 }
          )
        })
        // Bob knew Alice's key from his client list, so both messages verified.
        expect(
          yield* Effect.promise(() => bob.evaluate(() => document.querySelectorAll("#log .unverified").length))
        ).toBe(0)
      }).pipe(Effect.provide(Live)),
    60_000
  )
})
