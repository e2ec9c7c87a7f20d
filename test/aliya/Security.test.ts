import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { generateKeyPairSync } from "node:crypto"
import { SignJWT } from "jose"
import { ConfigProvider, Effect, Either, Redacted, TestClock } from "effect"
import { SqliteDatabase } from "../../layers/Storage/SqlDatabase.ts"
import { MemoryNetwork } from "../../layers/Transport/MemoryTransport.ts"
import { saveAccount } from "../../src/aliya/Admin.ts"
import { GatewayConfig, TokenServerConfig } from "../../src/aliya/Config.ts"
import { it } from "../support/effect.ts"
import { tempDirectory } from "../layers/Storage/backends.ts"
import { aliyaTestLayer, newPlayer, startStack, testPasswordCost } from "./support.ts"

const forged = (secret: string, claims: Record<string, unknown>) =>
  Effect.promise(() =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime(4_000_000_000)
      .sign(new TextEncoder().encode(secret))
  )

const dir = tempDirectory("aliya-security")

describe("aliya security fixes", () => {
  it.effect("injection-shaped identifiers and values are data, never SQL", () =>
    Effect.gen(function* () {
      const stack = yield* startStack()
      const client = yield* stack.connect
      yield* saveAccount(
        { uniqueId: "victim", bound: true, account: "victim", password: "victim-pass" },
        testPasswordCost
      )
      // The identifier is limited to account/email/phone_number: a column name from input is refused.
      for (const identifier of ["password", "unique_id", "account` = 'victim' OR `account", "account'--"]) {
        expect((yield* client.call("login", { identifier, value: "victim", password: "x" })).status).toBe(10)
      }
      for (const value of ["' OR '1'='1", "victim' --", "' UNION SELECT password FROM aliya_accounts --"]) {
        expect((yield* client.call("login", { identifier: "account", value, password: "' OR '1'='1" })).status).toBe(1)
      }
      const odd = "x'); DROP TABLE aliya_accounts; --"
      expect((yield* client.call("login_unique", { unique_id: odd })).status).toBe(1)
      expect(
        (yield* client.call("login", { identifier: "account", value: "victim", password: "victim-pass" })).status
      ).toBe(0)
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{
        password_hash: string
      }>`SELECT password_hash FROM aliya_accounts WHERE unique_id = ${"victim"}`
      expect(rows[0]!.password_hash.startsWith("$argon2id$")).toBe(true)
    }).pipe(Effect.provide(aliyaTestLayer()))
  )

  it.effect('a JWT forged with the original\'s secret "password" (or alg none) is refused with 11', () =>
    Effect.gen(function* () {
      const stack = yield* startStack()
      const client = yield* stack.connect
      yield* newPlayer(client, "player-1")
      for (const token of [
        yield* forged("password", { unique_id: "player-1", jti: "x" }),
        `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from('{"unique_id":"player-1","exp":4000000000}').toString("base64url")}.`
      ]) {
        const r = yield* client.call("get_all_weapon", { token })
        expect(r.status).toBe(11)
        // A short prefix of the rejected token only: a reply never echoes long input.
        const shown = String(r.data.bad_token)
        expect(token.startsWith(shown.replace(/…$/, ""))).toBe(true)
        expect(shown.length).toBeLessThanOrEqual(65)
      }
    }).pipe(Effect.provide(aliyaTestLayer()))
  )

  it.effect("a token expires after the configured lifetime", () =>
    Effect.gen(function* () {
      const stack = yield* startStack({ lifetimeSeconds: 30 })
      const client = yield* stack.connect
      const token = yield* newPlayer(client, "player-1")
      yield* TestClock.adjust("29 seconds")
      expect((yield* client.call("get_all_weapon", { token })).status).toBe(0)
      yield* TestClock.adjust("2 seconds")
      expect((yield* client.call("get_all_weapon", { token })).status).toBe(11)
    }).pipe(Effect.provide(aliyaTestLayer()))
  )

  it.effect(
    "a new login revokes the previous token; two logins in one second get different tokens; revocation survives a restart",
    () =>
      Effect.gen(function* () {
        const database = SqliteDatabase(`${dir}/restart.sqlite`)
        const firstRun = Effect.gen(function* () {
          const stack = yield* startStack()
          const client = yield* stack.connect
          yield* saveAccount({ uniqueId: "p", bound: true, account: "p", password: "p-password" }, testPasswordCost)
          const login = () =>
            Effect.map(
              client.call("login", { identifier: "account", value: "p", password: "p-password" }),
              (r) => r.data.token as string
            )
          const old = yield* login()
          const current = yield* login()
          expect(current).not.toBe(old)
          expect((yield* client.call("get_all_supplies", { token: old })).status).toBe(11)
          expect((yield* client.call("get_all_supplies", { token: current })).status).toBe(0)
          return { old, current }
        }).pipe(Effect.scoped, Effect.provide(aliyaTestLayer(database)))
        const tokens = yield* firstRun
        // Everything restarts (new token server, new managers, database reopened from its file).
        yield* Effect.gen(function* () {
          const stack = yield* startStack()
          const client = yield* stack.connect
          expect((yield* client.call("get_all_supplies", { token: tokens.old })).status).toBe(11)
          expect((yield* client.call("get_all_supplies", { token: tokens.current })).status).toBe(0)
        }).pipe(Effect.scoped, Effect.provide(aliyaTestLayer(database)))
      })
  )

  it.effect("Ed25519-signed tokens work, and HS256 tokens are refused by an EdDSA server", () =>
    Effect.gen(function* () {
      const { privateKey } = generateKeyPairSync("ed25519")
      const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString()
      const stack = yield* startStack({ signing: { algorithm: "EdDSA", privateKeyPem: Redacted.make(pem) } })
      const client = yield* stack.connect
      const token = yield* newPlayer(client, "ed-player")
      expect(JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()).alg).toBe("EdDSA")
      expect((yield* client.call("get_all_weapon", { token })).status).toBe(0)
      const hs = yield* forged("test-jwt-secret-0123456789abcdef0123456789", { unique_id: "ed-player", jti: "x" })
      expect((yield* client.call("get_all_weapon", { token: hs })).status).toBe(11)
    }).pipe(Effect.provide(aliyaTestLayer()))
  )

  it.effect("managers answer 401 without the service token; the token server's HTTP API works as the original's", () =>
    Effect.gen(function* () {
      const stack = yield* startStack()
      const network = yield* MemoryNetwork
      const post = (port: number, path: string, body: string, headers: Record<string, string> = {}) =>
        Effect.flatMap(
          network.fetch(port, new Request(`http://memory:${port}${path}`, { method: "POST", headers, body })),
          (r) => Effect.promise(async () => ({ status: r.status, body: (await r.json()) as Record<string, any> }))
        )
      const bare = yield* post(
        stack.managerPorts.bag,
        "/increase_supplies",
        JSON.stringify({ unique_id: "x", supplies: ["iron"], amount: [9] })
      )
      expect(bare.status).toBe(401)
      // Form fields, as the original gateway posts them.
      const form = { "content-type": "application/x-www-form-urlencoded" }
      const created = yield* post(stack.tokensPort, "/login_unique", "unique_id=form-device", form)
      expect(created).toMatchObject({ status: 200, body: { status: 1 } })
      const token = created.body.data.token as string
      const validate = (authorization: string) =>
        Effect.flatMap(
          network.fetch(
            stack.tokensPort,
            new Request(`http://memory:${stack.tokensPort}/validate`, { headers: { authorization } })
          ),
          (r) => Effect.promise(async () => ({ status: r.status, body: await r.json() }))
        )
      expect(yield* validate(token)).toEqual({ status: 200, body: { unique_id: "form-device" } })
      expect((yield* validate("junk")).status).toBe(400)
      const bad = yield* post(stack.tokensPort, "/login", "identifier=account&value=nobody&password=x", form)
      expect(bad).toMatchObject({ status: 400, body: { status: 1, message: "Invalid credentials" } })
    }).pipe(Effect.provide(aliyaTestLayer()))
  )

  it.effect('config refuses a short or "password" JWT secret, naming the key', () =>
    Effect.gen(function* () {
      const read = (secret: string) =>
        Effect.either(
          Effect.withConfigProvider(
            TokenServerConfig,
            ConfigProvider.fromJson({ aliya: { serviceToken: "s".repeat(40), tokens: { secret } } })
          )
        )
      for (const secret of ["password", "short"]) {
        const result = yield* read(secret)
        expect(Either.isLeft(result) && String(result.left)).toContain("secret")
      }
      expect(Either.isRight(yield* read("x".repeat(32)))).toBe(true)
    })
  )

  it.effect("config: the gateway needs the key of its cipher (no built-in key), errors name the key", () =>
    Effect.gen(function* () {
      const read = (gateway: Record<string, unknown>) =>
        Effect.either(
          Effect.withConfigProvider(
            GatewayConfig,
            ConfigProvider.fromJson({ aliya: { serviceToken: "s".repeat(40), gateway } })
          )
        )
      const messages = [
        yield* read({}),
        yield* read({ key: "too-short" }),
        yield* read({ cipher: "des-compat", desKey: "67891234" }),
        yield* read({ cipher: "rot13", key: "ab".repeat(32) })
      ].map((r) => (Either.isLeft(r) ? String(r.left) : "accepted"))
      expect(messages[0]).toContain("key")
      expect(messages[1]).toContain("key")
      expect(messages[2]).toContain("desIv")
      expect(messages[3]).toContain("cipher")
      const des = yield* read({ cipher: "des-compat", desKey: "67891234", desIv: "67891234" })
      expect(Either.isRight(des) && des.right.cipher.kind).toBe("des-compat")
      const aes = yield* read({ key: "ab".repeat(32) })
      expect(Either.isRight(aes) && aes.right.cipher.kind).toBe("aes-256-gcm")
    })
  )
})
