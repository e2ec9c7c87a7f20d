import { createServer, connect, type Server, type Socket } from "node:net"

/**
 * A loopback TCP proxy to a broker that a test can cut and restore: `cut` closes the listener and
 * every proxied connection (what a broker restart or a network split looks like to the client),
 * `restore` listens again on the same port. `stall` forwards nothing while keeping every socket open
 * (a hung server, a partition without RST); `unstall` delivers what waited and forwards again.
 */
export const tcpProxy = async (targetPort: number) => {
  const sockets = new Set<Socket>()
  // Each forwarding direction, so a stall can unhook it and an unstall hook it back.
  const links = new Set<readonly [Socket, Socket]>()
  let stalled = false
  const forward = ([from, to]: readonly [Socket, Socket]) => {
    from.pipe(to)
    from.resume()
  }
  const hold = ([from, to]: readonly [Socket, Socket]) => {
    from.unpipe(to)
    from.pause()
  }
  let server: Server | undefined
  let port = 0
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((client) => {
        const upstream = connect({ host: "127.0.0.1", port: targetPort })
        for (const socket of [client, upstream]) {
          sockets.add(socket)
          socket.on("close", () => sockets.delete(socket))
          socket.on("error", () => {})
        }
        for (const link of [[client, upstream] as const, [upstream, client] as const]) {
          links.add(link)
          link[0].on("close", () => links.delete(link))
          if (stalled) link[0].pause()
          else forward(link)
        }
        client.on("close", () => upstream.destroy())
        upstream.on("close", () => client.destroy())
      })
      server.listen(port, "127.0.0.1", () => {
        port = (server!.address() as { port: number }).port
        resolve()
      })
    })
  await listen()
  return {
    get port() {
      return port
    },
    cut: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server!.close(() => resolve())
      }),
    restore: listen,
    stall: () => {
      stalled = true
      for (const link of links) hold(link)
    },
    unstall: () => {
      stalled = false
      for (const link of links) forward(link)
    }
  }
}
