import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { grantWeapon, saveAccount, setBagAmounts, setSkill } from "../../src/aliya/Admin.ts"
import { Skills, Weapons } from "../../src/aliya/Game.ts"
import { it } from "../support/effect.ts"
import { aliyaTestLayer, type CipherKind, newPlayer, type StackCalls, startStack, testPasswordCost } from "./support.ts"

/**
 * Every documented function with each of its status codes, over the gateway, in both cipher
 * modes, with the managers asked over internal HTTP and (AES) in-process, as when co-located.
 */
const compositions: ReadonlyArray<readonly [CipherKind, StackCalls]> = [
  ["aes-256-gcm", "http"],
  ["des-compat", "http"],
  ["aes-256-gcm", "in-process"]
]
for (const [cipher, calls] of compositions) {
  const setup = Effect.gen(function* () {
    const stack = yield* startStack({ cipher, calls })
    const client = yield* stack.connect
    const token = yield* newPlayer(client, "player-1")
    const call = (fn: string, data: Record<string, unknown> = {}) => client.call(fn, { token, ...data })
    const status = (fn: string, data: Record<string, unknown> = {}) => Effect.map(call(fn, data), (r) => r.status)
    return { stack, client, token, call, status }
  })
  const test = (
    name: string,
    body: (ctx: Effect.Effect.Success<typeof setup>) => Effect.Effect<void, unknown, SqlClient.SqlClient>
  ) =>
    it.effect(`${cipher}, ${calls}: ${name}`, () => Effect.flatMap(setup, body).pipe(Effect.provide(aliyaTestLayer())))

  describe(`aliya functions (${cipher}, ${calls})`, () => {
    test("login: 0 by account, email and phone number; 1 for a wrong password or an unknown value", ({ client }) =>
      Effect.gen(function* () {
        yield* saveAccount(
          {
            uniqueId: "alice-id",
            bound: true,
            account: "alice",
            password: "correct horse",
            email: "a@example.com",
            phoneNumber: "5550100"
          },
          testPasswordCost
        )
        for (const [identifier, value] of [
          ["account", "alice"],
          ["email", "a@example.com"],
          ["phone_number", "5550100"]
        ]) {
          const r = yield* client.call("login", { identifier, value, password: "correct horse" })
          expect(r.status).toBe(0)
          expect(String(r.data.token).split(".")).toHaveLength(3)
        }
        expect((yield* client.call("login", { identifier: "account", value: "alice", password: "wrong" })).status).toBe(
          1
        )
        expect((yield* client.call("login", { identifier: "account", value: "nobody", password: "x" })).status).toBe(1)
      }))

    test("login_unique: 1 creates (with a device secret), 0 with the secret, 3 without it, 2 once bound", ({
      client
    }) =>
      Effect.gen(function* () {
        const created = yield* client.call("login_unique", { unique_id: "device-7" })
        expect(created.status).toBe(1)
        const secret = created.data.device_secret as string
        expect(secret).toMatch(/^[0-9a-f]{64}$/)
        expect((yield* client.call("login_unique", { unique_id: "device-7", device_secret: secret })).status).toBe(0)
        expect((yield* client.call("login_unique", { unique_id: "device-7" })).status).toBe(3)
        expect(
          (yield* client.call("login_unique", { unique_id: "device-7", device_secret: "0".repeat(64) })).status
        ).toBe(3)
        const token = (yield* client.call("login_unique", { unique_id: "device-7", device_secret: secret })).data.token
        expect((yield* client.call("bind_account", { token, account: "seven", password: "pass-seven" })).status).toBe(0)
        expect((yield* client.call("login_unique", { unique_id: "device-7", device_secret: secret })).status).toBe(2)
      }))

    test("bind_account: 0, then 2 already bound, 1 name taken, 3 no account", ({ client, status, token }) =>
      Effect.gen(function* () {
        expect(yield* status("bind_account", { account: "p1", password: "pw-1234" })).toBe(0)
        expect(yield* status("bind_account", { account: "p1b", password: "pw-1234" })).toBe(2)
        const other = yield* newPlayer(client, "player-2")
        expect((yield* client.call("bind_account", { token: other, account: "p1", password: "pw-1234" })).status).toBe(
          1
        )
        const sql = yield* SqlClient.SqlClient
        yield* sql`DELETE FROM aliya_accounts WHERE unique_id = ${"player-2"}`
        expect((yield* client.call("bind_account", { token: other, account: "p2", password: "pw-1234" })).status).toBe(
          3
        )
        const login = yield* client.call("login", { identifier: "account", value: "p1", password: "pw-1234" })
        expect(login.status).toBe(0)
        expect(token).not.toBe(login.data.token)
      }))

    test("skill_level_up: 0 with a sure scroll, 1 locked skill, 2 no scrolls, 9 max level", ({ call, status }) =>
      Effect.gen(function* () {
        expect(yield* status("skill_level_up", { skill_id: "m1_level", scroll_id: "scroll_skill_100" })).toBe(1)
        yield* setSkill("player-1", "m1_level", 1)
        expect(yield* status("skill_level_up", { skill_id: "m1_level", scroll_id: "scroll_skill_100" })).toBe(2)
        yield* setBagAmounts("player-1", { scroll_skill_100: 2 })
        const r = yield* call("skill_level_up", { skill_id: "m1_level", scroll_id: "scroll_skill_100" })
        expect(r).toMatchObject({
          status: 0,
          data: { skill1: ["m1_level", 2], item1: ["scroll_skill_100", 1], upgrade: 0 }
        })
        yield* setSkill("player-1", "m1_level", 10)
        expect(yield* status("skill_level_up", { skill_id: "m1_level", scroll_id: "scroll_skill_100" })).toBe(9)
        expect(yield* status("skill_level_up", { skill_id: "nope", scroll_id: "scroll_skill_100" })).toBe(1)
      }))

    test("get_all_skill_level and get_skill: 0; get_skill 1 for an unknown skill", ({ call, status }) =>
      Effect.gen(function* () {
        yield* setSkill("player-1", "g13_level", 4)
        const all = yield* call("get_all_skill_level")
        expect(all.status).toBe(0)
        expect(Object.keys(all.data)).toHaveLength(Skills.length)
        expect(Object.values(all.data)).toContainEqual(["g13_level", 4])
        expect((yield* call("get_skill", { skill_id: "g13_level" })).data).toEqual({ skill1: ["g13_level", 4] })
        expect(yield* status("get_skill", { skill_id: "x_level" })).toBe(1)
      }))

    test("random_gift_skill: 0 unlocks a skill when none is unlocked, 1 gives a scroll when all are", ({ call }) =>
      Effect.gen(function* () {
        const first = yield* call("random_gift_skill")
        expect(first.status).toBe(0)
        expect((first.data.skill1 as Array<unknown>)[1]).toBe(1)
        for (const skill of Skills) yield* setSkill("player-1", skill, 1)
        const second = yield* call("random_gift_skill")
        expect(second.status).toBe(1)
        expect(String((second.data.item1 as Array<unknown>)[0])).toMatch(/^scroll_skill_/)
      }))

    test("increase_energy / decrease_energy: 0, and 1 for an energy error", ({ call, status }) =>
      Effect.gen(function* () {
        expect((yield* call("decrease_energy", { energy: "3" })).data).toEqual({ energy: 7 })
        expect((yield* call("increase_energy", { energy: 5 })).data).toEqual({ energy: 12 })
        expect(yield* status("decrease_energy", { energy: 13 })).toBe(1)
        expect(yield* status("increase_energy", { energy: 0 })).toBe(1)
      }))

    test("pass_level: 0 with the rewards in the bag, 1 for a level not reached", ({ call, status }) =>
      Effect.gen(function* () {
        expect(yield* status("pass_level", { level_id: 2 })).toBe(1)
        expect((yield* call("pass_level", { level_id: 1 })).data).toEqual({
          reward1: ["small_energy_potion", 1],
          item1: ["small_energy_potion", 1],
          item2: ["level", 1]
        })
        const second = yield* call("pass_level", { level_id: "2" })
        expect(second.status).toBe(0)
        expect(second.data.item3).toEqual(["iron", 125])
        expect(second.data.item6).toEqual(["level", 2])
        expect((yield* call("get_all_supplies")).data.item2).toEqual(["iron", 125])
      }))

    test("level_up_scroll: 0 turns three scrolls into one better, 1 when short", ({ call, status }) =>
      Effect.gen(function* () {
        expect(yield* status("level_up_scroll", { scroll_id: "scroll_skill_10" })).toBe(1)
        yield* setBagAmounts("player-1", { scroll_skill_10: 4 })
        expect((yield* call("level_up_scroll", { scroll_id: "scroll_skill_10" })).data).toEqual({
          item1: ["scroll_skill_10", 1],
          item2: ["scroll_skill_30", 1]
        })
      }))

    test("random_gift_segment: 1 gives a new weapon when none is owned, 0 gives segments when all are", ({ call }) =>
      Effect.gen(function* () {
        const first = yield* call("random_gift_segment")
        expect(first.status).toBe(1)
        expect((first.data.weapon_bag1 as Array<unknown>).slice(1)).toEqual([1, 0])
        for (const weapon of Weapons) yield* grantWeapon("player-1", weapon, { star: 2 })
        const second = yield* call("random_gift_segment")
        expect(second.status).toBe(0)
        expect((second.data.weapon_bag1 as Array<unknown>).slice(1)).toEqual([2, 30])
      }))

    test("get_all_supplies and increase_supplies: 0", ({ call }) =>
      Effect.gen(function* () {
        const r = yield* call("increase_supplies", { supplies: ["iron", "coin"], amount: [40, "7"] })
        expect(r).toMatchObject({ status: 0, data: { supplies: ["iron", "coin"], amount: [40, 7] } })
        const all = yield* call("get_all_supplies")
        expect(all.data).toMatchObject({ item1: ["coin", 7], item2: ["iron", 40] })
        expect((yield* call("increase_supplies", { supplies: ["gold"], amount: [1] })).status).toBe(10)
      }))

    test("level_up_weapon: 0, 1 no weapon, 2 not enough iron, 9 max level", ({ call, status }) =>
      Effect.gen(function* () {
        expect(yield* status("level_up_weapon", { weapon: "weapon1", iron: "100" })).toBe(1)
        yield* grantWeapon("player-1", "weapon1", { star: 1, level: 98 })
        expect(yield* status("level_up_weapon", { weapon: "weapon1", iron: "100" })).toBe(2)
        yield* setBagAmounts("player-1", { iron: 100 })
        expect(yield* status("level_up_weapon", { weapon: "weapon1", iron: "19" })).toBe(2)
        const r = yield* call("level_up_weapon", { weapon: "weapon1", iron: "100" })
        expect(r.data).toEqual({ weapon_bag1: ["player-1", 100, 0, 0, 0, 0, 2, 0], item1: ["iron", 60] })
        expect(yield* status("level_up_weapon", { weapon: "weapon1", iron: "20" })).toBe(9)
      }))

    test("level_up_passive: 0, 1 no weapon, 2 no skill points, 9 unknown passive", ({ call, status }) =>
      Effect.gen(function* () {
        expect(yield* status("level_up_passive", { weapon: "weapon2", passive: "passive_skill_1_level" })).toBe(1)
        yield* grantWeapon("player-1", "weapon2", { star: 1, skillPoint: 1 })
        expect(yield* status("level_up_passive", { weapon: "weapon2", passive: "passive_skill_9_level" })).toBe(9)
        const r = yield* call("level_up_passive", { weapon: "weapon2", passive: "passive_skill_3_level" })
        expect(r.data).toEqual({ weapon_bag1: ["player-1", 0, 0, 0, 1, 0, 0, 0] })
        expect(yield* status("level_up_passive", { weapon: "weapon2", passive: "passive_skill_3_level" })).toBe(2)
      }))

    test("reset_weapon_skill_point: 0 refunds the points for coins, 1 no weapon, 2 not enough coins", ({
      call,
      status
    }) =>
      Effect.gen(function* () {
        expect(yield* status("reset_weapon_skill_point", { weapon: "weapon3" })).toBe(1)
        yield* grantWeapon("player-1", "weapon3", { star: 1, skillPoint: 1, passives: [1, 2, 0, 3] })
        expect(yield* status("reset_weapon_skill_point", { weapon: "weapon3" })).toBe(2)
        yield* setBagAmounts("player-1", { coin: 150 })
        const r = yield* call("reset_weapon_skill_point", { weapon: "weapon3" })
        expect(r.data).toEqual({ weapon_bag1: ["player-1", 0, 0, 0, 0, 0, 7, 0], item1: ["coin", 50] })
      }))

    test("level_up_weapon_star: 0 for segments, 1 no weapon, 2 not enough segments", ({ call, status }) =>
      Effect.gen(function* () {
        expect(yield* status("level_up_weapon_star", { weapon: "weapon4" })).toBe(1)
        yield* grantWeapon("player-1", "weapon4", { star: 2, segment: 59 })
        expect(yield* status("level_up_weapon_star", { weapon: "weapon4" })).toBe(2)
        yield* grantWeapon("player-1", "weapon4", { segment: 65 })
        const r = yield* call("level_up_weapon_star", { weapon: "weapon4" })
        expect(r.data).toEqual({ weapon_bag1: ["player-1", 0, 0, 0, 0, 0, 0, 5], weapon_star: ["weapon4", 3] })
      }))

    test("get_all_weapon: 0 lists owned weapons in order", ({ call }) =>
      Effect.gen(function* () {
        expect((yield* call("get_all_weapon")).data).toEqual({})
        yield* grantWeapon("player-1", "weapon10", { star: 1, level: 5 })
        yield* grantWeapon("player-1", "weapon2", { star: 3 })
        expect((yield* call("get_all_weapon")).data).toEqual({
          weapon_bag1: ["weapon2", 3, 0, 0, 0, 0, 0, 0, 0],
          weapon_bag2: ["weapon10", 1, 5, 0, 0, 0, 0, 0, 0]
        })
      }))

    test("gateway: 10 for an unknown function, a missing key or a missing token; 11 with bad_token; random echoed", ({
      client
    }) =>
      Effect.gen(function* () {
        const unknown = yield* client.call("fly", {})
        expect(unknown).toEqual({ status: 10, message: "Invalid message format", random: "2", data: {} })
        expect((yield* client.call("level_up_weapon", { weapon: "weapon1" })).status).toBe(10)
        expect((yield* client.call("get_all_weapon", {})).status).toBe(10)
        const bad = yield* client.call("get_all_weapon", { token: "not-a-token" })
        expect(bad).toMatchObject({ status: 11, message: "Authorization required", data: { bad_token: "not-a-token" } })
        yield* client.sendText("not json")
        expect((yield* client.nextReply).status).toBe(10)
        yield* client.sendText(JSON.stringify({ random: "9", data: {} }))
        expect(yield* client.nextReply).toEqual({ status: 10, message: "Invalid message format", random: "", data: {} })
      }))
  })
}
