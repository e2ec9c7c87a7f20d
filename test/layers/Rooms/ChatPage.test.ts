import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { Command } from "../../../src/tpacket/Packet.ts"
import { eventually, it } from "../../support/effect.ts"
import { joined, startChat, takeUntil, text } from "./chatSupport.ts"

/** Just enough DOM for programs/chat-web/chat.js: elements by id with listeners, values and children. */
const fakeDom = () => {
  const elements: Record<string, any> = {}
  const byId = (id: string) =>
    (elements[id] ??= {
      value: "",
      textContent: "",
      hidden: false,
      children: [] as Array<{ textContent: string }>,
      listeners: {} as Record<string, (event: unknown) => void>,
      addEventListener(type: string, listener: (event: unknown) => void) {
        this.listeners[type] = listener
      },
      append(child: { textContent: string }) {
        this.children.push(child)
      },
      replaceChildren(...children: Array<{ textContent: string }>) {
        this.children = children
      },
      focus() {},
      scrollTop: 0,
      scrollHeight: 0
    })
  const submit = (id: string) => byId(id).listeners.submit({ preventDefault() {} })
  const lines = (id: string) => byId(id).children.map((c: { textContent: string }) => c.textContent) as Array<string>
  return { document: { getElementById: byId, createElement: () => ({ textContent: "", className: "" }) }, byId, submit, lines }
}

describe("chat: the browser page's script", () => {
  it.live("joins a room, shows roster, history and messages, and sends what is typed", () =>
    Effect.gen(function* () {
      const { handle, url } = yield* startChat()
      const other = yield* joined(url, "bob", "lobby")
      yield* takeUntil(other.client, (p) => text(p) === "bob")
      other.client.sendMessage("earlier")
      yield* takeUntil(other.client, (p) => p.cmd === Command.NEW_MSG)

      const dom = fakeDom()
      Object.assign(globalThis, { document: dom.document, location: { protocol: "http:", host: `127.0.0.1:${handle.port}` } })
      yield* Effect.promise(() => import("../../../programs/chat-web/chat.js" as string))
      dom.byId("nick").value = "page"
      dom.byId("room").value = "lobby"
      dom.submit("login")
      yield* eventually(() => dom.byId("status").textContent === "page in lobby", "the page joined")
      expect(dom.byId("compose").hidden).toBe(false)
      dom.byId("message").value = "hello from the page"
      dom.submit("compose")

      const seen = yield* takeUntil(other.client, (p) => p.cmd === Command.NEW_MSG)
      expect(seen.map((p) => [p.cmd, text(p)])).toEqual([
        [Command.NEW_USER, "page"],
        [Command.NEW_MSG, "hello from the page"]
      ])
      yield* eventually(() => dom.lines("log").includes("page: hello from the page"), "the page shows its own message")
      expect(dom.lines("log")).toEqual(["page is in the room", "bob is in the room", "bob: earlier", "page: hello from the page"])
      expect(dom.lines("roster").sort()).toEqual(["bob", "page"])
      other.client.close()
      yield* eventually(() => dom.lines("log").includes("bob left the room"), "the page shows the leave")
      expect(dom.lines("roster")).toEqual(["page"])
    }))
})
