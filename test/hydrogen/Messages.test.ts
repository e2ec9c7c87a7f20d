import { describe, expect } from "bun:test"
import { Duration, Effect, Layer, TestClock } from "effect"
import { StreamStore } from "../../layers/Storage/StreamStore.ts"
import { MemoryStreamStore } from "../../layers/Storage/MemoryStreamStore.ts"
import { StorageError } from "../../src/storage/Account.ts"
import { type ExtraHandlers, maxSubscriptionsPerSession } from "../../src/hydrogen/Handlers.ts"
import { applicationError, ErrorCodes } from "../../src/hydrogen/Errors.ts"
import { it } from "../support/effect.ts"
import {
  adminKey,
  apiOnlyKey,
  command,
  connectHydrogen,
  ok,
  post,
  readerKey,
  request,
  startTestHydrogen
} from "./support.ts"

/** A history store whose appends fail (or die), to provoke application errors. */
const brokenStore = (mode: "fail" | "die") =>
  Layer.effect(
    StreamStore,
    Effect.map(StreamStore, (store) =>
      StreamStore.of({
        ...store,
        append: () =>
          mode === "fail"
            ? Effect.fail(new StorageError({ message: "disk on fire" }))
            : Effect.dieMessage("bug in store")
      })
    )
  ).pipe(Layer.provide(MemoryStreamStore))

describe("hydrogen messages", () => {
  it.effect(
    "protocol errors: invalid JSON, bad envelopes and unknown types get structured replies; the connection stays open",
    () =>
      Effect.gen(function* () {
        const hydrogen = yield* startTestHydrogen()
        const client = yield* connectHydrogen(hydrogen)
        yield* client.send("{not json")
        const invalidJson = yield* client.nextJson()
        expect(invalidJson).toMatchObject({ type: "response", error: { category: "protocol", code: "invalid_json" } })
        expect(invalidJson.id).toBeUndefined()
        yield* client.send(JSON.stringify({ type: "command", id: "e1", channel: "system" }))
        const invalid = yield* client.nextJson()
        expect(invalid).toMatchObject({ id: "e1", error: { category: "protocol", code: "invalid_envelope" } })
        expect(invalid.error.issues).toContainEqual({ path: ["action"], message: "is missing" })
        yield* client.send(JSON.stringify({ type: "hello", id: "e2" }))
        expect(yield* client.nextJson()).toMatchObject({ id: "e2", error: { code: "unknown_type" } })
        expect((yield* command(client, "nowhere", "x")).response.error).toMatchObject({
          category: "protocol",
          code: "unknown_channel"
        })
        expect((yield* command(client, "system", "reboot")).response.error).toMatchObject({
          category: "protocol",
          code: "unknown_action"
        })
        const badData = (yield* command(client, "subscriptions", "subscribe", { channel: 42 })).response.error
        expect(badData).toMatchObject({ category: "protocol", code: "invalid_data" })
        expect(badData.issues[0].path).toEqual(["channel"])
        yield* ok(client, "system", "ping")
      })
  )

  it.effect("authentication errors: missing permission, bad per-message token, message signatures", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const reader = yield* connectHydrogen(hydrogen, readerKey)
      const publish = { channel: "news", action: "a", data: {} }
      expect((yield* command(reader, "events", "publish", publish)).response.error).toMatchObject({
        category: "authentication",
        code: "forbidden"
      })
      const send = (auth: unknown) =>
        reader.send(
          JSON.stringify({ type: "command", id: "m", channel: "events", action: "publish", data: publish, auth })
        )
      yield* send({ token: "hst1.forged.token" })
      expect((yield* reader.nextJson()).error).toMatchObject({ category: "authentication", code: "invalid_token" })
      yield* send({ token: adminKey, signature: "abc" })
      expect((yield* reader.nextJson()).error).toMatchObject({
        category: "authentication",
        code: "signature_not_supported"
      })
      // a per-message token with the permission lets this one command through (the seed's message authentication)
      const minted = yield* post(hydrogen, "/api/tokens", { subject: "svc", permissions: ["publish:news"] })
      yield* send({ token: minted.body.token })
      expect((yield* reader.nextJson()).data.channel).toBe("news")
    })
  )

  it.effect(
    "application errors: a failing history store and a failing one (defect) answer the command, nothing else breaks",
    () =>
      Effect.gen(function* () {
        for (const mode of ["fail", "die"] as const) {
          const hydrogen = yield* startTestHydrogen({}, brokenStore(mode))
          const client = yield* connectHydrogen(hydrogen)
          const { response } = yield* command(client, "events", "publish", {
            channel: "orders",
            action: "created",
            data: { n: 1 }
          })
          expect(response.error).toMatchObject({
            category: "application",
            code: mode === "fail" ? "storage_unavailable" : "handler_failed"
          })
          yield* ok(client, "subscriptions", "subscribe", { channel: "news" })
          yield* ok(client, "events", "publish", { channel: "news", action: "still", data: {} })
          const http = yield* post(hydrogen, "/api/publish", { channel: "orders", action: "x" })
          expect(http.status).toBe(mode === "fail" ? 503 : 500)
          expect(http.body.error.category).toBe("application")
        }
        const hydrogen = yield* startTestHydrogen()
        const client = yield* connectHydrogen(hydrogen)
        expect(
          (yield* command(client, "system", "resume", { session: "no-such-session" })).response.error
        ).toMatchObject({ category: "application", code: "session_unknown" })
        for (let i = 0; i < maxSubscriptionsPerSession; i++) {
          yield* client.send(
            JSON.stringify({
              type: "command",
              id: `s${i}`,
              channel: "subscriptions",
              action: "subscribe",
              data: { channel: `c${i}` }
            })
          )
        }
        for (let i = 0; i < maxSubscriptionsPerSession; i++) expect((yield* client.nextJson()).error).toBeUndefined()
        expect(
          (yield* command(client, "subscriptions", "subscribe", { channel: "one-too-many" })).response.error
        ).toMatchObject({ category: "application", code: "limit_exceeded" })
        yield* ok(client, "subscriptions", "subscribe", { channel: "c0", priority: "high" })
      })
  )

  it.effect(
    "handlers registered per channel: results, typed errors and failures (application errors, connection kept)",
    () =>
      Effect.gen(function* () {
        const print: ExtraHandlers = {
          print: {
            queue: { run: (_context, data) => Effect.succeed({ queued: data }) },
            jam: { run: () => Effect.fail(applicationError(ErrorCodes.handlerFailed, "paper jam")) },
            crash: {
              run: () =>
                Effect.sync(() => {
                  throw new Error("null pointer in the printer driver")
                })
            }
          }
        }
        const hydrogen = yield* startTestHydrogen({}, MemoryStreamStore, print)
        const client = yield* connectHydrogen(hydrogen)
        expect(yield* ok(client, "print", "queue", { file: "a.gcode" })).toEqual({ queued: { file: "a.gcode" } })
        expect((yield* command(client, "print", "jam")).response.error).toEqual({
          category: "application",
          code: "handler_failed",
          message: "paper jam"
        })
        const crashed = (yield* command(client, "print", "crash")).response.error
        expect(crashed).toMatchObject({
          category: "application",
          code: "handler_failed",
          message: "print/crash failed"
        })
        expect(JSON.stringify(crashed)).not.toContain("null pointer")
        yield* ok(client, "system", "ping")
      })
  )

  it.effect("every command gets exactly one response with its id, whatever the mix", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const client = yield* connectHydrogen(hydrogen)
      const kinds = [
        { channel: "system", action: "ping" },
        { channel: "system", action: "nope" },
        { channel: "subscriptions", action: "subscribe", data: { channel: "c" } },
        { channel: "subscriptions", action: "subscribe", data: { filter: 1 } },
        { channel: "events", action: "publish", data: { channel: "c", action: "tick", data: 1 } },
        { channel: "ghost", action: "x" }
      ]
      const ids: Array<string> = []
      for (let i = 0; i < 60; i++) {
        const id = `id-${i}`
        ids.push(id)
        yield* client.send(JSON.stringify({ type: "command", id, ...kinds[i % kinds.length] }))
      }
      const responses = new Map<string, number>()
      while ([...responses.keys()].length < ids.length) {
        const message = yield* client.nextJson()
        if (message.type === "response") responses.set(message.id, (responses.get(message.id) ?? 0) + 1)
      }
      expect([...responses.keys()].sort()).toEqual([...ids].sort())
      expect([...responses.values()].every((n) => n === 1)).toBe(true)
    })
  )

  it.effect(
    'legacy {"type":"status"} answers with the original\'s status object; host details only with the host permission',
    () =>
      Effect.gen(function* () {
        const hydrogen = yield* startTestHydrogen()
        const reader = yield* connectHydrogen(hydrogen, readerKey)
        yield* reader.send(JSON.stringify({ type: "status" }))
        const status = yield* reader.nextJson()
        expect(Object.keys(status).sort()).toEqual(["enabledServices", "services", "status", "version"])
        expect(status.version).toMatchObject({ server: expect.any(String), api: expect.any(String) })
        expect(status.status).toMatchObject({
          running: true,
          shutting_down: false,
          activeConnections: 1,
          totalConnections: 1
        })
        expect(status.status.totalRequests).toBeGreaterThanOrEqual(1)
        expect(typeof status.status.uptime).toBe("number")
        expect(status.enabledServices).toContain("websocket")
        expect(status.services.websocket.port).toBe(hydrogen.server.port)
        const admin = yield* connectHydrogen(hydrogen, adminKey)
        yield* admin.send(JSON.stringify({ type: "status" }))
        const full = yield* admin.nextJson()
        expect(Object.keys(full.system).sort()).toEqual(["machine", "nodename", "release", "sysname", "version"])
        expect(full.status.activeConnections).toBe(2)
        expect((yield* ok(reader, "system", "status")).system).toBeUndefined()
        const http = (yield* request(hydrogen, "/status")).body
        expect(http.system).toBeUndefined()
        expect(JSON.stringify(http)).not.toContain(require("node:os").hostname())
      })
  )

  it.effect("the system channel carries periodic status events (StatusInterval, TestClock)", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen({ statusInterval: Duration.seconds(10) })
      const client = yield* connectHydrogen(hydrogen, readerKey)
      yield* ok(client, "subscriptions", "subscribe", { channel: "system" })
      yield* TestClock.adjust(Duration.seconds(10))
      const event = yield* client.nextJson()
      expect(event).toMatchObject({
        type: "event",
        channel: "system",
        action: "status_update",
        data: { server_running: true, thread_count: 1 }
      })
      expect(typeof event.data.memory_usage).toBe("number")
      expect(typeof event.data.cpu_load).toBe("number")
      expect(event.data.status.activeConnections).toBe(1)
      expect(event.data.system).toBeUndefined()
      yield* TestClock.adjust(Duration.seconds(10))
      expect((yield* client.nextJson()).action).toBe("status_update")
    })
  )

  it.effect("whoami and system/status through commands; sessions and identities are reported", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const client = yield* connectHydrogen(hydrogen, apiOnlyKey)
      const me = yield* ok(client, "system", "whoami")
      expect(me).toMatchObject({ name: "backend", kind: "api-key", permissions: ["api", "tokens", "publish"] })
      expect(me.session).toMatch(/^[0-9a-f]{32}$/)
      const health = (yield* request(hydrogen, "/health")).body
      expect(health).toMatchObject({ status: "ok", connections: 1, sessions: 1 })
      const metrics = (yield* request(hydrogen, "/metrics")).body
      expect(metrics).toContain("switchboard_hydrogen_commands_total")
      expect((yield* request(hydrogen, "/nope")).status).toBe(404)
    })
  )
})
