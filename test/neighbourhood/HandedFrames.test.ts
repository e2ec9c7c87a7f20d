import { describe, expect } from "bun:test"
import { Effect, TestClock } from "effect"
import { Federation } from "../../layers/Federation/Federation.ts"
import type { Connection } from "../../layers/Transport/Transport.ts"
import type { PublicKeyInfo } from "../../src/neighbourhood/Crypto.ts"
import { handedFrames } from "../../src/neighbourhood/HandedFrames.ts"
import { type Channel, Mesh } from "../../src/neighbourhood/Mesh.ts"
import type { NeighbourhoodContext } from "../../src/neighbourhood/NeighbourFrames.ts"
import { OrderedWork } from "../../src/neighbourhood/Ordered.ts"
import { it } from "../support/effect.ts"
import { MeshTestLayer } from "./support.ts"

/** One node of server0 as HandedFrames sees it: its mesh (neighbour server1), alice's frames, its refusals. */
const node = (origin: string) =>
  Effect.gen(function* () {
    const mesh = new Mesh("server0", [], [{ address: "server1", url: "ws://x/", key: {} as PublicKeyInfo }], 10)
    const toAlice: Array<string> = []
    const connection = { send: (frame: string) => void toAlice.push(frame) } as unknown as Connection<unknown>
    mesh.addLocal({ key: { fingerprint: "alice" } as PublicKeyInfo, variants: ["alice"], connection })
    const refused: Array<string> = []
    const ctx = {
      mesh,
      refused: (reason: string) => void refused.push(reason),
      warn: () => {},
      flushClientUpdate: () => {}
    } as unknown as NeighbourhoodContext
    const federation = yield* Federation
    const handed = yield* handedFrames({ ctx, federation, origin, refreshMembers: Effect.void })
    const neighbour = mesh.neighbours.get("server1")!
    /** Holds the link here: other nodes' frames for server1 go out on `channel` when there is one. */
    const hold = (channel: Channel | undefined) =>
      Effect.gen(function* () {
        if (channel) mesh.channelUp(neighbour, channel)
        const frames = yield* federation.subscribe(handed.framesSubject(neighbour))
        yield* Effect.forkScoped(handed.forward(neighbour, frames))
      })
    return { handed, neighbour, toAlice, refused, hold }
  })

/** Our outbound link to server1, recording what goes out on it. */
const recordingLink = (sent: Array<string>): Channel => ({
  send: (frame) => void sent.push(frame),
  close: () => {},
  direction: "outbound",
  work: new OrderedWork(() => {})
})

/** Lets the fibers of the bus run until `done` holds (no time passes). */
const yieldUntil = (done: () => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 100 && !done(); i++) yield* Effect.yieldNow()
    expect(done()).toBe(true)
  })

describe("Frames handed to the node holding a neighbour's link", () => {
  it.effect("sent on the holder's link: no report to the sender, then or later", () =>
    Effect.gen(function* () {
      const [holder, sender] = [yield* node("n1"), yield* node("n2")]
      const sent: Array<string> = []
      yield* holder.hold(recordingLink(sent))
      sender.handed.hand(sender.neighbour, "frame one", "alice")
      yield* yieldUntil(() => sent.length === 1)
      expect(sent).toEqual(["frame one"])
      yield* TestClock.adjust("10 seconds")
      expect(sender.toAlice).toEqual([])
      expect(sender.refused).toEqual([])
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("the holder's link is down: the sender hears at once that it was not delivered", () =>
    Effect.gen(function* () {
      const [holder, sender] = [yield* node("n1"), yield* node("n2")]
      yield* holder.hold(undefined)
      sender.handed.hand(sender.neighbour, "frame one", "alice")
      yield* yieldUntil(() => sender.toAlice.length === 1)
      expect(JSON.parse(sender.toAlice[0]!)).toMatchObject({ type: "error" })
      expect(sender.toAlice[0]).toContain("not delivered to server1")
      expect(sender.refused).toEqual(["link_moved"])
    }).pipe(Effect.provide(MeshTestLayer))
  )

  it.effect("no holder answers: after five sweeps the sender hears it may not have arrived", () =>
    Effect.gen(function* () {
      const sender = yield* node("n2")
      sender.handed.hand(sender.neighbour, "frame one", "alice")
      yield* TestClock.adjust("4 seconds")
      expect(sender.toAlice).toEqual([])
      yield* TestClock.adjust("2 seconds")
      expect(sender.toAlice).toHaveLength(1)
      expect(sender.toAlice[0]).toContain("unconfirmed")
      expect(sender.refused).toEqual(["link_unconfirmed"])
    }).pipe(Effect.provide(MeshTestLayer))
  )
})
