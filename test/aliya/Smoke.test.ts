import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { it } from "../support/effect.ts"
import { aliyaTestLayer, newPlayer, startStack } from "./support.ts"

describe("aliya smoke", () => {
  it.effect("login_unique then get_all_supplies", () =>
    Effect.gen(function* () {
      const stack = yield* startStack()
      const client = yield* stack.connect
      const token = yield* newPlayer(client, "device-1")
      const r = yield* client.call("get_all_supplies", { token })
      expect(r.status).toBe(0)
      expect(r.data.item2).toEqual(["iron", 0])
    }).pipe(Effect.provide(aliyaTestLayer()))
  )
})
