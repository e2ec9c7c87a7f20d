import { describe, expect } from "bun:test"
import { Effect, Option, TestClock } from "effect"
import { AccountStore } from "../../layers/Storage/AccountStore.ts"
import { it } from "../support/effect.ts"
import { startAuthenticator } from "../../src/droneengage/Authenticator.ts"
import {
  authenticatorConfig,
  connectUnit,
  getJson,
  login,
  post,
  request,
  seedAccounts,
  startStack,
  TestServices
} from "./harness.ts"

describe("DroneEngage login → key → connect", () => {
  it.effect("a GCS and an agent log in, connect with their keys, and talk", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const { body } = yield* login(stack, "alpha", "g")
      expect(body).toMatchObject({ e: 0, per: "D1G1T3R4V5C6", prm: 0xffffffff, cm: "/wl" })
      expect(body.sid).toMatch(/^[0-9a-f]{32}$/)
      expect(body.cs.f).toMatch(/^[0-9a-f]{32}$/)
      expect(body.cs).toMatchObject({ g: "127.0.0.1", h: stack.relay.server.port })
      expect((yield* login(stack, "alpha", "d")).body).toMatchObject({ e: 0, cm: "/al" })
      const gcs = yield* connectUnit(stack, "alpha", "g", "web-1")
      const drone = yield* connectUnit(stack, "alpha", "d", "drone-1")
      yield* drone.send(JSON.stringify({ ty: "g", mt: 1002, ms: { hello: 1 } }))
      expect(yield* gcs.nextJson()).toEqual({ ty: "g", mt: 1002, ms: { hello: 1 }, sd: "drone-1", p: 0xffffffff })
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("form-encoded bodies and trailing slashes work as in the original", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const form = yield* post(
        `${stack.authUrl}/agent/al/`,
        "acc=alpha&pwd=alpha-code&gr=1&app=andruav&ver=5&ex=x",
        "application/x-www-form-urlencoded"
      )
      expect(form.body).toMatchObject({ e: 0, cm: "/al" })
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("a browser GCS on another origin may call the API (CORS as the original's express cors())", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const preflight = yield* request(`${stack.authUrl}/w/wl/`, {
        method: "OPTIONS",
        headers: {
          origin: "http://gcs.example",
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type"
        }
      })
      expect(preflight.status).toBe(204)
      expect(preflight.headers.get("access-control-allow-origin")).toBe("*")
      expect(preflight.headers.get("access-control-allow-methods")).toContain("POST")
      const response = yield* request(`${stack.authUrl}/w/wl/`, {
        method: "POST",
        headers: { origin: "http://gcs.example", "content-type": "application/x-www-form-urlencoded; charset=UTF-8" },
        body: "acc=alpha&pwd=alpha-code&gr=1&app=andruav&ver=1&ex=Andruav&at=g"
      })
      expect(response.headers.get("access-control-allow-origin")).toBe("*")
      expect(((yield* Effect.promise(() => response.json())) as any).e).toBe(0)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("wrong code, unknown account, missing permission, disabled account", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const wrong = yield* post(`${stack.authUrl}/w/wl`, { acc: "alpha", pwd: "beta-code", gr: "1" })
      expect({ status: wrong.status, body: wrong.body }).toEqual({
        status: 200,
        body: { e: 2, em: "Account Not Found.", cm: "/wl" }
      })
      expect((yield* post(`${stack.authUrl}/w/wl`, { acc: "nobody", pwd: "x" })).body.e).toBe(2)
      expect((yield* login(stack, "agent-only", "g")).body).toMatchObject({ e: 6, cm: "/wl" })
      expect((yield* login(stack, "gcs-only", "d")).body).toMatchObject({ e: 6, cm: "/al" })
      expect((yield* login(stack, "gcs-only", "g")).body.e).toBe(0)
      yield* (yield* AccountStore).setEnabled("beta", false)
      expect((yield* login(stack, "beta", "g")).body).toEqual({ e: 9, em: "Account is disabled.", cm: "/wl" })
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("bad bodies are 400 with e 1 and the reason", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const missing = yield* post(`${stack.authUrl}/w/wl`, { acc: "alpha" })
      expect(missing.status).toBe(400)
      expect(missing.body).toMatchObject({ e: 1, cm: "/wl" })
      expect(missing.body.em).toContain("pwd")
      expect((yield* post(`${stack.authUrl}/w/wl`, "{not json")).status).toBe(400)
      expect((yield* post(`${stack.authUrl}/w/wl`, "acc=a", "text/plain")).status).toBe(400)
      expect((yield* post(`${stack.authUrl}/w/nothing`, {})).body).toEqual({
        e: 10,
        em: "API endpoint not found",
        cm: "error"
      })
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("with no relay linked the login answers e 5", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const auth = yield* startAuthenticator(authenticatorConfig())
      const { body } = yield* post(`${auth.http.url}/w/wl`, { acc: "alpha", pwd: "alpha-code" })
      expect(body).toEqual({ e: 5, em: "No available Server", cm: "/wl" })
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("logins are rate limited per IP with HTTP 429", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack({ auth: { loginRateLimit: 3 } })
      for (let i = 0; i < 3; i++) expect((yield* login(stack, "alpha", "g")).status).toBe(200)
      const limited = yield* login(stack, "alpha", "g")
      expect({ status: limited.status, body: limited.body }).toEqual({
        status: 429,
        body: { e: 999, em: "Too many requests. Please try again later.", cm: "/wl" }
      })
      // 3 per minute refill one every 20 s.
      expect(limited.headers.get("retry-after")).toBe("20")
      yield* TestClock.adjust("20 seconds")
      expect((yield* login(stack, "alpha", "g")).status).toBe(200)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("logout ends the session; the hardware check needs a live session", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const { body } = yield* login(stack, "alpha", "d")
      const check = (hi: string, sid = body.sid) => post(`${stack.authUrl}/agent/ah`, { scm: "vh", sid, hi, ht: "px4" })
      expect((yield* check("hw-1")).body).toEqual({ e: 0, scm: "vh", cm: "/ah" })
      expect((yield* check("hw-2")).body).toEqual({ e: 8, em: "No hardware is found.", cm: "/ah" })
      expect((yield* post(`${stack.authUrl}/w/wo`, { sid: body.sid })).body).toEqual({ e: 0, cm: "/wo" })
      expect((yield* post(`${stack.authUrl}/w/wo`, { sid: body.sid })).body).toMatchObject({ e: 7, cm: "/wo" })
      expect((yield* check("hw-1")).body).toMatchObject({ e: 7, cm: "/ah" })
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("health and metrics on both programs", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      yield* connectUnit(stack, "alpha", "g", "web")
      const health = yield* getJson(`${stack.authUrl}/h/health`)
      expect(health).toMatchObject({
        status: "OK",
        server_id: "auth-test",
        relays: [{ serverId: "relay-test", online: true }]
      })
      const relayHealth = yield* getJson(`${stack.relay.server.url}/h/health`)
      expect(relayHealth).toMatchObject({ status: "OK", server_id: "relay-test", authenticator: "up" })
      const text = yield* Effect.flatMap(request(`${stack.authUrl}/metrics`), (response) =>
        Effect.promise(() => response.text())
      )
      expect(text).toContain('switchboard_de_logins_total{server="authenticator",actor="g",result="ok"} 1')
      expect(text).toContain('switchboard_de_s2s_relays{server="authenticator"} 1')
      expect(text).toContain('switchboard_link_up{link="relay-test->authenticator"} 1')
      expect(text).toContain('switchboard_ws_connections{server="relay"} 1')
      expect(text).toContain("switchboard_de_deliveries_total")
    }).pipe(Effect.provide(TestServices))
  )
})

describe("DroneEngage account management (admin sessions only)", () => {
  it.effect("without a session, with an unknown one, or with a non-admin one, management is refused", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      for (const path of ["/w/am", "/agent/aam"]) {
        const none = yield* post(`${stack.authUrl}${path}`, { scm: "r", acc: "alpha" })
        expect(none.status).toBe(401)
        expect(none.body.e).toBe(7)
        const unknown = yield* post(`${stack.authUrl}${path}`, { scm: "g", pwd: "alpha-code", sid: "0".repeat(32) })
        expect(unknown.status).toBe(401)
        const user = (yield* login(stack, "alpha", "g")).body.sid
        const notAdmin = yield* post(`${stack.authUrl}${path}`, { scm: "c", acc: "mallory", sid: user })
        expect({ status: notAdmin.status, body: notAdmin.body }).toEqual({
          status: 403,
          body: { e: 6, em: "Account management needs an admin account.", cm: path.replace(/^\/(w|agent)/, "") }
        })
      }
      // Nothing changed: alpha's code still works and mallory does not exist.
      expect((yield* login(stack, "alpha", "g")).body.e).toBe(0)
      expect(Option.isNone(yield* (yield* AccountStore).findByName("mallory"))).toBe(true)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("an admin session creates, regenerates (code shown once) and looks up accounts", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const sid = (yield* login(stack, "admin", "g")).body.sid
      const am = (body: object) => post(`${stack.authUrl}/w/am`, { sid, ...body })
      const created = yield* am({ scm: "c", acc: "newbie", prm: "0x11" })
      expect(created.body).toMatchObject({ e: 0, scm: "c", acc: "newbie", prm: 0x11, cm: "/am" })
      expect(created.body.pwd).toMatch(/^[0-9a-f]{32}$/)
      expect((yield* am({ scm: "c", acc: "newbie" })).status).toBe(409)
      const regenerated = yield* am({ scm: "r", acc: "alpha" })
      expect(regenerated.body).toMatchObject({ e: 0, scm: "r", acc: "alpha" })
      expect((yield* login(stack, "alpha", "g")).body.e).toBe(2)
      const fresh = yield* post(`${stack.authUrl}/w/wl`, { acc: "alpha", pwd: regenerated.body.pwd })
      expect(fresh.body.e).toBe(0)
      expect((yield* am({ scm: "g", acc: "newbie" })).body).toMatchObject({
        e: 0,
        scm: "g",
        acc: "newbie",
        prm: 0x11,
        en: true
      })
      expect((yield* am({ scm: "g", pwd: created.body.pwd })).body).toMatchObject({ e: 0, acc: "newbie" })
      expect((yield* am({ scm: "g", pwd: "not-a-code" })).body.e).toBe(2)
      expect((yield* am({ scm: "r", acc: "ghost" })).status).toBe(404)
      expect((yield* am({ scm: "x" })).status).toBe(400)
      expect(JSON.stringify((yield* am({ scm: "g", acc: "alpha" })).body)).not.toContain(regenerated.body.pwd)
    }).pipe(Effect.provide(TestServices))
  )
})
