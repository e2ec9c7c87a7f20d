/**
 * Hydrogen node kill: 3 processes of programs/hydrogen.ts as one cluster (Redis or NATS), clients
 * spread over them on a reliable channel with acked events while a publisher keeps publishing to
 * node 1; node 3 is killed (SIGKILL), its clients reconnect to nodes 1 and 2 and resume their
 * sessions there. Prints the time back (close seen → resume answered) as p50/p95/max, and checks
 * that no event the publisher had confirmed is missing at any client (acked loss) and none came twice.
 *
 *   bun run bench/cluster/nodekill.ts [--broker redis|nats] [--clients 300] [--rate 200] [--runs 1]
 *
 * A bench, not a test: the figures are printed, never asserted (the suite's node-kill test is
 * test/hydrogen/Cluster.test.ts). Loopback only; stops by itself.
 */
import { parseArgs } from "node:util"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import Redis from "ioredis"
import { type RunningServer, startServer } from "../lib/servers.ts"

const { values } = parseArgs({
  options: {
    broker: { type: "string", default: "redis" },
    clients: { type: "string", default: "300" },
    rate: { type: "string", default: "200" },
    runs: { type: "string", default: "1" }
  }
})
const broker = values.broker === "nats" ? "nats" : "redis"
const clientCount = Number(values.clients)
const ratePerSecond = Number(values.rate)
const channel = "reliable-orders"

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

class Client {
  ws: WebSocket | undefined
  session = ""
  epoch = ""
  /** Seq of the subscription's start: events after it must all arrive. */
  from = 0
  last = 0
  duplicates = 0
  readonly seen = new Set<number>()
  downAt = 0
  timeBack: number | undefined
  stopping = false
  private nextId = 0

  constructor(
    readonly key: string,
    readonly urls: ReadonlyArray<string>,
    public node: number,
    readonly onDown: (client: Client) => void
  ) {}

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.urls[this.node]!, {
        headers: { authorization: `Key ${this.key}` },
        protocols: ["hydrogen-protocol"]
      } as unknown as string[])
      this.ws = ws
      ws.onopen = () => {
        const resuming = this.session !== ""
        const data = resuming
          ? { session: this.session, positions: { [channel]: { epoch: this.epoch, seq: this.last } } }
          : { channel }
        const action = resuming ? "resume" : "subscribe"
        const channelName = resuming ? "system" : "subscriptions"
        ws.send(JSON.stringify({ type: "command", id: `c${this.nextId++}`, channel: channelName, action, data }))
      }
      ws.onmessage = (message) => {
        const frame = JSON.parse(String(message.data))
        if (frame.type === "response") {
          if (frame.error) return reject(new Error(JSON.stringify(frame.error)))
          if (frame.action === "subscribe") {
            this.session = frame.data.session
            this.epoch = frame.data.epoch
            this.from = this.last = frame.data.seq
          } else if (frame.action === "resume") this.timeBack = performance.now() - this.downAt
          return resolve()
        }
        if (frame.type !== "event" || frame.channel !== channel) return
        if (this.seen.has(frame.seq)) this.duplicates++
        else this.seen.add(frame.seq)
        this.last = Math.max(this.last, frame.seq)
        if (frame.ack) ws.send(JSON.stringify({ type: "ack", id: frame.id }))
      }
      ws.onclose = () => {
        if (this.stopping || this.ws !== ws) return
        this.downAt = performance.now()
        this.onDown(this)
      }
      ws.onerror = () => reject(new Error("connection failed"))
    })
  }
}

const runOnce = async (run: number) => {
  const prefix = `nodekill-${process.pid}-${run}-${crypto.randomUUID().slice(0, 6)}`
  const key = `bench-${crypto.randomUUID()}`
  const nodes: Array<RunningServer> = []
  const clients: Array<Client> = []
  try {
    for (let i = 0; i < 3; i++)
      nodes.push(
        await startServer("hydrogen", {
          env: {
            HYDROGEN_KEY: key,
            CLUSTER_BROKER: broker,
            CLUSTER_PREFIX: prefix,
            CLUSTER_NODE_ID: `node-${i + 1}`,
            HYDROGEN_RECOVERY_WINDOW: "120"
          }
        })
      )
    const urls = nodes.map((node) => (node.target as { url: string }).url)
    const httpOf = (url: string) => url.replace("ws://", "http://")
    const reconnects: Array<Promise<void>> = []
    const onDown = (client: Client) => {
      // Like a client behind a load balancer: straight to a surviving node, once the close is seen.
      client.node = client.node === 2 ? clients.indexOf(client) % 2 : client.node
      reconnects.push(client.open())
    }
    for (let i = 0; i < clientCount; i++) {
      const client = new Client(key, urls, i % 3, onDown)
      await client.open()
      clients.push(client)
    }

    // The publisher posts to node 1 at a steady rate; a seq counts as acked once its POST answered.
    const confirmed: Array<number> = []
    let publishing = true
    const publisher = (async () => {
      const interval = 1000 / ratePerSecond
      let n = 0
      while (publishing) {
        const started = performance.now()
        const response = await fetch(`${httpOf(urls[0]!)}/api/publish`, {
          method: "POST",
          headers: { authorization: `Key ${key}`, "content-type": "application/json" },
          body: JSON.stringify({ channel, action: "created", data: { n: n++ }, ack: true })
        })
        if (response.ok) confirmed.push(((await response.json()) as { seq: number }).seq)
        await sleep(Math.max(0, interval - (performance.now() - started)))
      }
    })()

    await sleep(1500)
    const victim = nodes[2]!
    const killedAt = performance.now()
    process.kill(victim.pids[0]!, "SIGKILL")
    const moved = clients.filter((client) => client.node === 2)
    while (reconnects.length < moved.length && performance.now() - killedAt < 10_000) await sleep(10)
    await Promise.all(reconnects)
    await sleep(1500)
    publishing = false
    await publisher
    const lastSeq = confirmed.at(-1) ?? 0
    const deadline = performance.now() + 10_000
    while (clients.some((client) => client.last < lastSeq) && performance.now() < deadline) await sleep(20)

    let lost = 0
    let duplicates = 0
    for (const client of clients) {
      duplicates += client.duplicates
      for (const seq of confirmed) if (seq > client.from && !client.seen.has(seq)) lost++
    }
    const times = moved.map((client) => client.timeBack ?? Number.NaN).sort((a, b) => a - b)
    console.log(
      JSON.stringify({
        run,
        broker,
        clients: clientCount,
        movedClients: moved.length,
        resumed: times.filter(Number.isFinite).length,
        timeBackMs: {
          p50: Number(percentile(times, 50).toFixed(1)),
          p95: Number(percentile(times, 95).toFixed(1)),
          max: Number((times.at(-1) ?? Number.NaN).toFixed(1))
        },
        published: confirmed.length,
        ackedLoss: lost,
        duplicates
      })
    )
  } finally {
    for (const client of clients) {
      client.stopping = true
      client.ws?.close()
    }
    for (const node of nodes.slice(0, 2)) await node.stop()
    await nodes[2]?.stop().catch(() => {})
    await removeClusterState(prefix)
  }
}

/** What the run left in the broker: Redis keys under the prefix, or the JetStream stream and KV buckets. */
const removeClusterState = async (prefix: string) => {
  if (broker === "redis") {
    const redis = new Redis("redis://127.0.0.1:6379")
    const keys = await redis.keys(`${prefix}:*`)
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
    return
  }
  const connection = await connect({ servers: "127.0.0.1:4222" })
  const manager = await jetstreamManager(connection)
  for (const name of ["history", "KV_presence", "KV_nodes", "KV_tokens"]) {
    const stream = name.startsWith("KV_") ? `KV_${prefix}_${name.slice(3)}` : `${prefix}_${name}`
    await manager.streams.delete(stream).catch(() => false)
  }
  await connection.close()
}

for (let run = 1; run <= Number(values.runs); run++) await runOnce(run)
process.exit(0)
