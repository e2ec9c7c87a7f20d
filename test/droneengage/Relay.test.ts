import { describe, expect } from "bun:test"
import { Duration, Effect, Queue, Schema, TestClock } from "effect"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { defaultTasksConfig, defaultUdpProxyConfig } from "../../src/droneengage/Config.ts"
import { encodeBinaryFrame, Envelope } from "../../src/droneengage/Wire.ts"
import { defaultSocketLimits } from "../../src/shared/SocketLimits.ts"
import { it } from "../support/effect.ts"
import {
  connect,
  connectQuery,
  connectUnit,
  expectNothing,
  login,
  pingPong,
  seedAccounts,
  startStack,
  TestServices,
  upgradeAttempt
} from "./harness.ts"

/** The envelope as the relay's full path decodes it (key order included). */
const decodeEnvelope = (text: string) => Schema.decodeUnknownSync(Envelope)(JSON.parse(text))

describe("DroneEngage relay: system messages and bad input", () => {
  it.effect("9005 ping answers OK:pong, 9006 leaves the group with OK:dell", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const gcs = yield* connectUnit(stack, "alpha", "g", "web")
      const drone = yield* connectUnit(stack, "alpha", "d", "drone")
      yield* gcs.send(JSON.stringify({ ty: "s", mt: 9005, ms: { t: 1 } }))
      expect(yield* gcs.nextJson()).toEqual({ ty: "s", mt: 9005, ms: { t: 1, s: "OK:pong" }, sd: "web", p: 0xffffffff })
      yield* drone.send(JSON.stringify({ ty: "s", mt: 9006 }))
      expect((yield* drone.nextJson()).ms).toEqual({ s: "OK:dell" })
      // Out of the group: it neither receives nor sends, and is told so.
      yield* gcs.send(JSON.stringify({ ty: "g", mt: 1 }))
      yield* expectNothing(drone)
      yield* drone.send(JSON.stringify({ ty: "g", mt: 2 }))
      expect((yield* drone.nextJson()).ms.s).toBe("ERR:not-in-group")
      yield* expectNothing(gcs)
      const presence = yield* stack.relay.rooms.presence({ accountId: "1", group: "1" })
      expect(presence.map((p) => p.unitName)).toEqual(["web"])
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("with tasks and the UDP proxy turned off, they and unknown system messages get error replies", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const off = {
        udpProxy: { ...defaultUdpProxyConfig, enabled: false },
        tasks: { ...defaultTasksConfig, enabled: false }
      }
      const stack = yield* startStack({ relay: off })
      const gcs = yield* connectUnit(stack, "alpha", "g", "web")
      const drone = yield* connectUnit(stack, "alpha", "d", "drone")
      for (const mt of [9001, 9002, 9003, 9004]) {
        yield* gcs.send(JSON.stringify({ ty: "s", mt, ms: {} }))
        expect((yield* gcs.nextJson()).ms).toEqual({
          s: "ERR:tasks-unavailable",
          em: "this relay does not store tasks",
          mt
        })
      }
      yield* gcs.send(JSON.stringify({ ty: "s", mt: 9008, ms: { en: true } }))
      expect((yield* gcs.nextJson()).ms.s).toBe("ERR:agents-only")
      yield* drone.send(JSON.stringify({ ty: "s", mt: 9008, ms: { en: true } }))
      expect((yield* drone.nextJson()).ms.s).toBe("ERR:udp-proxy-unavailable")
      yield* drone.send(JSON.stringify({ ty: "s", mt: 4242 }))
      expect((yield* drone.nextJson()).ms.s).toBe("ERR:unknown-system-message")
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("malformed frames get an error reply and the connection keeps working", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const gcs = yield* connectUnit(stack, "alpha", "g", "web")
      const other = yield* connectUnit(stack, "alpha", "g", "web2")
      const bad = [
        "not json",
        "[]",
        "null",
        '{"ty":"x","mt":1}',
        '{"ty":"g"}',
        JSON.stringify({ message: "Data from client", timestamp: 1 })
      ]
      for (const frame of bad) {
        yield* gcs.send(frame)
        const reply = yield* gcs.nextJson()
        expect(reply.mt).toBe(9100)
        expect(reply.ms.s).toBe("ERR:malformed")
      }
      yield* gcs.send(new Uint8Array([0xff, 0xfe, 0x00, 0x01]))
      expect((yield* gcs.nextJson()).ms.s).toBe("ERR:malformed")
      yield* expectNothing(other)
      yield* gcs.send(JSON.stringify({ ty: "s", mt: 9005, ms: {} }))
      expect((yield* gcs.nextJson()).ms.s).toBe("OK:pong")
    }).pipe(Effect.provide(TestServices))
  )
})

describe("DroneEngage relay: stamping", () => {
  it.effect("messages in printed form (fast path) and in any other form are stamped alike, text and binary", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const gcs = yield* connectUnit(stack, "alpha", "g", "web")
      const drone = yield* connectUnit(stack, "alpha", "d", "drone")
      const stampedText = (text: string) => JSON.stringify({ ...JSON.parse(text), sd: "web", p: 0xffffffff })
      const texts = [
        '{"ty":"g","sd":"forged","mt":1,"ms":{"a":[1,2.5,"x"]},"p":7}',
        '{"mt":2,"x":true,"ty":"i","tg":"drone"}',
        '{ "ty": "g", "mt": 3.0, "ms": {"b": "\\u0041"} }',
        '{"ty":"g","mt":4,"ms":{"a":1,"a":2}}'
      ]
      for (const text of texts) {
        yield* gcs.send(text)
        expect(yield* drone.next()).toBe(JSON.stringify({ ...decodeEnvelope(text), sd: "web", p: 0xffffffff }))
      }
      expect(stampedText(texts[0]!)).toBe('{"ty":"g","sd":"web","mt":1,"ms":{"a":[1,2.5,"x"]},"p":4294967295}')
      const body = Uint8Array.of(0, 1, 2, 255)
      for (const header of ['{"ty":"g","mt":5,"ms":{"n":1}}', '{"mt":6, "ty":"g"}']) {
        const frame = new Uint8Array([...new TextEncoder().encode(header), 0, ...body])
        yield* gcs.send(frame)
        const received = yield* drone.next()
        expect([...(received as Uint8Array)]).toEqual([
          ...encodeBinaryFrame({ ...decodeEnvelope(header), sd: "web", p: 0xffffffff }, body)
        ])
      }
    }).pipe(Effect.provide(TestServices))
  )
})

describe("DroneEngage relay: keys, unit names and limits", () => {
  it.effect("a key works once; a second connect with it is refused", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const { body } = yield* login(stack, "alpha", "g")
      const port = stack.relay.server.port
      yield* connect(port, `/?${connectQuery(body, "web")}`)
      expect(yield* upgradeAttempt(port, connectQuery(body, "web-again"))).toEqual({
        status: 401,
        body: { error: "login key is unknown, already used or expired" }
      })
      expect((yield* upgradeAttempt(port, "f=0123456789abcdef0123456789abcdef&s=x")).status).toBe(401)
      expect((yield* upgradeAttempt(port, "s=x")).status).toBe(401)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("a key expires after 10 s (TestClock)", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const port = stack.relay.server.port
      const late = (yield* login(stack, "alpha", "g")).body
      const inTime = (yield* login(stack, "alpha", "d")).body
      yield* TestClock.adjust("9 seconds")
      yield* connect(port, `/?${connectQuery(inTime, "drone")}`)
      yield* TestClock.adjust("1 second")
      expect((yield* upgradeAttempt(port, connectQuery(late, "web"))).status).toBe(401)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("reserved or missing unit names are refused without using up the key", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const port = stack.relay.server.port
      const { body } = yield* login(stack, "alpha", "g")
      for (const name of ["_GCS_", "_GD_", "_AGN_", "_SYS_", ""]) {
        expect(yield* upgradeAttempt(port, connectQuery(body, name))).toEqual({
          status: 400,
          body: { error: "unit name s is missing, reserved or invalid" }
        })
      }
      yield* connect(port, `/?${connectQuery(body, "web")}`)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("a second connection with the same unit name in the same account replaces the first with 4004", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const first = yield* connectUnit(stack, "alpha", "d", "drone")
      const gcs = yield* connectUnit(stack, "alpha", "g", "web")
      const second = yield* connectUnit(stack, "alpha", "d", "drone")
      expect((yield* first.closed).code).toBe(CloseCodes.replaced)
      yield* gcs.send(JSON.stringify({ ty: "i", tg: "drone", mt: 5 }))
      expect((yield* second.nextJson()).mt).toBe(5)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("the same unit name in another account neither collides nor impersonates", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const real = yield* connectUnit(stack, "alpha", "d", "drone")
      const gcs = yield* connectUnit(stack, "alpha", "g", "web")
      const impostor = yield* connectUnit(stack, "beta", "d", "drone")
      yield* real.send(JSON.stringify({ ty: "g", mt: 1 }))
      expect((yield* gcs.nextJson()).sd).toBe("drone")
      yield* impostor.send(JSON.stringify({ ty: "g", mt: 2, sd: "drone" }))
      yield* expectNothing(gcs)
      yield* gcs.send(JSON.stringify({ ty: "i", tg: "drone", mt: 3 }))
      expect((yield* real.nextJson()).mt).toBe(3)
      yield* expectNothing(impostor)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("the account's instance limit is enforced; replacing a unit does not count", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      yield* connectUnit(stack, "limited", "g", "a")
      yield* connectUnit(stack, "limited", "d", "b")
      const { body } = yield* login(stack, "limited", "d")
      expect(yield* upgradeAttempt(stack.relay.server.port, connectQuery(body, "c"))).toEqual({
        status: 403,
        body: { error: "the account's instance limit is reached" }
      })
      yield* connectUnit(stack, "limited", "d", "b")
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("the transport heartbeat drops a client that never answers pings (4000)", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const limits = { ...defaultSocketLimits, pingInterval: Duration.seconds(25), pongTimeout: Duration.seconds(10) }
      const stack = yield* startStack({ relay: { limits } })
      const { body } = yield* login(stack, "alpha", "d")
      const changes = yield* stack.relay.rooms.changes
      const frozen = yield* connect(stack.relay.server.port, `/?${connectQuery(body, "frozen")}`)
      yield* frozen.next() // the welcome
      yield* pingPong(frozen) // seated
      frozen.answerPings = false
      const alive = yield* connectUnit(stack, "alpha", "g", "web")
      yield* TestClock.adjust("25 seconds")
      // The alive unit's pong to the heartbeat went out before this round trip's answer.
      yield* pingPong(alive)
      yield* TestClock.adjust("10 seconds")
      expect((yield* frozen.closed).code).toBe(CloseCodes.heartbeatTimeout)
      // The event that proves the relay let the unit go.
      while (true) {
        const change = yield* Queue.take(changes)
        if (change._tag === "Left" && change.member.unitName === "frozen") break
      }
      const presence = yield* stack.relay.rooms.presence({ accountId: "1", group: "1" })
      expect(presence.map((p) => p.unitName)).toEqual(["web"])
      yield* alive.send(JSON.stringify({ ty: "s", mt: 9005, ms: {} }))
      expect((yield* alive.nextJson()).ms.s).toBe("OK:pong")
    }).pipe(Effect.provide(TestServices))
  )
})
