import { describe, expect } from "bun:test"
import { Effect, Logger, LogLevel, TestClock } from "effect"
import { MemoryTcpNetwork } from "../../layers/Transport/TcpTransport.ts"
import { adminCommand } from "../../src/aliya/AdminCommand.ts"
import { aesGcmCipher } from "../../src/aliya/Cipher.ts"
import { makeClient } from "../../src/aliya/Client.ts"
import { encodeFrame } from "../../src/aliya/Frame.ts"
import { makeGateway } from "../../src/aliya/Gateway.ts"
import { it } from "../support/effect.ts"
import { aesKey, aliyaTestLayer, newPlayer, startStack } from "./support.ts"

describe("aliya gateway behaviour", () => {
  it.effect("a body that cannot be decrypted gets status 10 (not a silent close), and the connection goes on", () =>
    Effect.gen(function* () {
      const stack = yield* startStack()
      const network = yield* MemoryTcpNetwork
      const tcp = yield* network.connect(stack.gatewayPort)
      yield* tcp.write(encodeFrame(new TextEncoder().encode("bm90IGVuY3J5cHRlZA==\n"))!)
      const other = aesGcmCipher(new Uint8Array(32).fill(9)) // a different key
      yield* tcp.write(
        encodeFrame(other.seal(new TextEncoder().encode('{"function":"login_unique","data":{"unique_id":"x"}}')))!
      )
      const mine = makeClient({ write: tcp.write, read: tcp.read, close: tcp.close }, stack.cipher)
      expect((yield* mine.nextReply).status).toBe(10)
      expect((yield* mine.nextReply).status).toBe(10)
      expect((yield* mine.call("login_unique", { unique_id: "after-garbage" })).status).toBe(1)
    }).pipe(Effect.provide(aliyaTestLayer()))
  )

  it.effect("dangerous functions can be switched off (status 10)", () =>
    Effect.gen(function* () {
      const stack = yield* startStack({ dangerousFunctions: false })
      const client = yield* stack.connect
      const token = yield* newPlayer(client, "p")
      for (const fn of ["increase_supplies", "increase_energy", "random_gift_skill", "random_gift_segment"]) {
        expect((yield* client.call(fn, { token, supplies: ["iron"], amount: [1], energy: 1 })).status).toBe(10)
      }
      expect((yield* client.call("get_all_supplies", { token })).status).toBe(0)
    }).pipe(Effect.provide(aliyaTestLayer()))
  )

  it.effect("legacyLoginUnique (opt-in) logs an unbound account in with its unique_id alone, as the original", () =>
    Effect.gen(function* () {
      const stack = yield* startStack({ legacyLoginUnique: true }).pipe(Logger.withMinimumLogLevel(LogLevel.Error))
      const client = yield* stack.connect
      expect((yield* client.call("login_unique", { unique_id: "old-device" })).status).toBe(1)
      expect((yield* client.call("login_unique", { unique_id: "old-device" })).status).toBe(0)
    }).pipe(Effect.provide(aliyaTestLayer()))
  )

  it.effect(
    "credential checks are rate-limited per client address (status 14 with retry_after), and recover with time",
    () =>
      Effect.gen(function* () {
        const stack = yield* startStack({ gateway: { loginRate: { ratePerSecond: 1, burst: 3 } } })
        const client = yield* stack.connect
        const attempt = () => client.call("login", { identifier: "account", value: "nobody", password: "guess" })
        for (let i = 0; i < 3; i++) expect((yield* attempt()).status).toBe(1)
        const limited = yield* attempt()
        expect(limited).toMatchObject({ status: 14, message: "Too many attempts, try again later" })
        expect(limited.data.retry_after).toBeGreaterThan(0)
        expect((yield* client.call("get_all_weapon", { token: "x" })).status).toBe(11)
        yield* TestClock.adjust("2 seconds")
        expect((yield* attempt()).status).toBe(1)
      }).pipe(Effect.provide(aliyaTestLayer()))
  )

  it.effect("a reply too large for the 4-digit length becomes status 12", () =>
    Effect.gen(function* () {
      const gateway = yield* makeGateway({
        cipher: aesGcmCipher(aesKey),
        calls: {
          post: () => Promise.reject(new Error("unused")),
          validate: () => Promise.reject(new Error("unused")),
          onIssued: () => false
        },
        dangerousFunctions: true
      })
      const frame = gateway.frameOf({ status: 0, message: "ok", random: "5", data: { blob: "x".repeat(20_000) } })
      const body = aesGcmCipher(aesKey).open(frame.subarray(36))!
      expect(JSON.parse(new TextDecoder().decode(body))).toEqual({
        status: 12,
        message: "Reply too large for one frame",
        random: "5",
        data: {}
      })
    })
  )

  it.effect("pipelined frames are answered in order, whether each answer is ready now or has to wait", () =>
    Effect.gen(function* () {
      const cipher = aesGcmCipher(aesKey)
      const claims = Buffer.from(JSON.stringify({ unique_id: "p", exp: 4_000_000_000 })).toString("base64url")
      const token = `e30.${claims}.sig`
      let releaseLogin: (() => void) | undefined
      const gateway = yield* makeGateway({
        cipher,
        calls: {
          // The weapon manager answers now (a synchronous route); the token server's login waits.
          post: (service) =>
            service === "tokens"
              ? new Promise((resolve) => {
                  releaseLogin = () => resolve({ status: 200, body: { status: 0, message: "success", data: {} } })
                })
              : { status: 200, body: { status: 0, message: "success", data: { from: service } } },
          validate: () => Promise.resolve({ status: 200, body: { unique_id: "p" } }),
          onIssued: () => false
        },
        dangerousFunctions: true,
        tokenCacheMillis: 60_000
      })
      const written: Array<unknown> = []
      const handler = yield* gateway.open({
        id: 1,
        remoteAddress: "test",
        write: (bytes) => {
          written.push(JSON.parse(new TextDecoder().decode(cipher.open(bytes.subarray(36))!)).random)
          return "sent"
        },
        close: () => {},
        isOpen: () => true
      })
      const frame = (fn: string, random: string, data: object) =>
        encodeFrame(cipher.seal(new TextEncoder().encode(JSON.stringify({ function: fn, random, data }))))!
      const chunk = (...frames: Array<Uint8Array>) => Buffer.concat(frames)
      // The first use of the token asks the token server (a Promise); then the token is cached.
      yield* Effect.promise(async () => handler.onData(frame("get_all_weapon", "0", { token })))
      // Ready now: answered before onData returns, and nothing to wait for.
      expect(
        handler.onData(chunk(frame("get_all_weapon", "1", { token }), frame("get_all_weapon", "2", { token })))
      ).toBe(undefined)
      expect(written).toEqual(["0", "1", "2"])
      const pending = handler.onData(
        chunk(
          frame("get_all_weapon", "3", { token }),
          frame("login", "4", { identifier: "account", value: "a", password: "b" }),
          frame("get_all_weapon", "5", { token })
        )
      )
      expect(pending).toBeInstanceOf(Promise)
      // The frame after the waiting login is not answered before it.
      expect(written).toEqual(["0", "1", "2", "3"])
      releaseLogin!()
      yield* Effect.promise(() => pending as Promise<void>)
      expect(written).toEqual(["0", "1", "2", "3", "4", "5"])
    })
  )

  it.effect("the admin command creates accounts, sets the bag, grants, changes and removes weapons", () =>
    Effect.gen(function* () {
      const stack = yield* startStack()
      const client = yield* stack.connect
      expect(
        yield* adminCommand(["account", "ops-1", "--account", "ops", "--password", "ops-password", "--email", "o@x.io"])
      ).toContain("saved")
      yield* adminCommand(["bag", "ops-1", "iron=60", "coin=5"])
      yield* adminCommand(["weapon", "ops-1", "weapon7", "--star", "2", "--level", "3", "--skill-points", "4"])
      yield* adminCommand(["weapon", "ops-1", "weapon8"])
      yield* adminCommand(["remove-weapon", "ops-1", "weapon8"])
      yield* adminCommand(["skill", "ops-1", "p1_level", "2"])
      const token = (yield* client.call("login", { identifier: "email", value: "o@x.io", password: "ops-password" }))
        .data.token
      expect((yield* client.call("get_all_weapon", { token })).data).toEqual({
        weapon_bag1: ["weapon7", 2, 3, 0, 0, 0, 0, 4, 0]
      })
      expect((yield* client.call("get_all_supplies", { token })).data).toMatchObject({
        item1: ["coin", 5],
        item2: ["iron", 60]
      })
      expect((yield* client.call("get_skill", { token, skill_id: "p1_level" })).data).toEqual({
        skill1: ["p1_level", 2]
      })
      const shown = JSON.parse(yield* adminCommand(["show", "ops-1"]))
      expect(shown.account).toEqual({ account: "ops", email: "o@x.io", phone_number: null, bound: true })
      // An unbound account made by an operator, with a device secret the operator hands out.
      yield* adminCommand(["account", "dev-9", "--unbound", "--device-secret", "s3cret-device"])
      expect((yield* client.call("login_unique", { unique_id: "dev-9", device_secret: "s3cret-device" })).status).toBe(
        0
      )
      for (const bad of [
        ["bag", "ops-1", "gold=1"],
        ["weapon", "ops-1", "weapon41"],
        ["account", "new-1", "--account", "n"],
        ["fly", "x"]
      ]) {
        const outcome = yield* Effect.either(adminCommand(bad))
        expect(outcome._tag).toBe("Left")
      }
    }).pipe(Effect.provide(aliyaTestLayer()))
  )
})
