/**
 * The broker server's own CPU for the traffic of the cluster bench's hop: `nodes` connections (as
 * many relays) all subscribed to one channel, each publishing `rate` messages/s of `size` bytes for
 * `seconds`; the server process's CPU is read from /proc. Variants: Redis (SPUBLISH, one commands
 * and one subscriber connection per node, as RedisBroker), NATS with echo (the server sends a node's
 * own publishes back to it) and NATS with `noEcho`. The box is shared: run it several times.
 * Run: `bun run bench/brokers/server-cpu.ts [rate] [size] [seconds] [nodes]`. Other helpers' traffic on the
 * shared brokers counts too: point it at private servers with SERVER_CPU_REDIS=<port> and SERVER_CPU_NATS=<port>
 * (the server's pid is then found by its listening port).
 */
import { connect, type NatsConnection } from "@nats-io/transport-node"
import Redis from "ioredis"
import { pidByName } from "../lib/cluster-stack.ts"
import { cpuMicros, pidListeningOn } from "../lib/proc.ts"

const rate = Number(process.argv[2] ?? 160)
const size = Number(process.argv[3] ?? 32 * 1024)
const seconds = Number(process.argv[4] ?? 5)
const nodes = Number(process.argv[5] ?? 3)
const payload = new Uint8Array(size).fill(120)
const tickMillis = 10
const redisPort = Number(process.env.SERVER_CPU_REDIS ?? 6379)
const natsPort = Number(process.env.SERVER_CPU_NATS ?? 4222)

/** The broker's pid: the process listening on its port, else the first process of that name. */
const pidOnPort = (port: number, name: string): number | undefined => pidListeningOn(port) ?? pidByName(name)

interface Node {
  readonly publish: () => void
  readonly received: () => number
  readonly close: () => Promise<void>
}

/** Publishes `rate`/s from every node for `seconds`; returns the server's CPU µs per publish and deliveries per publish. */
const measure = async (name: string, serverPid: number | undefined, open: () => Promise<Node>) => {
  const all = await Promise.all(Array.from({ length: nodes }, open))
  const before = serverPid === undefined ? Number.NaN : cpuMicros(serverPid)
  const receivedBefore = all.reduce((sum, node) => sum + node.received(), 0)
  const started = performance.now()
  let published = 0
  while (performance.now() - started < seconds * 1000) {
    const due = Math.floor(((performance.now() - started) / 1000) * rate)
    for (const node of all) for (let i = published; i < due; i++) node.publish()
    published = Math.max(published, due)
    await Bun.sleep(tickMillis)
  }
  // Let the last publishes arrive before reading the counts (an idle server uses next to no CPU).
  await Bun.sleep(200)
  const elapsed = (performance.now() - started) / 1000
  const cpu = serverPid === undefined ? Number.NaN : cpuMicros(serverPid) - before
  const publishes = published * nodes
  const delivered = all.reduce((sum, node) => sum + node.received(), 0) - receivedBefore
  await Promise.all(all.map((node) => node.close()))
  console.log(
    `${name.padEnd(14)} server ${(cpu / 1e6 / elapsed).toFixed(3)} cores, ${(cpu / publishes).toFixed(1)} µs per publish, ` +
      `${(cpu / ((publishes * size) / 1024)).toFixed(2)} µs per KB in, ${(delivered / publishes).toFixed(2)} deliveries per publish`
  )
}

const channel = `bench.server-cpu.${crypto.randomUUID().slice(0, 8)}`

const natsNode = (noEcho: boolean) => async (): Promise<Node> => {
  const connection: NatsConnection = await connect({ servers: `127.0.0.1:${natsPort}`, noEcho })
  let received = 0
  connection.subscribe(channel, { callback: () => void received++ })
  await connection.flush()
  return {
    publish: () => connection.publish(channel, payload),
    received: () => received,
    close: () => connection.close()
  }
}

const redisNode = async (): Promise<Node> => {
  const commands = new Redis(`redis://127.0.0.1:${redisPort}`)
  const subscriber = new Redis(`redis://127.0.0.1:${redisPort}`)
  let received = 0
  subscriber.on("smessageBuffer", () => void received++)
  await subscriber.ssubscribe(channel)
  const bytes = Buffer.from(payload)
  return {
    publish: () => void commands.spublish(channel, bytes),
    received: () => received,
    close: async () => {
      commands.disconnect()
      subscriber.disconnect()
    }
  }
}

console.log(
  `${nodes} nodes × ${rate} publishes/s of ${size} bytes for ${seconds} s, one channel, loopback ` +
    `(redis pid ${pidOnPort(redisPort, "redis-server")}, nats pid ${pidOnPort(natsPort, "nats-server")})`
)
// SERVER_CPU_ONLY=redis|echo|noEcho runs one variant (e.g. while tracing the server).
const only = process.env.SERVER_CPU_ONLY
if (!only || only === "redis") await measure("redis", pidOnPort(redisPort, "redis-server"), redisNode)
if (!only || only === "echo") await measure("nats echo", pidOnPort(natsPort, "nats-server"), natsNode(false))
if (!only || only === "noEcho") await measure("nats noEcho", pidOnPort(natsPort, "nats-server"), natsNode(true))
process.exit(0)
