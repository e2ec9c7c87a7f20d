import { describe, expect, test } from "bun:test"
import { Either, FastCheck as fc, Schema } from "effect"
import { AccountName } from "../../../src/storage/Account.ts"
import { parseAccountFile, renderAccountFile } from "../../../src/storage/AccountFile.ts"

const name = fc.string({ minLength: 1, maxLength: 20 }).filter(Schema.is(AccountName))
const entry = fc.record({
  sid: fc.uuid(),
  hash: fc.string({ minLength: 20, maxLength: 40 }).map((s) => `$argon2id$${s}`),
  prm: fc.nat(0xffffffff),
  isadmin: fc.boolean(),
  enabled: fc.boolean(),
  il: fc.nat(1000)
})

describe("accounts file codec", () => {
  test("what we render parses back to the same accounts", () =>
    fc.assert(
      fc.property(fc.dictionary(name, entry, { maxKeys: 5 }), (users) => {
        const parsed = parseAccountFile(renderAccountFile(users))
        expect(Either.getOrThrow(parsed).users).toEqual(users)
      })
    ))

  test("an account named __proto__ is refused with a reason, never silently dropped", () => {
    const parsed = parseAccountFile(
      JSON.stringify({ users: { ["__proto__"]: { prm: 1, pwd: "code1234" }, ok: { prm: 1, pwd: "code5678" } } })
    )
    expect(Either.isLeft(parsed) && parsed.left).toEqual(['users: the account name "__proto__" is reserved'])
    expect(Schema.is(AccountName)("__proto__")).toBe(false)
  })

  test("garbage never throws: it is a list of problems or a file", () =>
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        const parsed = parseAccountFile(text)
        if (Either.isLeft(parsed)) expect(parsed.left.length).toBeGreaterThan(0)
      })
    ))

  test("the original's plaintext shape is accepted", () => {
    const parsed = parseAccountFile(JSON.stringify({ users: { pilot: { sid: "1", pwd: "p", prm: 1, isadmin: 1 } } }))
    expect(Either.getOrThrow(parsed).users.pilot).toEqual({ sid: "1", pwd: "p", prm: 1, isadmin: 1 })
  })
})
