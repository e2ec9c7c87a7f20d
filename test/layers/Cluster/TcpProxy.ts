import { createServer, connect, type Server, type Socket } from "node:net"

/**
 * A loopback TCP proxy to a broker that a test can cut and restore: `cut` closes the listener and
 * every proxied connection (what a broker restart or a network split looks like to the client),
 * `restore` listens again on the same port.
 */
export const tcpProxy = async (targetPort: number) => {
  const sockets = new Set<Socket>()
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
        client.pipe(upstream)
        upstream.pipe(client)
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
    restore: listen
  }
}
