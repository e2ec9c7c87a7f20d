/**
 * The UDP forwarders of the udp scenario, one per process so /proc gives each its own CPU time.
 * MODE=raw: the baseline, two Bun.udpSocket sockets, each datagram to the other's last peer,
 * nothing else. MODE=proxy: our DroneEngage UDP proxy service (src/droneengage/UdpProxy.ts) on
 * BunUdp, with its metrics and budgets on (budgets set high enough never to drop), one pair open.
 * Prints {"port1":N,"port2":N} on stdout once bound. Env: HOST (127.0.0.1).
 */
import { Duration, Effect, Layer } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { BunUdpLive } from "../../layers/Udp/BunUdp.ts"
import { makeUdpProxy } from "../../src/droneengage/UdpProxy.ts"

const hostname = process.env.HOST ?? "127.0.0.1"

type Socket = Bun.udp.Socket<"uint8array">
/** A peer that went away makes send throw ECONNREFUSED: that datagram is lost, the forwarder goes on. */
const forward = (socket: Socket, data: Uint8Array, peer: { address: string; port: number }) => {
  try {
    socket.send(data, peer.port, peer.address)
  } catch {}
}

const raw = async () => {
  const peers = { a: { address: "", port: 0 }, b: { address: "", port: 0 } }
  const a = await Bun.udpSocket({
    hostname,
    port: 0,
    binaryType: "uint8array",
    socket: {
      error() {},
      data(_socket, data, port, address) {
        peers.a.address = address
        peers.a.port = port
        if (peers.b.port !== 0) forward(b, data, peers.b)
      }
    }
  })
  const b = await Bun.udpSocket({
    hostname,
    port: 0,
    binaryType: "uint8array",
    socket: {
      error() {},
      data(_socket, data, port, address) {
        peers.b.address = address
        peers.b.port = port
        if (peers.a.port !== 0) forward(a, data, peers.a)
      }
    }
  })
  console.log(JSON.stringify({ port1: a.port, port2: b.port }))
}

const proxy = Effect.gen(function* () {
  const service = yield* makeUdpProxy({
    serverName: "bench",
    hostname,
    publicHost: hostname,
    ports: undefined,
    allowFixedPorts: false,
    idleTimeout: Duration.hours(1),
    stickyGrace: Duration.hours(1),
    reapInterval: Duration.seconds(10),
    maxPairs: 10,
    maxPairsPerAccount: 10,
    packetsPerSecond: 1e9,
    bytesPerSecond: 1e12,
    peerLock: false
  })
  const state = yield* service.open({ accountId: "bench", unitName: "drone" }, { port1: 0, port2: 0 })
  console.log(JSON.stringify({ port1: state.socket1.port, port2: state.socket2.port }))
  return yield* Effect.never
}).pipe(Effect.scoped, Effect.provide(Layer.merge(BunUdpLive, Metrics.Default)))

if (process.env.MODE === "proxy") Effect.runFork(proxy)
else await raw()
process.on("SIGTERM", () => process.exit(0))
