import { describe, expect } from "bun:test"
import { Duration, Effect, FastCheck, TestClock } from "effect"
import { startAuthenticator } from "../../src/droneengage/Authenticator.ts"
import { signChallenge } from "../../src/droneengage/S2S.ts"
import { encodeBinaryFrame } from "../../src/droneengage/Wire.ts"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { maxJsonDepth } from "../../src/shared/JsonDepth.ts"
import { it } from "../support/effect.ts"
import {
  authenticatorConfig,
  connect,
  connectUnit,
  expectNothing,
  pingPong,
  post,
  relayOnline,
  request,
  seedAccounts,
  startStack,
  TestServices
} from "./harness.ts"

const nested = (depth: number, inner = "1") => `${"[".repeat(depth)}${inner}${"]".repeat(depth)}`

/** Issue 12: what probing the DroneEngage servers as an attacker found, each with the test that failed before its fix. */
describe("DroneEngage hardening (issue 12)", () => {
  it.effect("#2 the HTTP API never echoes oversized input: the error names the field and the rule", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      // Under the API's 64 KiB body limit, so the schema (not the transport) answers.
      const huge = "a".repeat(60_000)
      const json = yield* post(`${stack.authUrl}/w/wl`, { acc: huge, pwd: "x" })
      expect(json.status).toBe(400)
      expect(json.body).toEqual({ e: 1, em: "acc: must be a string at most 255 character(s) long", cm: "/wl" })
      const form = yield* post(
        `${stack.authUrl}/agent/al`,
        `acc=alpha&pwd=${huge}`,
        "application/x-www-form-urlencoded"
      )
      expect(form.body.em).toBe("pwd: must be a string at most 128 character(s) long")
      const scm = yield* post(`${stack.authUrl}/w/am`, { scm: huge })
      expect(scm.body.em).toBe('scm: must be "c" or "r" or "g"')
      const wrongType = yield* post(`${stack.authUrl}/w/wl`, { acc: { deep: huge }, pwd: "x" })
      expect(wrongType.body.em).toBe("acc: must be a string or a finite number")
      // Past the body limit the transport answers 413 with a short reason, before any parsing.
      const tooBig = yield* post(`${stack.authUrl}/w/wl`, { acc: "a".repeat(2_000_000), pwd: "x" })
      expect(tooBig.status).toBe(413)
      for (const reply of [json, form, scm, wrongType, tooBig])
        expect(JSON.stringify(reply.body).length).toBeLessThan(200)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("#3 deeply nested JSON is refused before decoding: HTTP 400 with a short reason, not a 500", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const deep = yield* post(`${stack.authUrl}/w/wl`, `{"acc":${nested(20_000)},"pwd":"x"}`)
      expect(deep.status).toBe(400)
      expect(deep.body).toEqual({ e: 1, em: `body nests deeper than ${maxJsonDepth} levels`, cm: "/wl" })
      const management = yield* post(`${stack.authUrl}/w/am`, `{"scm":"g","acc":${nested(5_000, '"x"')}}`)
      expect(management.status).toBe(400)
      // At the limit it is an ordinary body.
      const shallow = yield* post(
        `${stack.authUrl}/w/wl`,
        `{"acc":"alpha","pwd":"alpha-code","ex":${nested(maxJsonDepth - 1, '"x"')}}`
      )
      expect(shallow.body.em).toBe("ex: must be a string or a finite number")
    }).pipe(Effect.provide(TestServices))
  )

  it.effect(
    "#3 #4 the relay answers a deep or ill-typed frame with the documented 9100 error naming the field, and keeps the connection",
    () =>
      Effect.gen(function* () {
        yield* seedAccounts
        const stack = yield* startStack()
        const gcs = yield* connectUnit(stack, "alpha", "g", "web")
        const drone = yield* connectUnit(stack, "alpha", "d", "drone")
        const tooDeep = {
          ty: "s",
          sd: "_SYS_",
          mt: 9100,
          ms: { s: "ERR:malformed", em: `message nests deeper than ${maxJsonDepth} levels` }
        }
        yield* gcs.send(`{"ty":${nested(50_000)},"mt":1}`)
        expect(yield* gcs.nextJson()).toEqual(tooDeep)
        // A valid envelope whose payload is too deep is not forwarded either.
        yield* gcs.send(`{"ty":"g","mt":1,"ms":${nested(10_000)}}`)
        expect(yield* gcs.nextJson()).toEqual(tooDeep)
        yield* gcs.send(
          encodeBinaryFrame({ ty: "g", mt: 1, ms: JSON.parse(nested(maxJsonDepth + 1)) }, new Uint8Array([1, 2]))
        )
        expect(yield* gcs.nextJson()).toEqual(tooDeep)
        yield* expectNothing(drone)
        // #4: the schema's type is never dumped, only the field and its rule.
        yield* gcs.send(JSON.stringify({ ty: "x".repeat(10_000), mt: 1 }))
        const typed = yield* gcs.nextJson()
        expect(typed.ms).toEqual({ s: "ERR:malformed", em: 'ty: must be "g" or "i" or "s"' })
        yield* gcs.send(JSON.stringify({ ty: "g" }))
        expect((yield* gcs.nextJson()).ms.em).toBe("mt: is required")
        yield* gcs.send(JSON.stringify({ ty: "i", tg: [1], mt: 1 }))
        expect((yield* gcs.nextJson()).ms.em).toBe("tg: must be a string")
        yield* pingPong(gcs)
        yield* drone.send(JSON.stringify({ ty: "g", mt: 7 }))
        expect((yield* gcs.nextJson()).mt).toBe(7)
      }).pipe(Effect.provide(TestServices))
  )

  it.effect(
    "#4 generated ill-formed envelopes (300 cases) always get a short 9100 that names a field, never the schema",
    () =>
      Effect.gen(function* () {
        yield* seedAccounts
        const stack = yield* startStack()
        const gcs = yield* connectUnit(stack, "alpha", "g", "web")
        const drone = yield* connectUnit(stack, "alpha", "d", "drone")
        const badEnvelope = FastCheck.record(
          {
            ty: FastCheck.oneof(
              FastCheck.string({ maxLength: 300 }),
              FastCheck.integer(),
              FastCheck.constant(null),
              FastCheck.array(FastCheck.string())
            ),
            mt: FastCheck.oneof(FastCheck.integer(), FastCheck.string(), FastCheck.constant(null), FastCheck.object()),
            tg: FastCheck.oneof(FastCheck.string(), FastCheck.integer(), FastCheck.object({ maxDepth: 3 }))
          },
          { requiredKeys: [] }
        ).filter(
          (envelope) =>
            !(
              typeof envelope.ty === "string" &&
              ["g", "i", "s"].includes(envelope.ty) &&
              (typeof envelope.mt === "number" || typeof envelope.mt === "string") &&
              (envelope.tg === undefined || typeof envelope.tg === "string")
            )
        )
        for (const envelope of FastCheck.sample(badEnvelope, 300)) {
          yield* gcs.send(JSON.stringify(envelope))
          const reply = yield* gcs.nextJson()
          expect(reply.ms.s).toBe("ERR:malformed")
          expect(reply.ms.em).toMatch(/^(ty|mt|tg|message): /)
          expect(reply.ms.em.length).toBeLessThanOrEqual(201)
          expect(reply.ms.em).not.toContain("readonly")
        }
        yield* expectNothing(drone)
      }).pipe(Effect.provide(TestServices))
  )

  it.effect(
    "#5 failed credentials count per address: the one past the limit blocks it (429 + Retry-After) for logins and management; other addresses are unaffected",
    () =>
      Effect.gen(function* () {
        yield* seedAccounts
        const stack = yield* startStack({
          auth: {
            loginFailureLimit: 3,
            loginFailureWindow: Duration.minutes(3),
            loginFailureBlock: Duration.minutes(1)
          }
        })
        const from = (address: string, path: string, body: object) =>
          post(`${stack.authUrl}${path}`, body, "application/json", address)
        expect((yield* from("10.0.0.1", "/w/wl", { acc: "alpha", pwd: "wrong" })).body.e).toBe(2)
        expect((yield* from("10.0.0.1", "/agent/al", { acc: "nobody", pwd: "wrong" })).body.e).toBe(2)
        expect((yield* from("10.0.0.1", "/w/am", { scm: "g", acc: "alpha", sid: "0".repeat(32) })).status).toBe(401)
        const blocked = yield* from("10.0.0.1", "/w/wl", { acc: "alpha", pwd: "wrong again" })
        expect(blocked.status).toBe(429)
        expect(blocked.body).toEqual({ e: 999, em: "Too many requests. Please try again later.", cm: "/wl" })
        expect(blocked.headers.get("retry-after")).toBe("60")
        // Blocked: even the right code, and management, are refused from this address.
        expect((yield* from("10.0.0.1", "/w/wl", { acc: "alpha", pwd: "alpha-code" })).status).toBe(429)
        expect((yield* from("10.0.0.1", "/agent/aam", { scm: "g", acc: "alpha" })).status).toBe(429)
        expect((yield* from("10.0.0.2", "/w/wl", { acc: "alpha", pwd: "alpha-code" })).body.e).toBe(0)
        // Good logins spend nothing of the failure budget.
        for (let i = 0; i < 5; i++)
          expect((yield* from("10.0.0.2", "/w/wl", { acc: "alpha", pwd: "alpha-code" })).body.e).toBe(0)
        yield* TestClock.adjust("59 seconds")
        expect((yield* from("10.0.0.1", "/w/wl", { acc: "alpha", pwd: "alpha-code" })).headers.get("retry-after")).toBe(
          "1"
        )
        yield* TestClock.adjust("1 second")
        expect((yield* from("10.0.0.1", "/w/wl", { acc: "alpha", pwd: "alpha-code" })).body.e).toBe(0)
        const text = yield* Effect.flatMap(request(`${stack.authUrl}/metrics`), (response) =>
          Effect.promise(() => response.text())
        )
        expect(text).toContain('switchboard_de_logins_total{server="authenticator",actor="g",result="rate-limited"} 2')
      }).pipe(Effect.provide(TestServices))
  )

  it.effect("#9 any bad first S2S frame closes with 4401: unreadable, binary, too deep, or unauthenticated", () =>
    Effect.gen(function* () {
      const auth = yield* startAuthenticator(authenticatorConfig())
      for (const frame of [
        "{not json",
        new Uint8Array([1, 2, 3]),
        `{"s2s_auth":"response","id":${nested(10_000, '"x"')},"sig":"x"}`,
        '{"c":"c","d":{"s":"u","a":"1","r":"r"}}'
      ]) {
        const peer = yield* connect(auth.s2s.port, "/")
        yield* peer.nextJson() // the challenge
        yield* peer.send(frame)
        expect((yield* peer.closed).code).toBe(CloseCodes.unauthorized)
      }
      // After authentication a deep frame is ignored and the link keeps working.
      const relay = yield* connect(auth.s2s.port, "/")
      const { nonce } = yield* relay.nextJson()
      const sig = yield* Effect.promise(() => signChallenge("test shared secret 0123456789", "relay-z", nonce))
      yield* relay.send(JSON.stringify({ s2s_auth: "response", id: "relay-z", sig }))
      expect(yield* relay.nextJson()).toEqual({ s2s_auth: "ok" })
      yield* relay.send(`{"c":"a","d":${nested(50_000)}}`)
      yield* relay.send(
        JSON.stringify({
          c: "a",
          d: {
            isOnline: true,
            version: "x",
            serverId: "relay-z",
            public_host: "h",
            serverPort: 1,
            accounts: [],
            accountDetails: {}
          }
        })
      )
      yield* relayOnline(auth, "relay-z")
    }).pipe(Effect.provide(TestServices))
  )
})
