import { describe, expect } from "bun:test"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Either, Layer, Logger, Option, Redacted } from "effect"
import { Permission } from "../../../src/storage/Account.ts"
import { AccessCodeHasher } from "../../../layers/Storage/AccessCodeHasher.ts"
import { AccountStore } from "../../../layers/Storage/AccountStore.ts"
import { JsonAccountStore } from "../../../layers/Storage/JsonAccountStore.ts"
import { SingleAccountStore } from "../../../layers/Storage/SingleAccountStore.ts"
import { it } from "../../support/effect.ts"
import { accountStoreContract } from "./AccountStoreContract.ts"
import { tempDirectory } from "./backends.ts"

const dir = tempDirectory("account-files")
const jsonStore = (path: string) => JsonAccountStore(path).pipe(Layer.provide(AccessCodeHasher.Fast))
const contractFile = join(dir, "contract", "accounts.json")

accountStoreContract({
  name: "json file",
  layer: JsonAccountStore(contractFile),
  dump: Effect.promise(() => Bun.file(contractFile).text()),
  persistent: true
})

/** Runs `body` against a JSON store on `path`, collecting every log message. */
const withJsonStore = <A, E>(path: string, body: Effect.Effect<A, E, AccountStore>) => {
  const logs: Array<string> = []
  const capture = Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ message }) => void logs.push(String(message)))
  )
  return Effect.provide(body, jsonStore(path)).pipe(
    Effect.provide(capture),
    Effect.map((value) => ({ value, logs }))
  )
}

describe("JSON account file", () => {
  it.live("accepts the original's plaintext file, hashes every pwd and rewrites the file without it", () =>
    Effect.gen(function* () {
      const path = join(dir, "original.json")
      const original = {
        users: {
          pilot: { sid: "acc-1", pwd: "pilot-secret-code", prm: 0xffffffff, isadmin: true },
          drone: { sid: "acc-2", pwd: "drone-secret-code", prm: Permission.agent, isadmin: false }
        }
      }
      writeFileSync(path, JSON.stringify(original))
      const { value: pilot, logs } = yield* withJsonStore(
        path,
        Effect.flatMap(AccountStore, (s) => s.authenticate("pilot", "pilot-secret-code"))
      )
      expect(Option.getOrThrow(pilot)).toMatchObject({
        id: "acc-1",
        isAdmin: true,
        enabled: true,
        instanceLimit: 0,
        permission: 0xffffffff
      })
      const rewritten = readFileSync(path, "utf8")
      expect(rewritten).not.toContain("secret-code")
      expect(rewritten).not.toContain('"pwd"')
      const users = JSON.parse(rewritten).users
      expect(users.pilot).toMatchObject({ sid: "acc-1", prm: 0xffffffff, isadmin: true, enabled: true, il: 0 })
      expect(users.drone.hash).toStartWith("$")
      // The warning names each migrated account and never its code.
      expect(logs.filter((line) => line.includes("plaintext")).length).toBe(2)
      expect(logs.some((line) => line.includes('"pilot"'))).toBe(true)
      expect(logs.join("\n")).not.toContain("secret-code")
      // Re-opening reads the hashes: no rewrite, no warning, same codes.
      const again = yield* withJsonStore(
        path,
        Effect.flatMap(AccountStore, (s) => s.authenticate("drone", "drone-secret-code"))
      )
      expect(Option.getOrThrow(again.value).id).toBe("acc-2")
      expect(again.logs.filter((line) => line.includes("plaintext"))).toEqual([])
    })
  )

  it.live("a missing file starts empty and is created; writes leave no temp files behind", () =>
    Effect.gen(function* () {
      const path = join(dir, "fresh", "accounts.json")
      yield* withJsonStore(
        path,
        Effect.gen(function* () {
          const store = yield* AccountStore
          expect(yield* store.list).toEqual([])
          yield* store.create({ name: "first", permission: Permission.gcs })
          yield* store.regenerateAccessCode("first")
          yield* store.setEnabled("first", false)
        })
      )
      expect(readdirSync(join(dir, "fresh"))).toEqual(["accounts.json"])
      expect(JSON.parse(readFileSync(path, "utf8")).users.first).toMatchObject({ enabled: false, prm: Permission.gcs })
    })
  )

  const refused = (name: string, content: string, expected: RegExp) =>
    it.live(`a bad file stops startup with a clear StorageError: ${name}`, () =>
      Effect.gen(function* () {
        const path = join(dir, `bad-${crypto.randomUUID().slice(0, 8)}.json`)
        writeFileSync(path, content)
        const result = yield* Effect.either(withJsonStore(path, AccountStore))
        expect(Either.isLeft(result) && result.left._tag).toBe("StorageError")
        if (Either.isLeft(result)) {
          expect(result.left.message).toContain(path)
          expect(result.left.message).toMatch(expected)
        }
      })
    )
  refused("not JSON", "{users:", /invalid/)
  refused("no users", "{}", /users/)
  refused("prm missing", JSON.stringify({ users: { a: { sid: "1", pwd: "x" } } }), /users\.a\.prm/)
  refused("neither pwd nor hash", JSON.stringify({ users: { a: { sid: "1", prm: 1 } } }), /users\.a/)
  refused(
    "plaintext in hash",
    JSON.stringify({ users: { a: { sid: "1", hash: "not-a-hash", prm: 1 } } }),
    /users\.a\.hash/
  )
  refused(
    "bad account name",
    JSON.stringify({ users: { " padded": { sid: "1", pwd: "x", prm: 1 } } }),
    /invalid account names.*" padded"/
  )
  refused(
    "duplicate sid",
    JSON.stringify({ users: { a: { sid: "1", pwd: "x", prm: 1 }, b: { sid: "1", pwd: "y", prm: 1 } } }),
    /sid "1"/
  )
})

accountStoreContract({
  name: "single account",
  layer: SingleAccountStore({
    name: "operator",
    accessCode: Redacted.make("single-code"),
    permission: Permission.all,
    isAdmin: true,
    instanceLimit: 0
  }),
  persistent: false,
  readOnly: { name: "operator", accessCode: "single-code" }
})
