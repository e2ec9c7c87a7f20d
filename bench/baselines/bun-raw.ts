/**
 * Baseline 1, the ceiling for our runtime: raw Bun.serve with DroneEngage's URL shapes. POST /w/wl
 * answers a login whose key is the group itself; ws://host:port/?f=<group>&s=<unit> subscribes the
 * unit to its group topic; every message is forwarded with native publish and nothing else.
 * Prints {"port":N} on stdout once listening. Env: PORT (0 = any), HOST (127.0.0.1), IDLE_TIMEOUT_S (120),
 * RAW_WS (JSON of extra Bun.serve websocket options, e.g. {"sendPings":false}, to try one of our settings),
 * RAW_APPEND (a JSON member appended to every forwarded text message, e.g. ,"p":4294967295, to send the relay's bytes).
 */
const hostname = process.env.HOST ?? "127.0.0.1"
const append = process.env.RAW_APPEND

const server = Bun.serve<{ topic: string; unit: string }, never>({
  port: Number(process.env.PORT ?? 0),
  hostname,
  async fetch(request, server) {
    const url = new URL(request.url)
    if (request.method === "POST" && (url.pathname === "/w/wl" || url.pathname === "/agent/al")) {
      const body = (await request.json().catch(() => ({}))) as { gr?: string }
      const group = String(body.gr ?? "1")
      return Response.json({
        e: 0,
        sid: crypto.randomUUID(),
        per: "D1G1T3R4V5C6",
        prm: 0xffffffff,
        cs: { f: group, g: hostname, h: server.port },
        cm: "/wl"
      })
    }
    const group = url.searchParams.get("f")
    const unit = url.searchParams.get("s")
    if (!group || !unit) return new Response("f and s are required", { status: 400 })
    if (server.upgrade(request, { data: { topic: `g:${group}`, unit } })) return undefined
    return new Response("upgrade failed", { status: 400 })
  },
  websocket: {
    // uWS pings a socket that has been quiet for a while and closes it if nothing comes back.
    idleTimeout: Number(process.env.IDLE_TIMEOUT_S ?? 120),
    open(ws) {
      ws.subscribe(ws.data.topic)
      ws.send(`{"ty":"s","mt":9007,"ms":{"s":"OK:connected:tcp:${ws.remoteAddress}"}}`)
    },
    message(ws, message) {
      if (append && typeof message === "string") ws.publish(ws.data.topic, `${message.slice(0, -1)}${append}}`)
      else ws.publish(ws.data.topic, message)
    },
    ...(process.env.RAW_WS ? JSON.parse(process.env.RAW_WS) : {})
  }
})

console.log(JSON.stringify({ port: server.port }))
process.on("SIGTERM", () => {
  server.stop(true)
  process.exit(0)
})
