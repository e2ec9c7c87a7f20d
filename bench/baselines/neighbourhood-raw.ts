/**
 * The Neighbourhood bench's floor on the same wire: raw Bun.serve that every client subscribes to
 * one topic on. MODE=publish forwards every signed_data frame as received (native publish, nothing
 * else); MODE=verify is the least a v1.2 home server must do: parse the frame and its data, keep
 * each hello's key, and forward a public chat only when its RSA-PSS signature verifies (node:crypto).
 * No counters, schemas, limits or metrics. A client_list_request is answered with a list as long
 * as the clients that said hello (the bench waits on it). Prints {"port":N} once listening.
 * Env: PORT (0 = any), HOST (127.0.0.1), MODE (publish | verify | verify-async).
 */
import { constants, createPublicKey, type KeyObject, verify } from "node:crypto"

const hostname = process.env.HOST ?? "127.0.0.1"
const mode = process.env.MODE ?? "publish"
const checks = mode !== "publish"
/** MODE=verify-async: WebCrypto's verify (Bun's work pool, off the main thread), forwarded in arrival order per client. */
const offThread = mode === "verify-async"
const topic = "clients"
let helloCount = 0

interface Frame {
  readonly type?: string
  readonly data?: string
  readonly counter?: number
  readonly signature?: string
}

const pss = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }

const verified = (key: KeyObject, frame: Frame) =>
  verify(
    "sha256",
    Buffer.from(`${frame.data}${frame.counter}`),
    { key, ...pss },
    Buffer.from(frame.signature ?? "", "base64")
  )

const subtle = globalThis.crypto.subtle
const encoder = new TextEncoder()
const verifiedOffThread = (key: CryptoKey, frame: Frame) =>
  subtle.verify(
    { name: "RSA-PSS", saltLength: 32 },
    key,
    Buffer.from(frame.signature ?? "", "base64"),
    encoder.encode(`${frame.data}${frame.counter}`)
  )

interface Client {
  key: KeyObject | undefined
  cryptoKey: Promise<CryptoKey> | undefined
  tail: Promise<unknown>
  counted: boolean
}

const server = Bun.serve<Client, never>({
  port: Number(process.env.PORT ?? 0),
  hostname,
  fetch(request, server) {
    const data: Client = { key: undefined, cryptoKey: undefined, tail: Promise.resolve(), counted: false }
    if (server.upgrade(request, { data })) return undefined
    return new Response("websocket only", { status: 400 })
  },
  websocket: {
    idleTimeout: 0,
    open(ws) {
      ws.subscribe(topic)
    },
    message(ws, message) {
      if (typeof message !== "string") return
      if (message.startsWith('{"type":"client_list_request"')) {
        ws.send(
          JSON.stringify({ type: "client_list", servers: [{ address: "raw", clients: Array(helloCount).fill("") }] })
        )
        return
      }
      if (!checks) {
        if (!ws.data.counted) {
          ws.data.counted = true
          helloCount++
          return
        }
        ws.publish(topic, message)
        return
      }
      const frame = JSON.parse(message) as Frame
      if (frame.type !== "signed_data" || typeof frame.data !== "string") return
      const content = JSON.parse(frame.data) as { type?: string; public_key?: string }
      if (content.type === "hello" && content.public_key) {
        ws.data.key = createPublicKey(content.public_key)
        ws.data.cryptoKey = subtle.importKey(
          "spki",
          ws.data.key.export({ type: "spki", format: "der" }),
          { name: "RSA-PSS", hash: "SHA-256" },
          false,
          ["verify"]
        )
        helloCount++
      } else if (offThread && ws.data.cryptoKey) {
        const checked = ws.data.cryptoKey.then((key) => verifiedOffThread(key, frame))
        ws.data.tail = ws.data.tail.then(() => checked).then((ok) => ok && ws.publish(topic, message))
      } else if (ws.data.key && verified(ws.data.key, frame)) ws.publish(topic, message)
    }
  }
})

console.log(JSON.stringify({ port: server.port }))
process.on("SIGTERM", () => {
  server.stop(true)
  process.exit(0)
})
