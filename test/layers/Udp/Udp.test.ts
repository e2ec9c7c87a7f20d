import { describe, expect } from "bun:test"
import { Effect, Exit, type Layer, Scope } from "effect"
import { BunUdpLive } from "../../../layers/Udp/BunUdp.ts"
import { MemoryDatagramNetwork, MemoryUdp } from "../../../layers/Udp/MemoryUdp.ts"
import { bindInbox, probeOrder, Udp } from "../../../layers/Udp/Udp.ts"
import { it } from "../../support/effect.ts"

const contract = (name: string, layer: () => Layer.Layer<Udp>, run: typeof it.live) =>
  describe(`Udp adapter: ${name}`, () => {
    run(
      "binds, sends and receives with the peer's address; a taken port fails with a clear error; the scope closes it",
      () =>
        Effect.gen(function* () {
          const a = yield* bindInbox("127.0.0.1")
          const b = yield* bindInbox("127.0.0.1")
          expect(b.socket.send(new Uint8Array([1, 2, 3]), a.socket.port, "127.0.0.1")).toBe(true)
          const got = yield* a.next
          expect([...got.data]).toEqual([1, 2, 3])
          expect(got.from).toEqual({ address: "127.0.0.1", port: b.socket.port })
          const udp = yield* Udp
          const taken = yield* Effect.flip(
            udp.bind({ hostname: "127.0.0.1", port: a.socket.port, onDatagram: () => {} })
          )
          expect(taken.message).toContain("address in use")
          const scope = yield* Scope.make()
          const c = yield* udp.bind({ hostname: "127.0.0.1", port: 0, onDatagram: () => {} }).pipe(Scope.extend(scope))
          expect(c.isOpen()).toBe(true)
          yield* Scope.close(scope, Exit.void)
          expect(c.isOpen()).toBe(false)
          expect(c.send(new Uint8Array([1]), a.socket.port, "127.0.0.1")).toBe(false)
          c.close()
        }).pipe(Effect.provide(layer()))
    )

    run("a range gives a free port of the range, skipping taken ones", () =>
      Effect.gen(function* () {
        const udp = yield* Udp
        const base = 30_000 + Math.floor(Math.random() * 20_000)
        const first = yield* udp.bind({
          hostname: "127.0.0.1",
          port: { min: base, max: base + 1 },
          onDatagram: () => {}
        })
        const second = yield* udp.bind({
          hostname: "127.0.0.1",
          port: { min: base, max: base + 1 },
          onDatagram: () => {}
        })
        expect(new Set([first.port, second.port])).toEqual(new Set([base, base + 1]))
        const none = yield* Effect.flip(
          udp.bind({ hostname: "127.0.0.1", port: { min: base, max: base + 1 }, onDatagram: () => {} })
        )
        expect(none.message).toContain(`${base}-${base + 1}`)
      }).pipe(Effect.provide(layer()))
    )
  })

contract("Bun (real loopback sockets)", () => BunUdpLive, it.live)
contract("memory", () => MemoryUdp(new MemoryDatagramNetwork()), it.effect)

describe("probeOrder", () => {
  it.effect("visits every port of the range once, from a random offset", () =>
    Effect.sync(() => {
      expect(probeOrder(10, 14, 0.5)).toEqual([12, 13, 14, 10, 11])
      expect(probeOrder(7, 7, 0.99)).toEqual([7])
    })
  )
})
