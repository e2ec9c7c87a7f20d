import { describe, expect, test } from "bun:test"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import { encodeLoginSession, LoginSession } from "../../src/droneengage/Login.ts"
import {
  decodeAuthToRelay,
  decodeRelayToAuth,
  encodeAuthToRelay,
  encodeRelayToAuth,
  LoginReplyData,
  LoginRequestData,
  LogoutData
} from "../../src/droneengage/S2S.ts"
import {
  decodeAuthToRelayFast,
  decodeRelayToAuthFast,
  encodeLogin,
  encodeLoginReply,
  encodeLoginRequest,
  encodeLogout
} from "../../src/droneengage/S2SFast.ts"

const logins = Arbitrary.make(LoginRequestData)
const replies = Arbitrary.make(LoginReplyData)
const logouts = Arbitrary.make(LogoutData)

/** Both decoders' answers, comparable: the decoded value as printed (key order included) or the error text. */
const outcome = (decoded: Either.Either<unknown, string>) =>
  Either.isRight(decoded) ? { right: JSON.stringify(decoded.right), value: decoded.right } : { left: decoded.left }

/** Frames near the ones the fast paths take: valid encodings, one-character edits of them, odd values and keys. */
const nearFrames = (encodings: fc.Arbitrary<string>) =>
  fc.oneof(
    encodings,
    fc.tuple(encodings, fc.nat(), fc.string({ maxLength: 3 }), fc.nat(3)).map(([text, at, insert, cut]) => {
      const index = at % (text.length + 1)
      return text.slice(0, index) + insert + text.slice(index + cut)
    }),
    fc
      .tuple(
        fc.constantFrom("b", "c", "a", "B"),
        fc.dictionary(
          fc.constantFrom("r", "a", "b", "at", "il", "prm", "an", "e", "g", "h", "f", "s", "__proto__", "x"),
          fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom("d", "g", -0, -1, 1.5, 2 ** 53, null))
        )
      )
      .map(([c, d]) => `{"c":"${c}","d":${JSON.stringify(d)}}`),
    fc.constantFrom('{"c":"b","d":[]}', '{"c":"b","d":{', '{"c":"c","d":{}}', `{"c":"b","d":{${"[".repeat(70)}`)
  )

describe("S2S fast codecs agree with the Schemas", () => {
  test("encoders print the same bytes", () => {
    fc.assert(
      fc.property(logins, replies, logouts, (login, reply, logout) => {
        expect(encodeLogin(login)).toBe(encodeAuthToRelay({ c: "b", d: login }))
        expect(encodeLoginReply(reply)).toBe(encodeRelayToAuth({ c: "b", d: reply }))
        expect(encodeLogout(logout)).toBe(encodeRelayToAuth({ c: "c", d: logout }))
      }),
      { numRuns: 500 }
    )
  })

  test("a login key's grant and a login session are stored as their Schemas' JSON encodings print them", () => {
    const grantBySchema = Schema.encodeSync(Schema.parseJson(LoginRequestData))
    const sessionBySchema = Schema.encodeSync(Schema.parseJson(LoginSession))
    fc.assert(
      fc.property(logins, Arbitrary.make(LoginSession), (login, session) => {
        expect(encodeLoginRequest(login)).toBe(grantBySchema(login))
        expect(encodeLoginSession(session)).toBe(sessionBySchema(session))
      }),
      { numRuns: 500 }
    )
  })

  test("LOGIN decodes the same on the relay, for valid and nearly valid frames", () => {
    const frames = nearFrames(logins.map((d) => encodeAuthToRelay({ c: "b", d })))
    fc.assert(
      fc.property(frames, (text) => {
        expect(outcome(decodeAuthToRelayFast(text))).toEqual(outcome(decodeAuthToRelay(text)))
      }),
      { numRuns: 1000 }
    )
  })

  test("LOGIN replies and LOGOUTs decode the same on the authenticator, for valid and nearly valid frames", () => {
    const encodings = fc.oneof(
      replies.map((d) => encodeRelayToAuth({ c: "b", d })),
      logouts.map((d) => encodeRelayToAuth({ c: "c", d }))
    )
    fc.assert(
      fc.property(nearFrames(encodings), (text) => {
        expect(outcome(decodeRelayToAuthFast(text))).toEqual(outcome(decodeRelayToAuth(text)))
      }),
      { numRuns: 1000 }
    )
  })
})
