import { describe, expect } from "bun:test"
import { Effect, Queue } from "effect"
import { Permission } from "../../src/storage/Account.ts"
import { it } from "../support/effect.ts"
import { connectUnit, expectNothing, seedAccounts, startStack, TestServices } from "./harness.ts"

/** The relay serves every unit with one shared handler (its state is in the connection's data): it must not mix units up. */
describe("DroneEngage relay: one handler for every unit", () => {
  it.effect("messages are stamped and routed per unit, and a close removes that unit's seat only", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const changes = yield* stack.relay.rooms.changes
      const web = yield* connectUnit(stack, "alpha", "g", "web")
      const drones = [
        yield* connectUnit(stack, "alpha", "d", "d1"),
        yield* connectUnit(stack, "alpha", "d", "d2"),
        yield* connectUnit(stack, "alpha", "d", "d3")
      ]
      // The same unit name in another account is another seat.
      const betaWeb = yield* connectUnit(stack, "beta", "g", "web")
      const betaD2 = yield* connectUnit(stack, "beta", "d", "d2")

      for (const [i, drone] of drones.entries()) yield* web.send(JSON.stringify({ ty: "i", tg: drone.name, mt: i + 1 }))
      for (const [i, drone] of drones.entries())
        expect(yield* drone.nextJson()).toEqual({ ty: "i", tg: drone.name, mt: i + 1, sd: "web", p: Permission.all })
      for (const [i, drone] of drones.entries())
        yield* drone.send(JSON.stringify({ ty: "g", mt: 100 + i, sd: "forged" }))
      for (const [i, drone] of drones.entries())
        expect(yield* web.nextJson()).toEqual({ ty: "g", mt: 100 + i, sd: drone.name, p: Permission.all })
      yield* betaD2.send(JSON.stringify({ ty: "g", mt: 7 }))
      expect(yield* betaWeb.nextJson()).toEqual({ ty: "g", mt: 7, sd: "d2", p: Permission.all })
      yield* expectNothing(web)

      // Closing alpha's d2 lets that seat go, not beta's d2 nor alpha's other drones.
      yield* drones[1]!.close()
      while (true) {
        const change = yield* Queue.take(changes)
        if (change._tag === "Left" && change.member.unitName === "d2") {
          expect(change.member.accountName).toBe("alpha")
          break
        }
      }
      const alpha = yield* stack.relay.rooms.presence({ accountId: "1", group: "1" })
      expect(alpha.map((p) => p.unitName).sort()).toEqual(["d1", "d3", "web"])
      const beta = yield* stack.relay.rooms.presence({ accountId: "2", group: "1" })
      expect(beta.map((p) => p.unitName).sort()).toEqual(["d2", "web"])
      yield* web.send(JSON.stringify({ ty: "i", tg: "d2", mt: 5 }))
      expect((yield* web.nextJson()).ms.s).toBe("ERR:target-not-found")
      yield* web.send(JSON.stringify({ ty: "i", tg: "d3", mt: 6 }))
      expect((yield* drones[2]!.nextJson()).sd).toBe("web")
      yield* betaWeb.send(JSON.stringify({ ty: "i", tg: "d2", mt: 8 }))
      expect((yield* betaD2.nextJson()).mt).toBe(8)
    }).pipe(Effect.provide(TestServices))
  )
})
