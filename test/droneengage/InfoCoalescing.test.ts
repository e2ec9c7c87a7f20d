import { describe, expect } from "bun:test"
import { Effect, Either, Option, Queue, TestClock } from "effect"
import { makeAuthLink } from "../../src/droneengage/AuthLink.ts"
import type { UnitMember, UnitRoomsService } from "../../src/droneengage/UnitRooms.ts"
import { makeLoginKeys } from "../../src/droneengage/LoginKeys.ts"
import { accept, Transport } from "../../layers/Transport/Transport.ts"
import { decodeRelayToAuth, type InfoData, LoginRequestData } from "../../src/droneengage/S2S.ts"
import { defaultSocketLimits } from "../../src/shared/SocketLimits.ts"
import { it } from "../support/effect.ts"
import { TestServices } from "./harness.ts"

const member = (i: number): UnitMember => ({
  accountId: `acc-${i % 3}`,
  group: "1",
  unitName: `unit-${i}`,
  actorType: i % 2 === 0 ? "d" : "g",
  permission: 0,
  requestId: `r${i}`
})

/** Rooms reduced to what the link reads: a unit list and its change signal. */
const fakeRooms = Effect.gen(function* () {
  const listeners = new Set<() => void>()
  const seated = new Map<string, UnitMember>()
  let signals = 0
  const rooms: Pick<UnitRoomsService, "snapshot" | "onChange"> = {
    snapshot: Effect.sync(() => {
      const accountDetails: Record<string, Array<{ unitName: string; actorType: "g" | "d" }>> = {}
      for (const m of seated.values())
        (accountDetails[m.accountId] ??= []).push({ unitName: m.unitName, actorType: m.actorType })
      return { accounts: Object.keys(accountDetails), accountDetails }
    }),
    onChange: (changed) =>
      Effect.acquireRelease(
        Effect.sync(() => void listeners.add(changed)),
        () => Effect.sync(() => void listeners.delete(changed))
      )
  }
  const signal = () => {
    signals++
    for (const changed of listeners) changed()
  }
  const join = (m: UnitMember) => Effect.sync(() => (seated.set(m.unitName, m), signal()))
  const leave = (m: UnitMember) => Effect.sync(() => (seated.delete(m.unitName), signal()))
  return { rooms, join, leave, signals: () => signals }
})

/** A stand-in authenticator on port 0: accepts the relay at once and queues every INFO it sends. */
const fakeAuthenticator = Effect.gen(function* () {
  const infos = yield* Queue.unbounded<InfoData>()
  const server = yield* (yield* Transport).serve({
    name: "fake-authenticator",
    port: 0,
    hostname: "127.0.0.1",
    limits: defaultSocketLimits,
    websocket: {
      upgrade: () => Effect.succeed(accept(null)),
      open: (connection) =>
        Effect.sync(() => {
          connection.send(JSON.stringify({ s2s_auth: "ok" }))
          return {
            onMessage: (message) => {
              const frame = decodeRelayToAuth(String(message))
              if (Either.isRight(frame) && "c" in frame.right && frame.right.c === "a")
                Queue.unsafeOffer(infos, frame.right.d)
            }
          }
        })
    }
  })
  return { server, infos }
})

/** A relay's link to the fake authenticator, INFO every 250 ms at most. */
const linkRelay = (port: number, serverId: string, rooms: Pick<UnitRoomsService, "snapshot" | "onChange">) =>
  Effect.gen(function* () {
    yield* makeAuthLink({
      url: `ws://memory:${port}`,
      serverId,
      version: "test",
      prove: Option.none(),
      publicHost: "127.0.0.1",
      publicPort: Effect.succeed(9966),
      redialMax: "2 seconds",
      infoInterval: "250 millis",
      keys: yield* makeLoginKeys(LoginRequestData, { kind: "test/login-key", ttl: "10 seconds" }),
      rooms
    })
  })

const unitCount = (info: InfoData) => Object.values(info.accountDetails).reduce((sum, units) => sum + units.length, 0)

describe("DroneEngage INFO coalescing (TestClock)", () => {
  it.effect(
    "the first change goes out at once; a burst becomes one INFO with its final state; the last state is always sent",
    () =>
      Effect.gen(function* () {
        const { server, infos } = yield* fakeAuthenticator
        const { rooms, join, leave } = yield* fakeRooms
        yield* linkRelay(server.port, "relay-c", rooms)
        expect(unitCount(yield* Queue.take(infos))).toBe(0) // on acceptance
        yield* TestClock.adjust("250 millis") // a quiet spell
        yield* join(member(0))
        expect(unitCount(yield* Queue.take(infos))).toBe(1) // prompt: no clock movement needed
        // A burst of 500 joins and 100 leaves while the link waits out its interval.
        for (let i = 1; i <= 500; i++) yield* join(member(i))
        for (let i = 1; i <= 100; i++) yield* leave(member(i))
        yield* TestClock.adjust("250 millis")
        // The very next INFO is the burst's final state: no INFO per change came before it.
        const burst = yield* Queue.take(infos)
        expect(unitCount(burst)).toBe(401)
        expect(burst.accountDetails["acc-1"]!.some((u) => u.unitName === "unit-1")).toBe(false)
        expect(burst.accountDetails["acc-2"]!.some((u) => u.unitName === "unit-500")).toBe(true)
        expect([...burst.accounts].sort()).toEqual(["acc-0", "acc-1", "acc-2"])
        // A change right after an INFO waits for the interval, then goes out with the latest state.
        yield* leave(member(0))
        yield* leave(member(500))
        expect(yield* Queue.size(infos)).toBe(0)
        yield* TestClock.adjust("250 millis")
        expect(unitCount(yield* Queue.take(infos))).toBe(399)
      }).pipe(Effect.provide(TestServices))
  )
})

describe("DroneEngage INFO: a burst costs one INFO computation (TestClock)", () => {
  it.effect("joins and leaves only raise a flag: one snapshot per burst, with the burst's final state", () =>
    Effect.gen(function* () {
      const { server, infos } = yield* fakeAuthenticator
      const { rooms, join, leave, signals } = yield* fakeRooms
      let snapshots = 0
      const counted = {
        ...rooms,
        snapshot: Effect.zipRight(
          Effect.sync(() => snapshots++),
          rooms.snapshot
        )
      }
      yield* linkRelay(server.port, "relay-f", counted)
      yield* Queue.take(infos) // on acceptance
      expect(snapshots).toBe(1)
      yield* TestClock.adjust("250 millis")
      // A burst that ends where it began (join then leave of the same units) still sends the final state once.
      for (let i = 0; i < 50; i++) yield* join(member(i))
      for (let i = 0; i < 50; i++) yield* leave(member(i))
      yield* join(member(7))
      expect(signals()).toBe(101)
      expect(unitCount(yield* Queue.take(infos))).toBe(1)
      yield* TestClock.adjust("250 millis")
      yield* TestClock.adjust("250 millis")
      // The first change woke the INFO fiber and it read the state at once; the rest of the burst, one more.
      expect(snapshots).toBeLessThanOrEqual(3)
      expect(yield* Queue.size(infos)).toBeLessThanOrEqual(1)
      const all = [...(yield* Queue.takeAll(infos))]
      if (all.length > 0) expect(unitCount(all[0]!)).toBe(1)
    }).pipe(Effect.provide(TestServices))
  )
})

describe("INFO decoding on the authenticator", () => {
  const frame = (accountDetails: unknown, accounts: unknown = ["a"]) =>
    JSON.stringify({
      c: "a",
      d: { isOnline: true, version: "x", serverId: "r", public_host: "h", serverPort: 1, accounts, accountDetails }
    })

  it.effect("accepts the original's shape and refuses malformed unit lists", () =>
    Effect.sync(() => {
      expect(Either.isRight(decodeRelayToAuth(frame({ a: [{ unitName: "u", actorType: "d" }], b: [] })))).toBe(true)
      expect(Either.isLeft(decodeRelayToAuth(frame({ a: [{ unitName: "u", actorType: "x" }] })))).toBe(true)
      expect(Either.isLeft(decodeRelayToAuth(frame({ a: [{ unitName: 7, actorType: "d" }] })))).toBe(true)
      expect(Either.isLeft(decodeRelayToAuth(frame({ a: [null] })))).toBe(true)
      expect(Either.isLeft(decodeRelayToAuth(frame({ a: {} })))).toBe(true)
      expect(Either.isLeft(decodeRelayToAuth(frame([])))).toBe(true)
      expect(Either.isLeft(decodeRelayToAuth(frame({}, ["a", 1])))).toBe(true)
    })
  )
})
