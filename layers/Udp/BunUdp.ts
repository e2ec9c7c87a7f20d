import { Effect, Layer } from "effect"
import { type BindOptions, describePort, probeOrder, Udp, UdpBindError, type UdpSocket } from "./Udp.ts"

const isAddressInUse = (error: unknown) => (error as { readonly code?: unknown } | null)?.code === "EADDRINUSE"

/** Binds one exact port (0 = any free one the system picks). */
const bindExact = (options: BindOptions, port: number) =>
  Bun.udpSocket({
    hostname: options.hostname,
    port,
    binaryType: "uint8array",
    socket: {
      data: (_socket, data, fromPort, address) => options.onDatagram(data, fromPort, address),
      // ICMP errors (a peer that went away: ECONNREFUSED) are normal for UDP: that datagram is lost, nothing more.
      error: () => {}
    }
  })

/** Tries the range's ports from a random offset until one is free; other bind errors end the search. */
const bindSocket = async (options: BindOptions) => {
  if (typeof options.port === "number") return bindExact(options, options.port)
  let lastError: unknown = new Error("empty port range")
  for (const port of probeOrder(options.port.min, options.port.max, Math.random())) {
    try {
      return await bindExact(options, port)
    } catch (error) {
      if (!isAddressInUse(error)) throw error
      lastError = error
    }
  }
  throw lastError
}

const describeError = (error: unknown) =>
  isAddressInUse(error) ? "address in use" : error instanceof Error ? error.message : String(error)

/** Real UDP sockets through Bun.udpSocket; datagram callbacks run straight from the event loop. */
export const BunUdpLive = Layer.succeed(Udp, {
  bind: (options) =>
    Effect.acquireRelease(
      Effect.tryPromise({
        try: () => bindSocket(options),
        catch: (error) =>
          new UdpBindError({
            hostname: options.hostname,
            port: options.port,
            message: `cannot bind UDP ${options.hostname}:${describePort(options.port)}: ${describeError(error)}`
          })
      }).pipe(
        Effect.map((socket): UdpSocket => {
          // A plain flag: the hot path reads it per datagram instead of a native getter.
          let open = true
          return {
            hostname: socket.hostname,
            port: socket.port,
            send: (data, port, address) => {
              if (!open) return false
              try {
                return socket.send(data, port, address)
              } catch {
                // A peer that went away (ECONNREFUSED) or a bad address: this datagram is lost, the socket lives on.
                return false
              }
            },
            close: () => {
              open = false
              socket.close()
            },
            isOpen: () => open
          }
        })
      ),
      (socket) => Effect.sync(() => socket.close())
    )
})
