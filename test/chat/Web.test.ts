import { describe, expect } from "bun:test"
import { Effect, TestClock } from "effect"
import { it } from "../support/effect.ts"
import { client, joined, startChat, startRealChat, takeUntil, text } from "./support.ts"
import { Command } from "../../src/chat/Packet.ts"

const get = (url: string) =>
  Effect.promise(() =>
    fetch(url).then(async (r) => ({ status: r.status, type: r.headers.get("content-type"), body: await r.text() }))
  )

describe("chat: HTTP side (the page over a real socket, the rest in memory)", () => {
  it.live("GET / serves the page, GET /chat.js its module script (valid JavaScript), on the chat port", () =>
    Effect.gen(function* () {
      const { handle } = yield* startRealChat({ page: true })
      const page = yield* get(`${handle.url}/`)
      expect(page.status).toBe(200)
      expect(page.type).toContain("text/html")
      expect(page.body).toContain('<script type="module" src="/chat.js"></script>')
      expect(page.body).toContain('id="nick"')
      expect(page.body).toContain('id="room"')
      // The server's byte limits, for the page to check before sending.
      expect(page.body).toContain('data-max-nick-bytes="32" data-max-room-name-bytes="64" data-max-message-bytes="220"')
      expect(page.body).not.toContain("{{")
      const script = yield* get(`${handle.url}/chat.js`)
      expect(script.status).toBe(200)
      expect(script.type).toContain("javascript")
      expect(script.body).toContain("magic string :)")
      expect(() => new Bun.Transpiler({ loader: "js" }).transformSync(script.body)).not.toThrow()
      expect((yield* get(`${handle.url}/favicon.ico`)).status).toBe(204)
      expect((yield* get(`${handle.url}/nope`)).status).toBe(404)
    })
  )

  it.effect("GET /health answers {status: OK} with uptime, connections, rooms and users, like the other servers", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      const a = yield* joined(chat, "alice", "lobby")
      yield* joined(chat, "bob", "elsewhere")
      yield* client(chat)
      yield* takeUntil(a.client, (p) => p.cmd === Command.NEW_USER)
      yield* TestClock.adjust("5 seconds") // within the handshake timeout of the third (nick-less) client
      const response = yield* chat.fetch("/health")
      expect(response.status).toBe(200)
      expect(yield* Effect.promise(() => response.json())).toEqual({
        status: "OK",
        server: "chat",
        uptime: 5,
        connections: 3,
        rooms: 2,
        users: 2
      })
      expect((yield* chat.fetch("/nope")).status).toBe(404)
    })
  )

  it.effect("/metrics shows presence (rooms, members, users) and message and join counts", () =>
    Effect.gen(function* () {
      const chat = yield* startChat({ page: true })
      const a = yield* joined(chat, "alice", "lobby")
      yield* joined(chat, "bob", "lobby")
      yield* takeUntil(a.client, (p) => text(p) === "bob")
      for (const m of ["one", "two", "three"]) a.client.sendMessage(m)
      yield* takeUntil(a.client, (p) => p.cmd === Command.NEW_MSG && text(p) === "three")
      a.client.send(Command.NEW_MSG, "x".repeat(500))
      yield* takeUntil(a.client, (p) => p.cmd === Command.RESP_ERROR)
      const metrics = yield* chat
        .fetch("/metrics")
        .pipe(Effect.flatMap((response) => Effect.promise(() => response.text())))
      expect(metrics).toContain('switchboard_chat_rooms{server="chat"} 1')
      expect(metrics).toContain('switchboard_chat_members{server="chat"} 2')
      expect(metrics).toContain('switchboard_chat_users{server="chat"} 2')
      expect(metrics).toContain('switchboard_chat_messages_total{server="chat"} 3')
      expect(metrics).toContain('switchboard_chat_joins_total{server="chat"} 2')
      expect(metrics).toContain('switchboard_chat_errors_total{server="chat",reason="tooLong"} 1')
    })
  )
})
