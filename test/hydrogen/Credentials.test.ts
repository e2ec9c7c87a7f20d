import { describe, expect } from "bun:test"
import { Duration, Effect, TestClock } from "effect"
import { it } from "../support/effect.ts"
import {
  adminKey,
  apiOnlyKey,
  command,
  connectHydrogen,
  metric,
  post,
  readerKey,
  startTestHydrogen,
  tryUpgrade
} from "./support.ts"

const publish = { channel: "news", action: "headline" }

/** Issue 12 #5: wrong keys and tokens, on /api/* and at WebSocket upgrades, count toward a per-address limit. */
describe("hydrogen failed credentials", () => {
  it.effect(
    "wrong keys on /api/* spend the address's budget, then 429 with Retry-After for BlockSeconds, whatever it presents",
    () =>
      Effect.gen(function* () {
        const hydrogen = yield* startTestHydrogen({ failedCredentialsBurst: 3, failedCredentialsPerMinute: 1 })
        for (let i = 0; i < 3; i++)
          expect((yield* post(hydrogen, "/api/publish", publish, `wrong-${i}`, "10.0.0.1")).status).toBe(401)
        const spent = yield* post(hydrogen, "/api/publish", publish, "wrong-3", "10.0.0.1")
        expect(spent.status).toBe(429)
        expect(spent.headers.get("retry-after")).toBe("60")
        expect(spent.body.error).toMatchObject({ category: "protocol", code: "rate_limited" })
        // blocked: the right key from that address too, over HTTP and at upgrade
        expect((yield* post(hydrogen, "/api/publish", publish, apiOnlyKey, "10.0.0.1")).status).toBe(429)
        const upgrade = yield* tryUpgrade(hydrogen, { authorization: `Key ${adminKey}` }, "", "10.0.0.1")
        expect(upgrade.status).toBe(429)
        expect(Number(upgrade.headers.get("retry-after"))).toBeGreaterThan(0)
        // other addresses are not affected
        expect((yield* post(hydrogen, "/api/publish", publish, apiOnlyKey, "10.0.0.2")).status).toBe(200)
        // missing credentials are not failed ones
        expect((yield* post(hydrogen, "/api/publish", publish, null, "10.0.0.2")).status).toBe(401)
        yield* TestClock.adjust(Duration.seconds(60))
        expect((yield* post(hydrogen, "/api/publish", publish, apiOnlyKey, "10.0.0.1")).status).toBe(200)
        expect(yield* metric(hydrogen, `switchboard_hydrogen_rate_limited_total{kind="credentials"}`)).toBe(3)
      })
  )

  it.effect("wrong keys at WebSocket upgrades count too, and block the HTTP API for that address", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen({ failedCredentialsBurst: 3, failedCredentialsPerMinute: 1 })
      for (let i = 0; i < 3; i++) {
        expect((yield* tryUpgrade(hydrogen, { authorization: `Key wrong-${i}` }, "", "10.0.0.3")).status).toBe(401)
      }
      const spent = yield* tryUpgrade(hydrogen, {}, "?key=hst1.forged.token", "10.0.0.3")
      expect(spent.status).toBe(429)
      expect(spent.headers.get("retry-after")).toBe("60")
      expect(spent.body.error).toContain("too many failed credentials")
      expect((yield* post(hydrogen, "/api/publish", publish, apiOnlyKey, "10.0.0.3")).status).toBe(429)
      // another address is admitted (the memory network answers an accepted bare upgrade with 426)
      expect((yield* tryUpgrade(hydrogen, { authorization: `Key ${adminKey}` }, "", "10.0.0.4")).status).toBe(426)
    })
  )

  it.effect("wrong per-message auth.token credentials count too", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen({ failedCredentialsBurst: 2, failedCredentialsPerMinute: 1 })
      const client = yield* connectHydrogen(hydrogen, readerKey)
      const withToken = (token: string) =>
        Effect.gen(function* () {
          yield* client.send(
            JSON.stringify({
              type: "command",
              id: "m",
              channel: "events",
              action: "publish",
              data: publish,
              auth: { token }
            })
          )
          return (yield* client.nextJson()).error
        })
      expect(yield* withToken("guess-1")).toMatchObject({ category: "authentication", code: "invalid_token" })
      expect(yield* withToken("guess-2")).toMatchObject({ code: "invalid_token" })
      expect(yield* withToken("guess-3")).toMatchObject({
        code: "rate_limited",
        message: expect.stringContaining("failed credentials")
      })
      expect((yield* withToken(adminKey)).code).toBe("rate_limited")
      // the connection itself carries on; the address is blocked at upgrade too
      expect((yield* command(client, "system", "ping")).response.error).toBeUndefined()
      expect((yield* tryUpgrade(hydrogen, { authorization: `Key ${adminKey}` })).status).toBe(429)
    })
  )
})
