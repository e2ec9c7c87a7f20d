import type { Clock, Scope } from "effect"
import type { Cell, Metrics } from "../../layers/Observability/Metrics.ts"
import type { UdpSocket } from "../../layers/Udp/Udp.ts"
import { takeToken, takeTokens, type TokenBucket } from "../shared/TokenBucket.ts"

/** One UDP proxy pair and its forwarding hot path (the registry of pairs is UdpProxy.ts). */

export interface Side {
  socket: UdpSocket | undefined
  peerAddress: string | undefined
  peerPort: number
  /** With the peer lock on: the side has accepted a peer since the pair was (re)opened. */
  locked: boolean
}

export interface Pair {
  readonly key: string
  readonly accountId: string
  readonly scope: Scope.CloseableScope
  readonly side1: Side
  readonly side2: Side
  /** One budget per pair for both directions together. */
  readonly packets: TokenBucket
  readonly bytes: TokenBucket
  lastActive: number
  /** When the unit's last connection closed; undefined while it is connected. */
  departedAt: number | undefined
}

export interface Direction {
  readonly packets: Cell
  readonly bytes: Cell
}

export const newSide = (): Side => ({ socket: undefined, peerAddress: undefined, peerPort: 0, locked: false })

/** The proxy's metric cells, labelled once so the hot path only adds to numbers. */
export const proxyMetrics = (metrics: Metrics, server: string) => {
  const packets = metrics.counter("switchboard_de_udp_packets_total", "Datagrams forwarded by the UDP proxy", [
    "server",
    "direction"
  ])
  const bytes = metrics.counter("switchboard_de_udp_bytes_total", "Bytes forwarded by the UDP proxy", [
    "server",
    "direction"
  ])
  const drops = metrics.counter("switchboard_de_udp_drops_total", "Datagrams the UDP proxy dropped", [
    "server",
    "reason"
  ])
  const direction = (label: string): Direction => ({
    packets: packets.labels({ server, direction: label }),
    bytes: bytes.labels({ server, direction: label })
  })
  return {
    pairs: metrics.gauge("switchboard_de_udp_pairs", "UDP proxy pairs open", ["server"]).labels({ server }),
    refusals: metrics.counter("switchboard_de_udp_refused_total", "UDP proxy requests refused", ["server", "reason"]),
    toSocket2: direction("1to2"),
    toSocket1: direction("2to1"),
    dropped: {
      noPeer: drops.labels({ server, reason: "no-peer" }),
      rate: drops.labels({ server, reason: "rate-limited" }),
      peerLock: drops.labels({ server, reason: "peer-lock" }),
      sendFailed: drops.labels({ server, reason: "send-failed" })
    }
  }
}

export type Dropped = ReturnType<typeof proxyMetrics>["dropped"]

export interface ForwardSettings {
  readonly packetsPerSecond: number
  readonly bytesPerSecond: number
  readonly peerLock: boolean
}

/**
 * The hot path: each datagram arriving on `from` goes to the last peer seen on `to`, unchanged,
 * synchronously, with no allocation beyond the kernel's.
 */
export const makeForwarder =
  (settings: ForwardSettings, clock: Clock.Clock, dropped: Dropped) =>
  (pair: Pair, from: Side, to: Side, counted: Direction) =>
  (data: Uint8Array, port: number, address: string) => {
    if (settings.peerLock && from.locked && address !== from.peerAddress) {
      dropped.peerLock.inc()
      return
    }
    from.peerAddress = address
    from.peerPort = port
    from.locked = true
    const now = clock.unsafeCurrentTimeMillis()
    pair.lastActive = now
    const target = to.peerAddress
    if (target === undefined || to.socket === undefined) {
      dropped.noPeer.inc()
      return
    }
    const { packetsPerSecond, bytesPerSecond } = settings
    if (
      !takeToken(pair.packets, now, packetsPerSecond, packetsPerSecond) ||
      !takeTokens(pair.bytes, now, bytesPerSecond, bytesPerSecond, data.byteLength)
    ) {
      dropped.rate.inc()
      return
    }
    if (!to.socket.send(data, to.peerPort, target)) {
      dropped.sendFailed.inc()
      return
    }
    counted.packets.inc()
    counted.bytes.inc(data.byteLength)
  }
