import { describe, expect } from "bun:test"
import { ConfigProvider, Duration, Effect, TestClock } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { BunUdpLive } from "../../layers/Udp/BunUdp.ts"
import { MemoryUdp } from "../../layers/Udp/MemoryUdp.ts"
import { bindInbox } from "../../layers/Udp/Udp.ts"
import { defaultTasksConfig, defaultUdpProxyConfig, RelayConfig } from "../../src/droneengage/Config.ts"
import { eventually, it } from "../support/effect.ts"
import { connectUnit, datagrams, type Stack, seedAccounts, startStack, TestServices, type Unit } from "./harness.ts"
import * as Real from "./realSockets.ts"

/**
 * System messages 9001-9004 (stored tasks) and 9008 (UDP proxy) end to end on the in-memory
 * harness: authenticator and relay linked over MemoryFederation, units logged in over HTTP,
 * UDP on the memory datagram network, TestClock. One smoke test crosses real sockets.
 */

const udpPeer = (address: string) => bindInbox(address).pipe(Effect.provide(MemoryUdp(datagrams)))
const proxy = (overrides: Partial<RelayConfig["udpProxy"]>) => ({
  udpProxy: { ...defaultUdpProxyConfig, ...overrides }
})

/** Sends a system message and reads the next frame. */
const ask = (unit: Unit, message: object) => Effect.zipRight(unit.send(JSON.stringify(message)), unit.nextJson())

const started = (relay: Partial<RelayConfig> = {}) =>
  Effect.gen(function* () {
    yield* seedAccounts
    return yield* startStack({ relay: { publicHost: "relay.example", ...relay } })
  })

const pairs = (stack: Stack) => stack.relay.features.udpProxy?.pairCount()

describe("relay: UDP proxy (9008)", () => {
  it.effect("an agent opens a pair, gets the original's reply, datagrams flow both ways, en false closes it", () =>
    Effect.gen(function* () {
      const stack = yield* started()
      const drone = yield* connectUnit(stack, "alpha", "d", "drone-1")
      const reply = yield* ask(drone, {
        ty: "s",
        mt: 9008,
        ms: { en: true, socket1: { address: "", port: 14550 }, socket2: { address: "", port: 14551 } }
      })
      expect(reply).toMatchObject({ ty: "i", tg: "drone-1", sd: "_SYS_", mt: 9008 })
      expect(reply.p).toBeUndefined()
      const { socket1, socket2, en } = reply.ms
      expect(en).toBe(true)
      expect([socket1.address, socket2.address]).toEqual(["relay.example", "relay.example"])
      // Fixed ports are not allowed by default: the relay chose others.
      expect([socket1.port, socket2.port]).not.toEqual([14550, 14551])

      const uav = yield* udpPeer("10.0.0.1")
      const tool = yield* udpPeer("10.0.0.2")
      tool.socket.send(new Uint8Array([0xfd]), socket2.port, "relay.example")
      uav.socket.send(new Uint8Array([0xfe, 1, 2]), socket1.port, "relay.example")
      expect([...(yield* tool.next).data]).toEqual([0xfe, 1, 2])
      tool.socket.send(new Uint8Array([3]), socket2.port, "relay.example")
      expect([...(yield* uav.next).data]).toEqual([3])

      const again = yield* ask(drone, {
        ty: "s",
        mt: 9008,
        ms: { en: true, socket1: { address: "", port: 0 }, socket2: { address: "", port: 0 } }
      })
      expect(again.ms).toEqual(reply.ms)
      const closed = yield* ask(drone, { ty: "s", mt: 9008, ms: { en: false } })
      expect(closed.ms).toEqual({ socket1, socket2, en: false })
      expect(datagrams.isBound(socket1.port)).toBe(false)
      const none = yield* ask(drone, { ty: "s", mt: 9008, ms: { en: false } })
      expect(none.ms).toEqual({
        socket1: { address: "0.0.0.0", port: 0 },
        socket2: { address: "0.0.0.0", port: 0 },
        en: false
      })
    }).pipe(Effect.provide(TestServices))
  )

  it.effect(
    "a GCS gets agents-only; a malformed body gets udp-proxy-invalid; fixed ports are honoured when allowed",
    () =>
      Effect.gen(function* () {
        const stack = yield* started(proxy({ allowFixedPorts: true }))
        const gcs = yield* connectUnit(stack, "alpha", "g", "web")
        const refused = yield* ask(gcs, { ty: "s", mt: 9008, ms: { en: true } })
        expect(refused).toEqual({
          ty: "s",
          sd: "_SYS_",
          mt: 9100,
          ms: { s: "ERR:agents-only", em: "only agents may request a UDP proxy", mt: 9008 }
        })
        const drone = yield* connectUnit(stack, "alpha", "d", "drone-1")
        for (const ms of [undefined, {}, { en: "yes" }, { en: true, socket1: { port: 70000 } }, "en"]) {
          expect((yield* ask(drone, { ty: "s", mt: 9008, ms })).ms.s).toBe("ERR:udp-proxy-invalid")
        }
        const fixed = yield* ask(drone, {
          ty: "s",
          mt: 9008,
          ms: { en: true, socket1: { address: "", port: 24550 }, socket2: { address: "", port: 24551 } }
        })
        expect([fixed.ms.socket1.port, fixed.ms.socket2.port]).toEqual([24550, 24551])
      }).pipe(Effect.provide(TestServices))
  )

  it.effect("a refused open answers en false with the reason (per-account limit); other accounts are unaffected", () =>
    Effect.gen(function* () {
      const stack = yield* started(proxy({ maxPairsPerAccount: 1 }))
      const first = yield* connectUnit(stack, "alpha", "d", "drone-1")
      const second = yield* connectUnit(stack, "alpha", "d", "drone-2")
      const other = yield* connectUnit(stack, "beta", "d", "drone-2")
      expect((yield* ask(first, { ty: "s", mt: 9008, ms: { en: true } })).ms.en).toBe(true)
      const refused = yield* ask(second, { ty: "s", mt: 9008, ms: { en: true } })
      expect(refused.ms).toEqual({
        socket1: { address: "0.0.0.0", port: 0 },
        socket2: { address: "0.0.0.0", port: 0 },
        en: false,
        em: "the account has its 1 UDP proxy pairs open"
      })
      expect((yield* ask(other, { ty: "s", mt: 9008, ms: { en: true } })).ms.en).toBe(true)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect(
    "a disconnected agent keeps its ports for the grace period; the reaper closes them after it (TestClock)",
    () =>
      Effect.gen(function* () {
        const stack = yield* started(proxy({ stickyGrace: Duration.seconds(30), reapInterval: Duration.seconds(5) }))
        const drone = yield* connectUnit(stack, "alpha", "d", "drone-1")
        const opened = (yield* ask(drone, { ty: "s", mt: 9008, ms: { en: true } })).ms
        yield* drone.close()
        yield* TestClock.adjust(Duration.seconds(20))
        const back = yield* connectUnit(stack, "alpha", "d", "drone-1")
        expect((yield* ask(back, { ty: "s", mt: 9008, ms: { en: true } })).ms).toEqual(opened)
        yield* TestClock.adjust(Duration.seconds(60))
        expect(pairs(stack)).toBe(1)
        yield* back.close()
        yield* TestClock.adjust(Duration.seconds(25))
        expect(pairs(stack)).toBe(1)
        yield* TestClock.adjust(Duration.seconds(10))
        expect(pairs(stack)).toBe(0)
        expect(datagrams.isBound(opened.socket1.port)).toBe(false)
      }).pipe(Effect.provide(TestServices))
  )
})

describe("relay: stored tasks (9001-9004)", () => {
  const fence = {
    ai: "alpha",
    ps: "_any_",
    gn: "1",
    s: "web",
    r: "_drone_",
    mt: 1027,
    ip: true,
    t: { fn: "home", pts: [[30.1, 31.2]] }
  }

  it.effect("save, load, disable and delete with the original's replies; another account sees none of it", () =>
    Effect.gen(function* () {
      const stack = yield* started()
      const gcs = yield* connectUnit(stack, "alpha", "g", "web")
      const drone = yield* connectUnit(stack, "alpha", "d", "drone-1")
      expect(yield* ask(gcs, { ty: "s", mt: 9002, ms: fence })).toEqual({
        ty: "i",
        tg: "web",
        sd: "_SYS_",
        mt: 9002,
        ms: "Done"
      })
      expect((yield* ask(gcs, { ty: "s", mt: 9002, ms: { ...fence, mt: 1031, t: { a: [1] } } })).ms).toBe("Done")
      yield* drone.send(
        JSON.stringify({ ty: "s", mt: 9001, ms: { ai: "alpha", ps: "_any_", gn: "1", r: "_drone_", ip: 1 } })
      )
      const first = yield* drone.nextJson()
      const second = yield* drone.nextJson()
      expect(first).toMatchObject({ ty: "i", tg: "drone-1", sd: "_SYS_", mt: 1027, ms: fence.t })
      expect(second).toMatchObject({ mt: 1031, ms: { a: [1] } })
      expect(second.sid).toBeGreaterThan(first.sid)
      expect(yield* ask(gcs, { ty: "s", mt: 9004, ms: { ai: "alpha", mt: 1031 } })).toMatchObject({
        mt: 9004,
        ms: "Done",
        tg: "web"
      })
      expect(yield* ask(gcs, { ty: "s", mt: 9003, ms: { ai: "alpha", mt: 1027 } })).toMatchObject({
        mt: 9003,
        ms: "Done"
      })
      // Nothing enabled is left: the load replays nothing, and the pong of a later ping is the next frame.
      yield* drone.send(JSON.stringify({ ty: "s", mt: 9001, ms: { ai: "alpha" } }))
      expect((yield* ask(drone, { ty: "s", mt: 9005, ms: {} })).ms.s).toBe("OK:pong")

      yield* ask(gcs, { ty: "s", mt: 9002, ms: fence })
      const stranger = yield* connectUnit(stack, "beta", "g", "web")
      yield* stranger.send(JSON.stringify({ ty: "s", mt: 9001, ms: { ai: "beta" } }))
      expect((yield* ask(stranger, { ty: "s", mt: 9005, ms: {} })).ms.s).toBe("OK:pong")
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("a foreign ai is refused with foreign-account for every task message; bad bodies get clear errors", () =>
    Effect.gen(function* () {
      const stack = yield* started({ tasks: { ...defaultTasksConfig, maxBodyBytes: 64 } })
      const gcs = yield* connectUnit(stack, "alpha", "g", "web")
      yield* ask(gcs, { ty: "s", mt: 9002, ms: fence })
      for (const mt of [9001, 9002, 9003, 9004]) {
        const refused = yield* ask(gcs, { ty: "s", mt, ms: { ...fence, ai: "beta" } })
        expect(refused).toEqual({
          ty: "s",
          sd: "_SYS_",
          mt: 9100,
          ms: {
            s: "ERR:foreign-account",
            em: "ai names another account: a unit can only use its own account's tasks",
            mt
          }
        })
      }
      // The refused delete did nothing: alpha's task is still there.
      yield* gcs.send(JSON.stringify({ ty: "s", mt: 9001, ms: { ai: "alpha" } }))
      expect((yield* gcs.nextJson()).ms).toEqual(fence.t)
      expect((yield* ask(gcs, { ty: "s", mt: 9002, ms: { ...fence, mt: undefined } })).ms.s).toBe("ERR:task-invalid")
      expect((yield* ask(gcs, { ty: "s", mt: 9002, ms: { ...fence, t: "x".repeat(100) } })).ms.s).toBe(
        "ERR:task-too-large"
      )
      expect((yield* ask(gcs, { ty: "s", mt: 9001, ms: "not json" })).ms.s).toBe("ERR:task-invalid")
    }).pipe(Effect.provide(TestServices))
  )
})

describe("relay config: udpProxy and tasks keys", () => {
  const read = (json: object) =>
    Effect.either(Effect.withConfigProvider(RelayConfig, ConfigProvider.fromJson({ relay: json })))

  it.effect("defaults: proxy on with system-chosen ports, fixed ports and peer lock off; tasks on", () =>
    Effect.gen(function* () {
      const config = yield* Effect.withConfigProvider(RelayConfig, ConfigProvider.fromJson({}))
      expect(config.udpProxy).toMatchObject({
        enabled: true,
        hostname: "0.0.0.0",
        ports: undefined,
        allowFixedPorts: false,
        peerLock: false
      })
      expect(Duration.toMillis(config.udpProxy.idleTimeout)).toBe(300_000)
      expect(config.tasks).toEqual({
        enabled: true,
        maxBodyBytes: 65_536,
        maxTasksPerAccount: 1000,
        maxLoadBytes: 524_288
      })
      const range = yield* Effect.withConfigProvider(
        RelayConfig,
        ConfigProvider.fromJson({ relay: { udpProxy: { portMin: 20000, portMax: 20099 } } })
      )
      expect(range.udpProxy.ports).toEqual({ min: 20000, max: 20099 })
    })
  )

  it.effect("an invalid value fails with one line naming the key", () =>
    Effect.gen(function* () {
      for (const [json, key] of [
        [{ udpProxy: { portMin: 20000 } }, "portMin and portMax"],
        [{ udpProxy: { portMin: 30000, portMax: 20000 } }, "portMin and portMax"],
        [{ udpProxy: { packetsPerSecond: 0 } }, "packetsPerSecond"],
        [{ udpProxy: { peerLock: "maybe" } }, "peerLock"],
        [{ tasks: { maxBodyBytes: -1 } }, "maxBodyBytes"]
      ] as const) {
        const result = yield* read(json)
        expect(result._tag).toBe("Left")
        if (result._tag === "Left") expect(String(result.left)).toContain(key)
      }
    })
  )
})

describe("UDP proxy over real sockets (smoke)", () => {
  it.live(
    "a drone and a ground tool exchange datagrams through the relay's proxy on loopback, order and bytes preserved",
    () =>
      Effect.gen(function* () {
        yield* Real.seedAccounts
        const stack = yield* Real.startStack()
        const agent = yield* Real.connectUnit(stack, "alpha", "d", "drone")
        yield* agent.send(
          JSON.stringify({
            ty: "s",
            mt: 9008,
            ms: { en: true, socket1: { address: "", port: 0 }, socket2: { address: "", port: 0 } }
          })
        )
        const { ms } = yield* agent.nextJson()
        expect(ms.en).toBe(true)
        expect(ms.socket1.address).toBe("127.0.0.1")
        const drone = yield* bindInbox("127.0.0.1").pipe(Effect.provide(BunUdpLive))
        const tool = yield* bindInbox("127.0.0.1").pipe(Effect.provide(BunUdpLive))
        const datagram = (i: number, size: number) => Uint8Array.from({ length: size }, (_, j) => (i * 31 + j) & 0xff)
        // The ground tool announces itself (QGroundControl sends heartbeats); it finds no drone peer
        // yet (dropped, counted), and from then on socket2 knows the tool.
        tool.socket.send(datagram(0, 17), ms.socket2.port, ms.socket2.address)
        const noPeer = (yield* Metrics)
          .counter("switchboard_de_udp_drops_total", "")
          .labels({ server: "relay", reason: "no-peer" })
        yield* eventually(() => noPeer.value >= 1, "the proxy saw the ground tool")
        const count = 50
        const sizes = (i: number) => [1, 64, 280, 1024, 1400][i % 5]!
        for (let i = 1; i <= count; i++) drone.socket.send(datagram(i, sizes(i)), ms.socket1.port, ms.socket1.address)
        const atTool = yield* Effect.forEach(Array.from({ length: count }), () => tool.next)
        expect(atTool.map((r) => [...r.data])).toEqual(
          Array.from({ length: count }, (_, k) => [...datagram(k + 1, sizes(k + 1))])
        )
        expect(atTool.every((r) => r.from.port === ms.socket2.port)).toBe(true)
        for (let i = 1; i <= count; i++)
          tool.socket.send(datagram(1000 + i, sizes(i)), ms.socket2.port, ms.socket2.address)
        const atDrone = yield* Effect.forEach(Array.from({ length: count }), () => drone.next)
        expect(atDrone.map((r) => [...r.data])).toEqual(
          Array.from({ length: count }, (_, k) => [...datagram(1000 + k + 1, sizes(k + 1))])
        )
      }).pipe(Effect.provide(Real.TestServices))
  )
})
