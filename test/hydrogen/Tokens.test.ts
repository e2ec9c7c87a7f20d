import { describe, expect } from "bun:test"
import { Duration, Effect, Either, Option, Redacted, TestClock } from "effect"
import { hashApiKey, makeApiKeys } from "../../src/hydrogen/ApiKeys.ts"
import { credentialOf, makeAuthenticator, redactUrl } from "../../src/hydrogen/Auth.ts"
import { makeSignedTokens } from "../../layers/Tokens/SignedTokens.ts"
import { it } from "../support/effect.ts"

const tokens = makeSignedTokens(Redacted.make("test-secret"))
const keys = makeApiKeys([
  {
    name: "plain",
    key: Option.some(Redacted.make("k-plain-0123456789")),
    hash: Option.none(),
    permissions: ["subscribe"]
  },
  { name: "hashed", key: Option.none(), hash: Option.some(hashApiKey("k-hashed-0123456789")), permissions: ["api"] }
])

describe("signed session tokens", () => {
  it.effect("verify what was issued until it expires (TestClock)", () =>
    Effect.gen(function* () {
      const { token } = yield* tokens.issue("alice", ["subscribe", "publish:chat"], Duration.seconds(60))
      const claims = yield* tokens.verify(token)
      expect(claims.sub).toBe("alice")
      expect(claims.perms).toEqual(["subscribe", "publish:chat"])
      yield* TestClock.adjust(Duration.seconds(59))
      expect(Either.isRight(yield* Effect.either(tokens.verify(token)))).toBe(true)
      yield* TestClock.adjust(Duration.seconds(1))
      const expired = yield* Effect.either(tokens.verify(token))
      expect(Either.isLeft(expired) && expired.left.reason).toBe("expired")
    })
  )

  it.effect("tampered claims, foreign secrets and garbage are refused", () =>
    Effect.gen(function* () {
      const { token } = yield* tokens.issue("alice", ["subscribe"], Duration.seconds(60))
      const [head, payload, mac] = token.split(".") as [string, string, string]
      const forged = Buffer.from(JSON.stringify({ sub: "alice", perms: ["*"], iat: 0, exp: 9e9 })).toString("base64url")
      const reasons = yield* Effect.forEach(
        [
          `${head}.${forged}.${mac}`,
          (yield* makeSignedTokens(Redacted.make("other")).issue("a", [], Duration.seconds(9))).token,
          "hst1.",
          "hst1.x.y",
          `${head}.${payload}.`
        ],
        (t) => Effect.flip(tokens.verify(t)).pipe(Effect.map((e) => e.reason))
      )
      expect(reasons).toEqual(["bad_signature", "bad_signature", "bad_signature", "bad_signature", "bad_signature"])
    })
  )
})

describe("API keys", () => {
  it.effect("plain and pre-hashed keys map to identities; unknown keys do not", () =>
    Effect.sync(() => {
      expect(Option.getOrThrow(keys.lookup("k-plain-0123456789")).name).toBe("plain")
      expect(Option.getOrThrow(keys.lookup("k-hashed-0123456789")).permissions).toEqual(["api"])
      expect(Option.isNone(keys.lookup("k-plain-012345678"))).toBe(true)
      expect(Option.isNone(keys.lookup(""))).toBe(true)
      expect(hashApiKey("x")).toMatch(/^sha256:[0-9a-f]{64}$/)
    })
  )

  it.effect("the authenticator tells keys from tokens and names the failure", () =>
    Effect.gen(function* () {
      const authenticate = makeAuthenticator(keys, tokens)
      expect((yield* authenticate("k-plain-0123456789")).kind).toBe("api-key")
      const { token } = yield* tokens.issue("bob", ["subscribe"], Duration.seconds(5))
      expect(yield* authenticate(token)).toEqual({
        name: "bob",
        kind: "session",
        permissions: ["subscribe"],
        expiresAt: 5000
      })
      expect((yield* Effect.flip(authenticate("nope"))).code).toBe("invalid_token")
      yield* TestClock.adjust(Duration.seconds(5))
      expect((yield* Effect.flip(authenticate(token))).code).toBe("token_expired")
    })
  )

  it.effect(
    "credentials come from the Authorization header first, then ?key=; URLs are logged with the key masked",
    () =>
      Effect.sync(() => {
        const url = new URL("http://h/ws?key=secret&x=1")
        expect(credentialOf(new Headers({ authorization: "Key abc" }), url)).toBe("abc")
        expect(credentialOf(new Headers(), url)).toBe("secret")
        expect(credentialOf(new Headers(), new URL("http://h/"))).toBeUndefined()
        expect(credentialOf(new Headers({ authorization: "Basic zzz" }), url)).toBe("")
        expect(redactUrl(url)).not.toContain("secret")
      })
  )
})
