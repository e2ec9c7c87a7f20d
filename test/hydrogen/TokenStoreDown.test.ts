import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { MemoryStreamStore } from "../../layers/Storage/MemoryStreamStore.ts"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { it } from "../support/effect.ts"
import { switchableTokens } from "../support/switchableTokens.ts"
import { command, connectHydrogen, ok, readerKey, startTestHydrogen } from "./support.ts"

describe("Hydrogen with its token store down (a failing Tokens double)", () => {
  it.effect("a resume is answered storage_unavailable; a new connection closes 1013; both work once it is back", () =>
    Effect.gen(function* () {
      const tokens = yield* switchableTokens
      const hydrogen = yield* startTestHydrogen({}, MemoryStreamStore, {}, tokens.layer)
      const client = yield* connectHydrogen(hydrogen, readerKey)
      const { session } = yield* ok(client, "subscriptions", "subscribe", { channel: "jobs" })
      const other = yield* connectHydrogen(hydrogen, readerKey)
      yield* ok(other, "system", "whoami")

      yield* tokens.setDown(true)
      expect(yield* command(other, "system", "resume", { session })).toMatchObject({
        response: { error: { category: "application", code: "storage_unavailable" } }
      })
      // A connection opened now gets no session id: it is closed for the client to come back later.
      const refused = yield* connectHydrogen(hydrogen, readerKey)
      expect(yield* refused.closed).toEqual({ code: CloseCodes.tryAgainLater, reason: "session store unavailable" })
      // The connection that had its session goes on.
      expect((yield* ok(client, "system", "whoami")).name).toBe("reader")

      yield* tokens.setDown(false)
      const back = yield* connectHydrogen(hydrogen, readerKey)
      expect((yield* ok(back, "system", "whoami")).name).toBe("reader")
    })
  )
})
