/**
 * The reliable floor beside Hydrogen: raw Bun.serve doing the reliable channel's work on the same
 * wire as the bench's Hydrogen clients see it, with no Effect, no Schema and no metrics. Upgrade
 * with the `hydrogen-protocol` subprotocol and `Authorization: Key <KEY>`; `subscriptions/subscribe`
 * joins the channel's topic; `events/publish` numbers the event (id and seq), keeps it in a bounded
 * history, fans it out with one native publish, adds it to every subscriber's pending set (when
 * `ack` is true) and answers the publisher; an ack (`id` or a batch `ids`) deletes from the sender's
 * pending set; a sweep resends what waited RETRY_MS. Every frame is JSON.parse'd (no hand parsing).
 * Prints {"port":N} once listening. Env: PORT, HOST (127.0.0.1), KEY, HISTORY (1000), RETRY_MS (5000).
 */
import type { ServerWebSocket } from "bun"

const hostname = process.env.HOST ?? "127.0.0.1"
const key = process.env.KEY ?? ""
const protocol = "hydrogen-protocol"
const historySize = Number(process.env.HISTORY ?? 1000)
const retryMs = Number(process.env.RETRY_MS ?? 5000)

interface Pending {
  readonly text: string
  readonly sentAt: number
}
interface Client {
  /** Events sent and not acked yet, by id; the entry object is shared by the event's subscribers. */
  readonly pending: Map<string, Pending>
}
interface Channel {
  readonly topic: string
  readonly subscribers: Set<ServerWebSocket<Client>>
  /** The last HISTORY events, a ring indexed by seq. */
  readonly history: Array<string>
  seq: number
}

const epoch = crypto.randomUUID()
const idPrefix = crypto.randomUUID().slice(0, 8)
let nextId = 0
const channels = new Map<string, Channel>()
const channelOf = (name: string): Channel => {
  let channel = channels.get(name)
  if (!channel) channels.set(name, (channel = { topic: `h:${name}`, subscribers: new Set(), history: [], seq: 0 }))
  return channel
}

const respond = (ws: ServerWebSocket<Client>, id: string, channel: string, action: string, data: unknown) =>
  ws.send(JSON.stringify({ type: "response", id, timestamp: new Date().toISOString(), channel, action, data }))

const server = Bun.serve<Client, never>({
  port: Number(process.env.PORT ?? 0),
  hostname,
  fetch(request, server) {
    const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim())
    if (!offered.includes(protocol)) return Response.json({ error: "subprotocol" }, { status: 400 })
    if (request.headers.get("authorization") !== `Key ${key}`) return Response.json({ error: "key" }, { status: 401 })
    if (server.upgrade(request, { data: { pending: new Map() }, headers: { "Sec-WebSocket-Protocol": protocol } }))
      return undefined
    return new Response("upgrade failed", { status: 400 })
  },
  websocket: {
    idleTimeout: 120,
    close(ws) {
      for (const channel of channels.values()) channel.subscribers.delete(ws)
    },
    message(ws, message) {
      const m = JSON.parse(String(message)) as {
        type?: string
        id?: string
        ids?: Array<string>
        channel?: string
        action?: string
        data?: { channel: string; action?: string; data?: unknown; ack?: boolean }
      }
      if (m.type === "ack") {
        const pending = ws.data.pending
        if (m.id !== undefined) pending.delete(m.id)
        if (m.ids) for (const id of m.ids) pending.delete(id)
        return
      }
      if (m.type !== "command" || !m.data) return
      const channel = channelOf(m.data.channel)
      if (m.channel === "subscriptions" && m.action === "subscribe") {
        channel.subscribers.add(ws)
        ws.subscribe(channel.topic)
        respond(ws, m.id!, "subscriptions", "subscribe", {
          channel: m.data.channel,
          reliable: true,
          epoch,
          seq: channel.seq
        })
        return
      }
      if (m.channel !== "events" || m.action !== "publish") return
      const seq = ++channel.seq
      const id = `${idPrefix}-${(nextId++).toString(36)}`
      const ack = m.data.ack === true
      const body =
        `{"type":"event","seq":${seq},"epoch":"${epoch}","id":"${id}","timestamp":"${new Date().toISOString()}",` +
        `"channel":${JSON.stringify(m.data.channel)},"action":${JSON.stringify(m.data.action)},` +
        `"data":${JSON.stringify(m.data.data ?? null)}${ack ? ',"ack":true' : ""}}`
      channel.history[seq % historySize] = body
      server.publish(channel.topic, body)
      if (ack) {
        const entry = { text: body, sentAt: Date.now() }
        for (const subscriber of channel.subscribers) subscriber.data.pending.set(id, entry)
      }
      respond(ws, m.id!, "events", "publish", { id, channel: m.data.channel, seq, epoch })
    }
  }
})

// Redelivery: what waited RETRY_MS goes out again (the bench's clients ack long before).
setInterval(() => {
  const now = Date.now()
  for (const channel of channels.values())
    for (const subscriber of channel.subscribers)
      for (const [id, entry] of subscriber.data.pending)
        if (now - entry.sentAt >= retryMs) {
          subscriber.send(entry.text)
          subscriber.data.pending.set(id, { text: entry.text, sentAt: now })
        }
}, retryMs / 2)

console.log(JSON.stringify({ port: server.port }))
process.on("SIGTERM", () => {
  server.stop(true)
  process.exit(0)
})
