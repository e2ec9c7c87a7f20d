import { describe, expect } from "bun:test"
import { Effect, Logger, LogLevel, TestContext } from "effect"
import fc from "fast-check"
import { it } from "../support/effect.ts"
import {
  addressOf,
  advanceUntil,
  clientPems,
  connectClient,
  MeshTestLayer,
  meshUp,
  portOf,
  type RunningServer,
  startServer,
  type TestClient
} from "./support.ts"

/**
 * server0 sorts first, so server1's frames reach it on server0's outbound link, where most are
 * handled on the spot (onMessageNow) and the rest by the link's fiber. A burst mixing frames handled
 * at once (public and private chats) with ones that wait on async work (a client_update's key import,
 * then a public chat from the client it lists) must reach server0's client in the order sent, once each.
 */
type Step = { readonly kind: "public" | "private" | "join"; readonly text: string }

const stepArb = fc.constantFrom<Step["kind"]>("public", "private", "join")

/** A round trip on `c`'s socket: server1 has handled everything `c` sent before (echoes are skipped). */
const settled = (c: TestClient) =>
  Effect.gen(function* () {
    yield* c.send(c.client.clientListRequest())
    while ((yield* c.next).kind !== "client_list") {}
  })

const runBurst = (kinds: ReadonlyArray<Step["kind"]>) =>
  Effect.gen(function* () {
    const servers: Array<RunningServer> = [yield* startServer(0, 2), yield* startServer(1, 2)]
    yield* advanceUntil(meshUp(servers), "both links up")
    const alice = yield* connectClient(portOf(0), clientPems[0]!)
    const bob = yield* connectClient(portOf(1), clientPems[1]!)
    yield* alice.clientList
    yield* bob.clientList
    const joiners = clientPems.slice(2)
    const steps: Array<Step> = kinds.map((kind, i) => ({ kind, text: `${kind} ${i}` }))
    const expected: Array<string> = []
    for (const step of steps) {
      if (step.kind === "join") {
        const pem = joiners.shift()
        if (!pem) continue
        // Hello and first public chat back to back: the update and the chat leave server1 together.
        const joiner: TestClient = yield* connectClient(portOf(1), pem)
        yield* joiner.send(joiner.client.publicChat(step.text))
        yield* settled(joiner)
      } else {
        yield* bob.send(
          step.kind === "public"
            ? bob.client.publicChat(step.text)
            : bob.client.chat([{ pem: alice.client.publicPem, server: addressOf(0) }], step.text)
        )
        // Fixes server1's order across client sockets (no time passes).
        yield* settled(bob)
      }
      expected.push(step.text)
    }
    const atAlice: Array<string> = []
    while (atAlice.length < expected.length) {
      const got = yield* alice.next
      if (got.kind === "public_chat" || got.kind === "chat") atAlice.push(got.message)
    }
    expect(atAlice).toEqual(expected)
    yield* alice.expectNothingElse
    for (const s of servers) yield* s.stop
  }).pipe(Effect.provide(MeshTestLayer))

describe("Neighbourhood link frames (in memory)", () => {
  it.effect("a burst mixing on-the-spot and async frames arrives in order, once each", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 12 }), (kinds) =>
          Effect.runPromise(
            runBurst(kinds).pipe(
              Effect.scoped,
              Effect.provide(TestContext.TestContext),
              Logger.withMinimumLogLevel(LogLevel.None)
            )
          )
        ),
        { numRuns: 6 }
      )
    )
  )
})
