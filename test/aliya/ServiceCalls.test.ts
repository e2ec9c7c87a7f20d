import { describe, expect } from "bun:test"
import { Effect, Option, Random } from "effect"
import { grantWeapon, saveAccount, setBagAmounts } from "../../src/aliya/Admin.ts"
import {
  inProcessServiceCalls,
  type LocalService,
  type ServiceName,
  serviceCallsFor
} from "../../src/aliya/ServiceCalls.ts"
import { it } from "../support/effect.ts"
import { aliyaTestLayer, type StackCalls, startStack, testPasswordCost } from "./support.ts"

/**
 * The gateway's two ways of asking the owning part answer identically: the same script of
 * calls (every function, each interesting status, bad tokens and bad data) runs on two fresh
 * stacks, one over internal HTTP and one in-process, with the same random seed, and every reply
 * must be equal (tokens and device secrets, random by design, are compared by shape).
 */

type Step = readonly [fn: string, data: Record<string, unknown>]

const script = (secret: string): ReadonlyArray<Step> => [
  ["get_all_supplies", {}],
  ["increase_supplies", { supplies: ["iron", "coin", "scroll_skill_10"], amount: [100, "150", 4] }],
  ["increase_supplies", { supplies: ["gold"], amount: [1] }],
  ["level_up_scroll", { scroll_id: "scroll_skill_10" }],
  ["level_up_scroll", { scroll_id: "scroll_skill_10" }],
  ["level_up_weapon", { weapon: "weapon1", iron: "40" }],
  ["level_up_weapon", { weapon: "weapon2", iron: "20" }],
  ["level_up_weapon", { weapon: "weapon1", iron: "1000" }],
  ["level_up_weapon", { weapon: "weapon1", iron: 5 }],
  ["level_up_weapon", { weapon: "weapon41", iron: 20 }],
  ["level_up_weapon", { weapon: "weapon1" }],
  ["level_up_passive", { weapon: "weapon1", passive: "passive_skill_2_level" }],
  ["level_up_passive", { weapon: "weapon1", passive: "passive_skill_9_level" }],
  ["level_up_passive", { weapon: "weapon3", passive: "passive_skill_1_level" }],
  ["reset_weapon_skill_point", { weapon: "weapon1" }],
  ["reset_weapon_skill_point", { weapon: "weapon1" }],
  ["level_up_weapon_star", { weapon: "weapon1" }],
  ["get_all_weapon", {}],
  ["random_gift_segment", {}],
  ["random_gift_segment", {}],
  ["get_all_skill_level", {}],
  ["get_skill", { skill_id: "m1_level" }],
  ["get_skill", { skill_id: "nope" }],
  ["random_gift_skill", {}],
  ["skill_level_up", { skill_id: "m1_level", scroll_id: "scroll_skill_100" }],
  ["skill_level_up", { skill_id: "m1_level", scroll_id: "scroll_skill_10" }],
  ["increase_energy", { energy: 3 }],
  ["decrease_energy", { energy: 20 }],
  ["decrease_energy", { energy: 2 }],
  ["pass_level", { level_id: 1 }],
  ["pass_level", { level_id: 5 }],
  ["bind_account", { account: "same-account", password: "pw-1" }],
  ["bind_account", { account: "other", password: "pw-2" }],
  ["login", { identifier: "account", value: "same-account", password: "pw-1" }],
  ["login", { identifier: "account", value: "same-account", password: "wrong" }],
  ["login", { identifier: "unique_id", value: "x", password: "y" }],
  ["login_unique", { unique_id: "same-player", device_secret: secret }],
  ["login_unique", { unique_id: "fresh-device" }],
  ["login_unique", { unique_id: "fresh-device" }],
  ["no_such_function", {}]
]

/** Random by design (a JWT, a device secret): compared by shape only. */
const normalize = (reply: unknown): unknown =>
  JSON.parse(
    JSON.stringify(reply, (key, value) =>
      key === "token" && typeof value === "string" && value.split(".").length === 3
        ? "<jwt>"
        : key === "device_secret" && typeof value === "string" && value.length >= 32
          ? "<secret>"
          : value
    )
  )

/** Runs the script on a fresh stack; the replies in order (plus the bad-token and bad-data cases). */
const replies = (calls: StackCalls) =>
  Effect.gen(function* () {
    const stack = yield* startStack({ calls })
    const client = yield* stack.connect
    const created = yield* client.call("login_unique", { unique_id: "same-player" })
    const token = created.data.token as string
    const secret = created.data.device_secret as string
    yield* saveAccount({ uniqueId: "taken", bound: true, account: "other", password: "pw" }, testPasswordCost)
    yield* grantWeapon("same-player", "weapon1", { star: 1, level: 97, segment: 40 })
    yield* grantWeapon("same-player", "weapon2", { star: 1, level: 100 })
    yield* setBagAmounts("same-player", { coin: 100 })
    const out: Array<unknown> = [created]
    for (const [fn, data] of script(secret)) out.push(yield* client.call(fn, { token, ...data }))
    out.push(yield* client.call("get_all_weapon", { token: "not.a.token" }))
    out.push(yield* client.call("get_all_weapon", { token: 42 }))
    out.push(yield* client.call("get_all_weapon", {}))
    return out.map(normalize)
  }).pipe(Effect.withRandom(Random.make("same seed")), Effect.provide(aliyaTestLayer()))

describe("aliya gateway → parts: HTTP and in-process calls", () => {
  it.effect("the same script gets the same replies over internal HTTP and in-process", () =>
    Effect.gen(function* () {
      const overHttp = yield* replies("http")
      const inProcess = yield* replies("in-process")
      expect(inProcess).toEqual(overHttp)
      // The script did reach every kind of answer, not only errors.
      const statuses = new Set(overHttp.map((r) => (r as { status: number }).status))
      for (const status of [0, 1, 2, 9, 10, 11]) expect(statuses).toContain(status)
    })
  )

  it.effect("in-process: a part that is not served here is refused like an unreachable one", () =>
    Effect.gen(function* () {
      const local = new Map<ServiceName, LocalService>([
        [
          "bag",
          {
            post: (path) => (path === "/get_all_supplies" ? Promise.resolve({ httpStatus: 200, body: {} }) : undefined)
          }
        ]
      ])
      const calls = inProcessServiceCalls(local)
      expect(yield* Effect.promise(async () => calls.post("bag", "get_all_supplies", {}))).toEqual({
        status: 200,
        body: {}
      })
      for (const refused of [
        async () => calls.post("weapon", "get_all_weapon", {}),
        async () => calls.post("bag", "no_such_route", {}),
        () => calls.validate("token")
      ]) {
        const error = yield* Effect.flip(Effect.tryPromise(refused))
        expect(String((error.error as Error).message)).toContain("not served here")
      }
    })
  )

  it.effect("in-process: a route that answers now is passed on now (no Promise, no microtask)", () =>
    Effect.sync(() => {
      const local = new Map<ServiceName, LocalService>([
        ["weapon", { post: () => ({ httpStatus: 200, body: { now: true } }) }]
      ])
      expect(inProcessServiceCalls(local).post("weapon", "get_all_weapon", {})).toEqual({
        status: 200,
        body: { now: true }
      })
    })
  )

  it.effect("auto: registered parts in-process, the others over HTTP; http: always HTTP", () =>
    Effect.gen(function* () {
      const viaHttp = {
        post: (service: ServiceName) => Promise.resolve({ status: 200, body: { via: `http:${service}` } }),
        validate: () => Promise.resolve({ status: 200, body: { via: "http:validate" } }),
        onIssued: () => false
      }
      const local = new Map<ServiceName, LocalService>([
        ["weapon", { post: () => Promise.resolve({ httpStatus: 200, body: { via: "local:weapon" } }) }]
      ])
      const ask = (calls: ReturnType<typeof serviceCallsFor>) =>
        Effect.promise(() =>
          Promise.all([
            calls.post("weapon", "get_all_weapon", {}),
            calls.post("bag", "get_all_supplies", {}),
            calls.validate("t")
          ])
        )
      const auto = yield* ask(serviceCallsFor("auto", viaHttp, Option.some(local)))
      expect(auto.map((r) => (r.body as { via: string }).via)).toEqual(["local:weapon", "http:bag", "http:validate"])
      const http = yield* ask(serviceCallsFor("http", viaHttp, Option.some(local)))
      expect(http.map((r) => (r.body as { via: string }).via)).toEqual(["http:weapon", "http:bag", "http:validate"])
      const alone = yield* ask(serviceCallsFor("auto", viaHttp, Option.none()))
      expect(alone.map((r) => (r.body as { via: string }).via)).toEqual(["http:weapon", "http:bag", "http:validate"])
    })
  )

  // The cause of the bench's status-13 logins: the co-located token server asked the AccountManager
  // over HTTP, and logins queued behind argon2 checks past the 10 s HTTP timeout answered 13.
  it.effect("co-located: the token server asks the AccountManager in-process, not over HTTP", () =>
    Effect.gen(function* () {
      // The AccountManager's HTTP address is unreachable: only an in-process call can answer.
      const unreachable = "http://memory:1"
      const inProcess = yield* startStack({ calls: "in-process", accountManagerUrl: unreachable })
      yield* saveAccount(
        { uniqueId: "u-login", bound: true, account: "login-me", password: "pw-login" },
        testPasswordCost
      )
      const login = { identifier: "account", value: "login-me", password: "pw-login" }
      expect((yield* (yield* inProcess.connect).call("login", login)).status).toBe(0)
      const overHttp = yield* startStack({ calls: "http", accountManagerUrl: unreachable })
      expect((yield* (yield* overHttp.connect).call("login", login)).status).toBe(13)
    }).pipe(Effect.provide(aliyaTestLayer()))
  )
})
