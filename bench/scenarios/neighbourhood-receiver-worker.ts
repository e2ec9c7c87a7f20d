/**
 * One receiver process of the neighbourhood bench: opens its share of the clients on the load
 * generator's WebSocket wire, sends each one's pre-signed hello, and counts the signed_data frames
 * that arrive (deliveries). The scenario asks for the count over IPC. It runs beside the server as
 * the relay's receivers do (bench/loadgen/worker.ts), so the bench process is not the clients' limit.
 */
import { WsConn } from "../loadgen/WsWire.ts"
import type { FromReceiver, ToReceiver } from "./neighbourhood-receivers.ts"

const post = (message: FromReceiver) => process.send!(message)
const signedDataPrefix = Buffer.from('{"type":"signed_data"')

let received = 0
const conns: Array<WsConn> = []

const isDelivery = (payload: Buffer) =>
  payload.compare(signedDataPrefix, 0, signedDataPrefix.length, 0, signedDataPrefix.length) === 0

const open = (index: number, url: string, hello: string) =>
  new Promise<void>((resolve, reject) => {
    let opened = false
    WsConn.open(
      index,
      { url },
      {
        onOpen: (conn) => {
          opened = true
          conn.sendText(hello)
          conns.push(conn)
          resolve()
        },
        onMessage: (_conn, _opcode, payload) => {
          if (isDelivery(payload)) received++
        },
        onClose: (_conn, code, reason) => {
          if (!opened) reject(new Error(`cannot connect to ${url}: ${code} ${reason}`))
        }
      },
      0
    ).catch(reject)
  })

process.on("message", (message: ToReceiver) => {
  switch (message.type) {
    case "connect":
      Promise.all(message.clients.map((c, i) => open(i, c.url, c.hello))).then(
        () => post({ type: "connected" }),
        (error) => post({ type: "error", message: String((error as Error).message ?? error) })
      )
      return
    case "count":
      return post({ type: "count", id: message.id, received })
    case "close":
      for (const conn of conns) conn.close(1000)
      setTimeout(() => process.exit(0), 50)
      return
  }
})
process.on("disconnect", () => process.exit(0))
