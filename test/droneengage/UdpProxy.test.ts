import { describe, expect } from "bun:test"
import { Duration, Effect, Exit, Layer, Queue, Scope, TestClock } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { MemoryDatagramNetwork, MemoryUdp } from "../../layers/Udp/MemoryUdp.ts"
import { bindInbox, Udp } from "../../layers/Udp/Udp.ts"
import { makeUdpProxy, type UdpProxyOptions } from "../../src/droneengage/UdpProxy.ts"
import { it } from "../support/effect.ts"

const baseOptions: UdpProxyOptions = {
  serverName: "relay",
  hostname: "0.0.0.0",
  publicHost: "relay.example",
  ports: undefined,
  allowFixedPorts: false,
  idleTimeout: Duration.minutes(5),
  stickyGrace: Duration.minutes(2),
  reapInterval: Duration.seconds(10),
  maxPairs: 8,
  maxPairsPerAccount: 2,
  packetsPerSecond: 1000,
  bytesPerSecond: 1_000_000,
  peerLock: false
}

const drone = { accountId: "acc-1", unitName: "drone-1" }
const any = { port1: 0, port2: 0 }

/** A proxy on its own memory network, in a scope the test may close (shutdown). */
const setup = (overrides: Partial<UdpProxyOptions> = {}) =>
  Effect.gen(function* () {
    const network = new MemoryDatagramNetwork()
    const layer = Layer.merge(MemoryUdp(network), Metrics.Default)
    const context = yield* Layer.build(layer)
    const scope = yield* Scope.make()
    const proxy = yield* makeUdpProxy({ ...baseOptions, ...overrides }).pipe(
      Scope.extend(scope),
      Effect.provide(context)
    )
    const peer = (address: string) => bindInbox(address).pipe(Effect.provide(context))
    const metrics = Effect.runSync(Effect.provide(Metrics, context))
    const count = (name: string, labels: Record<string, string>) =>
      metrics.counter(name, "").labels({ server: "relay", ...labels }).value
    return { network, proxy, peer, scope, count, udp: Effect.runSync(Effect.provide(Udp, context)) }
  })

const bytes = (...values: Array<number>) => new Uint8Array(values)

describe("UDP proxy (9008) on the memory datagram network", () => {
  it.effect("forwards each datagram to the last peer seen on the other socket, bytes and order unchanged", () =>
    Effect.gen(function* () {
      const { proxy, peer, count } = yield* setup()
      const state = yield* proxy.open(drone, any)
      expect(state.en).toBe(true)
      expect(state.socket1.address).toBe("relay.example")
      expect(state.socket1.port).not.toBe(state.socket2.port)
      const uav = yield* peer("10.0.0.1")
      const tool = yield* peer("10.0.0.2")
      // The ground tool speaks first so socket2 knows its peer; then both directions flow.
      tool.socket.send(bytes(9), state.socket2.port, "127.0.0.1")
      for (let i = 0; i < 5; i++) uav.socket.send(bytes(i, 0xfe, 0, 255), state.socket1.port, "127.0.0.1")
      tool.socket.send(bytes(7, 7), state.socket2.port, "127.0.0.1")
      const received = yield* Queue.takeAll(tool.inbox)
      expect([...received].map((r) => [...r.data])).toEqual([0, 1, 2, 3, 4].map((i) => [i, 0xfe, 0, 255]))
      expect([...received][0]!.from.port).toBe(state.socket2.port)
      const back = yield* uav.next
      expect([...back.data]).toEqual([7, 7])
      expect(back.from.port).toBe(state.socket1.port)
      expect(count("switchboard_de_udp_packets_total", { direction: "1to2" })).toBe(5)
      expect(count("switchboard_de_udp_bytes_total", { direction: "1to2" })).toBe(20)
      expect(count("switchboard_de_udp_packets_total", { direction: "2to1" })).toBe(1)
      // The first datagram of the tool had no drone peer to go to yet.
      expect(count("switchboard_de_udp_drops_total", { reason: "no-peer" })).toBe(1)
    })
  )

  it.effect("a repeated request reuses the pair; close answers the last ports with en false, then zeros", () =>
    Effect.gen(function* () {
      const { proxy, network } = yield* setup()
      const first = yield* proxy.open(drone, any)
      const again = yield* proxy.open(drone, { port1: 0, port2: 0 })
      expect(again).toEqual(first)
      const closed = yield* proxy.close(drone)
      expect(closed).toEqual({ ...first, en: false })
      expect(network.isBound(first.socket1.port) || network.isBound(first.socket2.port)).toBe(false)
      expect(yield* proxy.close(drone)).toEqual({
        socket1: { address: "0.0.0.0", port: 0 },
        socket2: { address: "0.0.0.0", port: 0 },
        en: false
      })
      expect(proxy.pairCount()).toBe(0)
    })
  )

  it.effect(
    "requested ports are ignored unless fixed ports are allowed; then honoured, and other ports replace the pair",
    () =>
      Effect.gen(function* () {
        const strict = yield* setup({ ports: { min: 20_000, max: 20_009 } })
        const picked = yield* strict.proxy.open(drone, { port1: 14550, port2: 14551 })
        expect([picked.socket1.port, picked.socket2.port].every((p) => p >= 20_000 && p <= 20_009)).toBe(true)

        const fixed = yield* setup({ allowFixedPorts: true })
        const exact = yield* fixed.proxy.open(drone, { port1: 14550, port2: 14551 })
        expect([exact.socket1.port, exact.socket2.port]).toEqual([14550, 14551])
        expect(yield* fixed.proxy.open(drone, { port1: 14550, port2: 0 })).toEqual(exact)
        const moved = yield* fixed.proxy.open(drone, { port1: 14560, port2: 14561 })
        expect([moved.socket1.port, moved.socket2.port]).toEqual([14560, 14561])
        expect(fixed.network.isBound(14550)).toBe(false)
        expect(fixed.proxy.pairCount()).toBe(1)
      })
  )

  it.effect("a port that is taken refuses the request without leaking the socket already bound", () =>
    Effect.gen(function* () {
      const { proxy, network, udp } = yield* setup({ allowFixedPorts: true })
      yield* udp.bind({ hostname: "0.0.0.0", port: 14551, onDatagram: () => {} })
      const refused = yield* Effect.flip(proxy.open(drone, { port1: 14550, port2: 14551 }))
      expect(refused.reason).toBe("bind-failed")
      expect(refused.message).toContain("address in use")
      expect(network.isBound(14550)).toBe(false)
      expect(proxy.pairCount()).toBe(0)
    })
  )

  it.effect("per-account and per-server limits on open pairs", () =>
    Effect.gen(function* () {
      const { proxy, count } = yield* setup({ maxPairs: 3, maxPairsPerAccount: 2 })
      yield* proxy.open({ accountId: "a", unitName: "u1" }, any)
      yield* proxy.open({ accountId: "a", unitName: "u2" }, any)
      const perAccount = yield* Effect.flip(proxy.open({ accountId: "a", unitName: "u3" }, any))
      expect(perAccount.reason).toBe("account-limit")
      yield* proxy.open({ accountId: "b", unitName: "u1" }, any)
      const perServer = yield* Effect.flip(proxy.open({ accountId: "c", unitName: "u1" }, any))
      expect(perServer.reason).toBe("server-limit")
      // Re-asking for a pair a unit already holds is never refused by the limits.
      expect((yield* proxy.open({ accountId: "a", unitName: "u2" }, any)).en).toBe(true)
      yield* proxy.close({ accountId: "a", unitName: "u1" })
      expect((yield* proxy.open({ accountId: "a", unitName: "u3" }, any)).en).toBe(true)
      expect(count("switchboard_de_udp_refused_total", { reason: "account-limit" })).toBe(1)
      expect(count("switchboard_de_udp_refused_total", { reason: "server-limit" })).toBe(1)
    })
  )

  it.effect("the reaper closes a pair idle for idleTimeout; traffic keeps it open (TestClock)", () =>
    Effect.gen(function* () {
      const { proxy, peer, network } = yield* setup({
        idleTimeout: Duration.seconds(60),
        reapInterval: Duration.seconds(10)
      })
      const state = yield* proxy.open(drone, any)
      const uav = yield* peer("10.0.0.1")
      yield* TestClock.adjust(Duration.seconds(50))
      uav.socket.send(bytes(1), state.socket1.port, "127.0.0.1")
      yield* TestClock.adjust(Duration.seconds(50))
      expect(proxy.pairCount()).toBe(1)
      yield* TestClock.adjust(Duration.seconds(20))
      expect(proxy.pairCount()).toBe(0)
      expect(network.isBound(state.socket1.port)).toBe(false)
    })
  )

  it.effect(
    "a disconnected unit keeps its ports for the grace period: a reconnect gets them back; after it they close",
    () =>
      Effect.gen(function* () {
        const { proxy } = yield* setup({ stickyGrace: Duration.seconds(30), reapInterval: Duration.seconds(5) })
        proxy.unitEntered(drone)
        const state = yield* proxy.open(drone, any)
        proxy.unitLeft(drone)
        yield* TestClock.adjust(Duration.seconds(25))
        // The unit is back within the grace period and asks again: same ports.
        proxy.unitEntered(drone)
        expect(yield* proxy.open(drone, any)).toEqual(state)
        yield* TestClock.adjust(Duration.seconds(60))
        expect(proxy.pairCount()).toBe(1)
        // A reconnect replaces the connection: the new one enters before the old one's close is seen.
        proxy.unitEntered(drone)
        proxy.unitLeft(drone)
        yield* TestClock.adjust(Duration.seconds(60))
        expect(proxy.pairCount()).toBe(1)
        proxy.unitLeft(drone)
        yield* TestClock.adjust(Duration.seconds(29))
        expect(proxy.pairCount()).toBe(1)
        yield* TestClock.adjust(Duration.seconds(6))
        expect(proxy.pairCount()).toBe(0)
      })
  )

  it.effect("packet and byte budgets per pair drop the excess and refill with time (TestClock)", () =>
    Effect.gen(function* () {
      const { proxy, peer, count } = yield* setup({ packetsPerSecond: 10, bytesPerSecond: 1000 })
      const state = yield* proxy.open(drone, any)
      const uav = yield* peer("10.0.0.1")
      const tool = yield* peer("10.0.0.2")
      tool.socket.send(bytes(0), state.socket2.port, "127.0.0.1")
      for (let i = 0; i < 15; i++) uav.socket.send(bytes(i), state.socket1.port, "127.0.0.1")
      expect((yield* Queue.takeAll(tool.inbox)).length).toBe(10)
      expect(count("switchboard_de_udp_drops_total", { reason: "rate-limited" })).toBe(5)
      yield* TestClock.adjust(Duration.seconds(1))
      uav.socket.send(new Uint8Array(900), state.socket1.port, "127.0.0.1")
      uav.socket.send(new Uint8Array(200), state.socket1.port, "127.0.0.1")
      expect([...(yield* Queue.takeAll(tool.inbox))].map((r) => r.data.byteLength)).toEqual([900])
      expect(count("switchboard_de_udp_drops_total", { reason: "rate-limited" })).toBe(6)
    })
  )

  it.effect(
    "without the peer lock the last sender is the peer; with it, other addresses are dropped until the unit re-opens",
    () =>
      Effect.gen(function* () {
        const open = yield* setup()
        const s = yield* open.proxy.open(drone, any)
        const uav = yield* open.peer("10.0.0.1")
        const tool = yield* open.peer("10.0.0.2")
        const intruder = yield* open.peer("10.6.6.6")
        tool.socket.send(bytes(1), s.socket2.port, "127.0.0.1")
        intruder.socket.send(bytes(2), s.socket2.port, "127.0.0.1")
        uav.socket.send(bytes(3), s.socket1.port, "127.0.0.1")
        expect([...(yield* intruder.next).data]).toEqual([3])

        const locked = yield* setup({ peerLock: true })
        const l = yield* locked.proxy.open(drone, any)
        const uav2 = yield* locked.peer("10.0.0.1")
        const tool2 = yield* locked.peer("10.0.0.2")
        const intruder2 = yield* locked.peer("10.6.6.6")
        tool2.socket.send(bytes(1), l.socket2.port, "127.0.0.1")
        intruder2.socket.send(bytes(2), l.socket2.port, "127.0.0.1")
        uav2.socket.send(bytes(3), l.socket1.port, "127.0.0.1")
        expect([...(yield* tool2.next).data]).toEqual([3])
        expect(yield* Queue.size(intruder2.inbox)).toBe(0)
        tool2.socket.send(bytes(5), l.socket2.port, "127.0.0.1")
        expect([...(yield* uav2.next).data]).toEqual([5])
        expect(locked.count("switchboard_de_udp_drops_total", { reason: "peer-lock" })).toBe(1)
        // The unit re-opens its pair: the next sender becomes the peer.
        yield* locked.proxy.open(drone, any)
        intruder2.socket.send(bytes(4), l.socket2.port, "127.0.0.1")
        expect([...(yield* uav2.next).data]).toEqual([4])
      })
  )

  it.effect("shutdown releases every pair", () =>
    Effect.gen(function* () {
      const { proxy, network, scope } = yield* setup()
      const a = yield* proxy.open(drone, any)
      const b = yield* proxy.open({ accountId: "acc-2", unitName: "drone-1" }, any)
      expect(a.socket1.port).not.toBe(b.socket1.port)
      yield* Scope.close(scope, Exit.void)
      expect(
        [a.socket1.port, a.socket2.port, b.socket1.port, b.socket2.port].some((port) => network.isBound(port))
      ).toBe(false)
    })
  )
})
