import { connect, type Socket } from "node:net"
import { Effect, type Scope } from "effect"

/**
 * A WebSocket client that completes the opening handshake and then never answers a ping: what a
 * frozen or vanished peer looks like to the server. With `stopReading` it also stops reading,
 * so the server's send buffer for it fills up (a slow consumer).
 */
export const connectSilent = (
  port: number,
  options: { readonly path?: string; readonly headers?: Record<string, string>; readonly stopReading?: boolean } = {}
) =>
  Effect.acquireRelease(
    Effect.async<{ readonly socket: Socket; readonly closedByServer: () => boolean }, Error>((resume) => {
      const socket = connect({ host: "127.0.0.1", port })
      let response = ""
      let upgraded = false
      let ended = false
      socket.on("data", (chunk) => {
        if (upgraded) return
        response += chunk.toString("latin1")
        if (!response.includes("\r\n\r\n")) return
        upgraded = true
        if (!response.startsWith("HTTP/1.1 101"))
          return resume(Effect.fail(new Error(`upgrade refused: ${response.split("\r\n")[0]}`)))
        if (options.stopReading) socket.pause()
        resume(Effect.succeed({ socket, closedByServer: () => ended }))
      })
      socket.on("close", () => {
        ended = true
      })
      socket.on("error", (error) => resume(Effect.fail(error)))
      const extra = Object.entries(options.headers ?? {})
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join("")
      socket.write(
        `GET ${options.path ?? "/"} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
      )
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  ) satisfies Effect.Effect<unknown, Error, Scope.Scope>
