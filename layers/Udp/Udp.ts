import { Context, Data, Effect, Queue, type Scope } from "effect"

/** Where a datagram came from or goes to. */
export interface UdpPeer {
  readonly address: string
  readonly port: number
}

/** Called synchronously for every datagram; `data` is only valid during the call unless copied. */
export type DatagramHandler = (data: Uint8Array, port: number, address: string) => void

/** A port, or a range of ports to pick a free one from (inclusive; 0 = the system picks). */
export type PortChoice = number | { readonly min: number; readonly max: number }

export interface BindOptions {
  /** Address to bind, e.g. "0.0.0.0" (all IPv4 interfaces) or "127.0.0.1". */
  readonly hostname: string
  readonly port: PortChoice
  readonly onDatagram: DatagramHandler
}

/** A bound UDP socket. `send` returns false when the datagram was not handed to the kernel. */
export interface UdpSocket {
  readonly hostname: string
  readonly port: number
  readonly send: (data: Uint8Array, port: number, address: string) => boolean
  /** Closes now (idempotent); the Scope that bound it also closes it. */
  readonly close: () => void
  readonly isOpen: () => boolean
}

export class UdpBindError extends Data.TaggedError("UdpBindError")<{
  readonly hostname: string
  readonly port: PortChoice
  readonly message: string
}> {}

/**
 * UDP sockets for the lifetime of a Scope. Implementations: BunUdp (Bun.udpSocket) and
 * MemoryUdp (an in-process datagram network for tests).
 */
export class Udp extends Context.Tag("switchboard/Udp")<
  Udp,
  {
    readonly bind: (options: BindOptions) => Effect.Effect<UdpSocket, UdpBindError, Scope.Scope>
  }
>() {}

/** Ports of a range in probing order: from a random offset, wrapping around, each once. */
export const probeOrder = (min: number, max: number, random: number): Array<number> => {
  const size = max - min + 1
  const start = Math.floor(random * size)
  return Array.from({ length: size }, (_, i) => min + ((start + i) % size))
}

export const describePort = (port: PortChoice) => (typeof port === "number" ? String(port) : `${port.min}-${port.max}`)

export interface Received {
  readonly data: Uint8Array
  readonly from: UdpPeer
}

/** A socket whose datagrams (copied) queue up for `next`: a test peer, a bench client. */
export const bindInbox = (hostname: string, port: PortChoice = 0) =>
  Effect.gen(function* () {
    const udp = yield* Udp
    const inbox = yield* Queue.unbounded<Received>()
    const socket = yield* udp.bind({
      hostname,
      port,
      onDatagram: (data, fromPort, address) =>
        Queue.unsafeOffer(inbox, { data: data.slice(), from: { address, port: fromPort } })
    })
    return { socket, inbox, next: Queue.take(inbox) } as const
  })
