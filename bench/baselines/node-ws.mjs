/**
 * Baseline 2, what many users run: plain Node.js with the `ws` package and a Set per room, same
 * URL shapes as DroneEngage (POST /w/wl login whose key is the group, ws /?f=<group>&s=<unit>).
 * A ping every 25 s per connection (what ws's docs recommend for liveness).
 * Prints {"port":N} on stdout once listening. Env: PORT (0 = any), HOST (127.0.0.1), PING_INTERVAL_MS (25000).
 */
import { createServer } from "node:http"
import { WebSocketServer } from "ws"

const hostname = process.env.HOST ?? "127.0.0.1"
const rooms = new Map()

const http = createServer((request, response) => {
  const url = new URL(request.url, "http://x")
  if (request.method !== "POST" || (url.pathname !== "/w/wl" && url.pathname !== "/agent/al")) {
    response.writeHead(404).end()
    return
  }
  let text = ""
  request.on("data", (chunk) => (text += chunk))
  request.on("end", () => {
    let group = "1"
    try {
      group = String(JSON.parse(text).gr ?? "1")
    } catch {}
    const port = http.address().port
    const body = {
      e: 0,
      sid: Math.random().toString(36).slice(2),
      per: "D1G1T3R4V5C6",
      prm: 0xffffffff,
      cs: { f: group, g: hostname, h: port },
      cm: "/wl"
    }
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body))
  })
})

const wss = new WebSocketServer({ server: http, perMessageDeflate: false })
wss.on("connection", (ws, request) => {
  const url = new URL(request.url, "http://x")
  const group = url.searchParams.get("f")
  if (!group || !url.searchParams.get("s")) return ws.close(1008, "f and s are required")
  let room = rooms.get(group)
  if (!room) rooms.set(group, (room = new Set()))
  room.add(ws)
  ws.isAlive = true
  ws.on("pong", () => (ws.isAlive = true))
  ws.on("message", (data, isBinary) => {
    for (const peer of room) if (peer !== ws && peer.readyState === 1) peer.send(data, { binary: isBinary })
  })
  ws.on("close", () => {
    room.delete(ws)
    if (room.size === 0) rooms.delete(group)
  })
  ws.send(JSON.stringify({ ty: "s", mt: 9007, ms: { s: `OK:connected:tcp:${request.socket.remoteAddress}` } }))
})

const heartbeat = setInterval(
  () => {
    for (const ws of wss.clients) {
      if (!ws.isAlive) ws.terminate()
      else {
        ws.isAlive = false
        ws.ping()
      }
    }
  },
  Number(process.env.PING_INTERVAL_MS ?? 25000)
)

http.listen(Number(process.env.PORT ?? 0), hostname, () => console.log(JSON.stringify({ port: http.address().port })))
process.on("SIGTERM", () => {
  clearInterval(heartbeat)
  for (const ws of wss.clients) ws.terminate()
  http.close()
  process.exit(0)
})
