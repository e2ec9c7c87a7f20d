import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { Command } from "../../src/chat/Packet.ts"
import { it } from "../support/effect.ts"
import { realClient, startRealChat, takeUntil, text } from "./support.ts"

interface FakeElement {
  value: string
  textContent: string
  className: string
  hidden: boolean
  children: Array<FakeElement>
  listeners: Record<string, (event: unknown) => void>
  [key: string]: unknown
}

/**
 * Just enough DOM for src/chat/web/chat.js: elements by id with listeners, values and children.
 * Every change wakes the test's waiters, so the test waits for DOM states, never for time.
 */
const fakeDom = () => {
  const waiters = new Set<() => void>()
  const changed = () => {
    for (const wake of [...waiters]) wake()
  }
  const element = (): FakeElement => {
    let text = ""
    let hidden = false
    let value = ""
    const self: FakeElement = {
      get value() {
        return value
      },
      set value(v: string) {
        value = v
        changed()
      },
      get textContent() {
        return text
      },
      set textContent(t: string) {
        text = t
        changed()
      },
      get hidden() {
        return hidden
      },
      set hidden(h: boolean) {
        hidden = h
        changed()
      },
      className: "",
      children: [],
      listeners: {},
      dataset: {},
      setAttribute() {},
      addEventListener(type: string, listener: (event: unknown) => void) {
        self.listeners[type] = listener
      },
      append(...children: Array<FakeElement>) {
        self.children.push(...children)
        changed()
      },
      replaceChildren(...children: Array<FakeElement>) {
        self.children = children
        changed()
      },
      focus() {},
      scrollTop: 0,
      scrollHeight: 0
    }
    return self
  }
  const elements: Record<string, FakeElement> = {}
  const byId = (id: string) => (elements[id] ??= element())
  const submit = (id: string) => byId(id).listeners.submit!({ preventDefault() {} })
  const lines = (id: string) => byId(id).children.map((c) => c.textContent)
  /** Resolves once `probe` holds, re-checked on every DOM change. */
  const until = (probe: () => boolean, label: string) =>
    Effect.async<void>((resume) => {
      if (probe()) return resume(Effect.void)
      const wake = () => {
        if (!probe()) return
        waiters.delete(wake)
        resume(Effect.void)
      }
      waiters.add(wake)
      return Effect.sync(() => waiters.delete(wake))
    }).pipe(
      Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error(`the page never reached: ${label}`) }),
      Effect.orDie
    )
  return { document: { getElementById: byId, createElement: element }, byId, submit, lines, until }
}

describe("chat: the browser page's script (fake DOM, real socket)", () => {
  it.live("joins a room, shows roster, history and messages, and sends what is typed", () =>
    Effect.gen(function* () {
      const { handle, url } = yield* startRealChat()
      const other = yield* realClient(url)
      yield* Effect.promise(() => Promise.all([other.setNick("bob"), other.setRoom("lobby")]))
      other.sendMessage("earlier")
      yield* takeUntil(other, (p) => p.cmd === Command.NEW_MSG)

      const dom = fakeDom()
      Object.assign(globalThis, {
        document: dom.document,
        location: { protocol: "http:", host: `127.0.0.1:${handle.port}` }
      })
      yield* Effect.promise(() => import("../../src/chat/web/chat.js" as string))
      dom.byId("nick").value = "page"
      dom.byId("room").value = "lobby"
      dom.submit("login")
      yield* dom.until(() => dom.byId("status").textContent === "page in lobby", "the page joined")
      expect(dom.byId("compose").hidden).toBe(false)
      dom.byId("message").value = "hello from the page"
      dom.submit("compose")

      const seen = yield* takeUntil(other, (p) => p.cmd === Command.NEW_MSG)
      expect(seen.map((p) => [p.cmd, text(p)])).toEqual([
        [Command.NEW_USER, "page"],
        [Command.NEW_MSG, "hello from the page"]
      ])
      yield* dom.until(() => dom.lines("log").includes("page: hello from the page"), "the page shows its own message")
      expect(dom.lines("log")).toEqual([
        "page is in the room",
        "bob is in the room",
        "bob: earlier",
        "page: hello from the page"
      ])
      expect(dom.lines("roster").sort()).toEqual(["bob", "page"])
      expect(
        dom
          .byId("roster")
          .children.filter((c) => c.className === "me")
          .map((c) => c.textContent)
      ).toEqual(["page"])
      // Cleared only now that the server has sent the message back.
      expect(dom.byId("message").value).toBe("")
      other.close()
      yield* dom.until(() => dom.lines("log").includes("bob left the room"), "the page shows the leave")
      expect(dom.lines("roster")).toEqual(["page"])
      dom.byId("leave").listeners.click!({})
      expect(dom.byId("status").textContent).toBe("left the room")
      expect(dom.lines("roster")).toEqual([])
      expect(dom.byId("login").hidden).toBe(false)
    })
  )
})
