import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { type Browser, chromium, type Page } from "playwright-core"
import { it } from "../support/effect.ts"
import { startRealChat } from "./support.ts"

/**
 * The chat page in real headless Chromium (Debian's package, driven by playwright-core). Outside
 * CI a missing browser skips these tests with a printed reason; in CI (CI=true) it is a failure.
 */
const chromiumPath = process.env.CHROMIUM_PATH ?? Bun.which("chromium") ?? Bun.which("chromium-browser") ?? undefined
if (!chromiumPath) {
  const reason = "chromium is not installed (apt-get install -y chromium, or set CHROMIUM_PATH)"
  if (process.env.CI === "true") throw new Error(`${reason}; CI requires it`)
  console.warn(`skipping the chat page browser tests: ${reason}`)
}

const launch = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: chromiumPath!, args: ["--no-sandbox"] })),
  (browser: Browser) => Effect.promise(() => browser.close())
)

/** A fresh page (its own context, so its own socket) at the given width, every wait bounded. */
const openPage = (browser: Browser, url: string, width: number) =>
  Effect.promise(async () => {
    const context = await browser.newContext({ viewport: { width, height: 700 } })
    const page = await context.newPage()
    page.setDefaultTimeout(5000)
    await page.goto(url)
    return page
  })

const join = async (page: Page, nick: string, room = "lobby") => {
  await page.fill("#nick", nick)
  await page.fill("#room", room)
  await page.click("#login button[type=submit]")
}

const status = (page: Page, text: string | RegExp) => page.locator("#status", { hasText: text }).waitFor()
const rosterOf = (page: Page) => page.locator("#roster li").allTextContents()
const logLine = (page: Page, text: string) => page.locator("#log li", { hasText: text }).first().waitFor()
const rosterCount = (page: Page, count: number) =>
  page.waitForFunction((n) => document.querySelectorAll("#roster li").length === n, count)

describe("chat: the page in headless Chromium", () => {
  it.skipIf(!chromiumPath).live(
    "join, a refusal shown with the server's reason, two pages chatting, byte limits, a refused message kept, leave",
    () =>
      Effect.gen(function* () {
        // A small packet budget, so the server refuses a quick burst of messages (the page must keep the text).
        const { handle } = yield* startRealChat({ page: true, limits: { messagesPerSecond: 1, messageBurst: 6 } })
        const url = `http://127.0.0.1:${handle.port}/`
        const browser = yield* launch
        const alice = yield* openPage(browser, url, 375)
        const bob = yield* openPage(browser, url, 1024)

        yield* Effect.promise(async () => {
          await join(alice, "alice")
          await status(alice, "alice in lobby")
          expect(await rosterOf(alice)).toEqual(["alice"])
          expect(await alice.locator("#roster li.me").textContent()).toBe("alice")

          // On a 375 px screen the messages get the width; the roster is a line above them.
          const log = (await alice.locator("#log").boundingBox())!
          const roster = (await alice.locator("#roster").boundingBox())!
          expect(log.width).toBeGreaterThan(340)
          expect(roster.y + roster.height).toBeLessThanOrEqual(log.y + 1)

          // A taken nick: the server's reason stays on screen (not "disconnected (1005)").
          await join(bob, "alice")
          await status(bob, "nick refused: nick in use, or already set")
          expect(await bob.locator("#login").isVisible()).toBe(true)
          expect(await bob.locator("#status").textContent()).toBe("nick refused: nick in use, or already set")

          // Bytes, not characters: 20 × "é" is 40 bytes, over the server's 32.
          await join(bob, "é".repeat(20))
          await status(bob, "nick is 40 bytes in UTF-8, the server takes at most 32")

          await join(bob, "bob")
          await status(bob, "bob in lobby")
          await rosterCount(alice, 2)
          expect((await rosterOf(alice)).sort()).toEqual(["alice", "bob"])
          expect(await bob.locator("#roster li.me").textContent()).toBe("bob")

          // Two pages chatting; the compose box empties once the server has taken the message.
          await bob.fill("#message", "hello alice")
          await bob.press("#message", "Enter")
          await logLine(alice, "bob: hello alice")
          await logLine(bob, "bob: hello alice")
          await bob.waitForFunction(() => (document.getElementById("message") as HTMLInputElement).value === "")
          await alice.fill("#message", "hi bob")
          await alice.click("#compose button[type=submit]")
          await logLine(bob, "alice: hi bob")

          // A burst over the budget: the server refuses the last ones, and the text stays in the box.
          await bob.evaluate(() => {
            const input = document.getElementById("message") as HTMLInputElement
            const form = document.getElementById("compose") as HTMLFormElement
            for (let i = 0; i < 10; i++) {
              input.value = `burst ${i}`
              form.requestSubmit()
            }
          })
          await bob.locator("#compose-error", { hasText: "not sent: sending too fast" }).waitFor()
          expect(await bob.inputValue("#message")).toBe("burst 9")

          // Leaving: bob's roster is cleared, alice sees bob go.
          await bob.click("#leave")
          await status(bob, "left the room")
          expect(await rosterOf(bob)).toEqual([])
          await logLine(alice, "bob left the room")
          await rosterCount(alice, 1)
          expect(await rosterOf(alice)).toEqual(["alice"])
        })
      }),
    30_000
  )
})
