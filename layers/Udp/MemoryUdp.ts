import { Effect, Layer } from "effect"
import { type BindOptions, describePort, probeOrder, Udp, UdpBindError, type UdpSocket } from "./Udp.ts"

interface MemoryEndpoint {
  readonly address: string
  readonly options: BindOptions
  open: boolean
}

/**
 * An in-process datagram network for tests: sockets are keyed by port (one host), a datagram is
 * delivered synchronously as a copy, and one sent to a port nobody holds is lost, as on a real
 * network. A socket bound to a specific address sends from it, so tests can play distinct peers.
 */
export class MemoryDatagramNetwork {
  private readonly endpoints = new Map<number, MemoryEndpoint>()
  private nextEphemeral = 40_000
  delivered = 0
  lost = 0

  bind(options: BindOptions): UdpSocket | undefined {
    const port = this.choosePort(options)
    if (port === undefined) return undefined
    const endpoint: MemoryEndpoint = {
      address: options.hostname === "0.0.0.0" || options.hostname === "::" ? "127.0.0.1" : options.hostname,
      options,
      open: true
    }
    this.endpoints.set(port, endpoint)
    return {
      hostname: options.hostname,
      port,
      send: (data, toPort, _toAddress) => {
        if (!endpoint.open) return false
        const target = this.endpoints.get(toPort)
        if (!target) {
          this.lost++
          return true
        }
        this.delivered++
        target.options.onDatagram(data.slice(), port, endpoint.address)
        return true
      },
      close: () => {
        if (!endpoint.open) return
        endpoint.open = false
        if (this.endpoints.get(port) === endpoint) this.endpoints.delete(port)
      },
      isOpen: () => endpoint.open
    }
  }

  isBound(port: number) {
    return this.endpoints.has(port)
  }

  private choosePort(options: BindOptions): number | undefined {
    const { port } = options
    if (typeof port === "number") {
      if (port !== 0) return this.endpoints.has(port) ? undefined : port
      while (this.endpoints.has(this.nextEphemeral)) this.nextEphemeral++
      return this.nextEphemeral++
    }
    return probeOrder(port.min, port.max, Math.random()).find((candidate) => !this.endpoints.has(candidate))
  }
}

/** The Udp Tag on a MemoryDatagramNetwork (one per layer build unless given). */
export const MemoryUdp = (network: MemoryDatagramNetwork = new MemoryDatagramNetwork()) =>
  Layer.succeed(Udp, {
    bind: (options) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          const socket = network.bind(options)
          return socket
            ? Effect.succeed(socket)
            : Effect.fail(
                new UdpBindError({
                  hostname: options.hostname,
                  port: options.port,
                  message: `cannot bind UDP ${options.hostname}:${describePort(options.port)}: address in use`
                })
              )
        }),
        (socket) => Effect.sync(() => socket.close())
      )
  })
