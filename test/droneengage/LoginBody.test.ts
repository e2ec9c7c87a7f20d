import { describe, expect, test } from "bun:test"
import { Either, FastCheck as fc } from "effect"
import { decodeBody, decodeLoginBody, LoginBody } from "../../src/droneengage/Api.ts"

/** Both decoders' answers, comparable: the value as printed (key order included) or the error text. */
const outcome = (decoded: Either.Either<unknown, string>) =>
  Either.isRight(decoded) ? { right: JSON.stringify(decoded.right), value: decoded.right } : { left: decoded.left }

const fieldValue = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.string({ minLength: 60, maxLength: 300 }),
  fc.constantFrom("", " ", " a ", "\u00a0x\u2028", "\ufeff", "1", "0x10"),
  fc.double(),
  fc.integer(),
  fc.constantFrom(Number.NaN, Infinity, -0, 1e21, 0.1, null, true, undefined),
  fc.array(fc.string(), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 2 }), fc.string({ maxLength: 2 }), { maxKeys: 1 })
)
const bodies = fc.dictionary(
  fc.constantFrom("acc", "pwd", "gr", "app", "ver", "ex", "at", "x", "__proto__", "constructor"),
  fieldValue
)

describe("decodeLoginBody agrees with decodeBody(LoginBody)", () => {
  test("same value (key order included) or same error on generated bodies", () => {
    fc.assert(
      fc.property(bodies, (body) => {
        expect(outcome(decodeLoginBody(body))).toEqual(outcome(decodeBody(LoginBody, body)))
      }),
      { numRuns: 3000 }
    )
  })

  test("the usual bodies, JSON and form", () => {
    for (const body of [
      { acc: "drone@x", pwd: "code" },
      { acc: " a ", pwd: 123, gr: "2", app: "de", ver: "1.0", ex: "", at: "g" },
      Object.fromEntries(new URLSearchParams("acc=a&pwd=b&gr=&x=1"))
    ]) {
      expect(outcome(decodeLoginBody(body))).toEqual(outcome(decodeBody(LoginBody, body)))
    }
  })
})
