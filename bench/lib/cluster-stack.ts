import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect as natsConnect } from "@nats-io/transport-node"
import Redis from "ioredis"
import type { TargetConfig } from "../loadgen/Protocols.ts"
import { DRONEENGAGE_ACCOUNT, freePort, loginWorks, startListening, stopChild, waitFor } from "./servers.ts"

/**
 * The DroneEngage stack as a cluster for the bench: one authenticator and N relay processes that
 * are nodes of one Redis or NATS cluster (or one relay on the in-process broker), each relay on
 * its own port or all on one port with SO_REUSEPORT. Every run has its own cluster prefix and
 * removes its keys and buckets when it stops.
 */

const root = join(import.meta.dir, "..", "..")
export const REDIS_URL = "redis://127.0.0.1:6379"
export const NATS_URL = "nats://127.0.0.1:4222"

/**
 * Logins a load-generator worker keeps in flight against the cluster's one authenticator. At 64
 * (the other scenarios' figure) the authenticator on this shared box sometimes fell into a state
 * where it spent 30 ms of CPU per login and connects crawled at a few per second.
 */
export const LOGINS_IN_FLIGHT_PER_WORKER = 16

export type ClusterBrokerKind = "memory" | "redis" | "nats"

export interface ClusterStackOptions {
  readonly broker: ClusterBrokerKind
  readonly relays: number
  /** All relays on one port (the kernel spreads connections); otherwise one port each, clients spread by index. */
  readonly reusePort: boolean
  readonly pingIntervalMs?: number
  /** relay.infoIntervalMs: how often at most a relay sends its whole unit list to the authenticator. */
  readonly infoIntervalMs?: number
  /** A NATS server other than the shared one on 4222 (the cluster scenario's private one), and its pid. */
  readonly nats?: NatsServerRef
}

/** Where a NATS server listens and its process (for its CPU). */
export interface NatsServerRef {
  readonly url: string
  readonly pid: number | undefined
}

export interface ClusterStack {
  readonly broker: ClusterBrokerKind
  readonly relayPids: ReadonlyArray<number>
  readonly authPid: number
  /** The broker server's process (CPU from /proc), when it runs on this machine and can be found. */
  readonly brokerPid: number | undefined
  /** One port per relay, or the one shared port. */
  readonly relayPorts: ReadonlyArray<number>
  readonly prefix: string
  readonly target: TargetConfig
  /** The last lines each process wrote (authenticator first), for reports of what went wrong. */
  readonly logs: () => Array<string>
  readonly stop: () => Promise<void>
}

/** The pid of a process by its command name (/proc/<pid>/comm), e.g. redis-server. */
export const pidByName = (name: string): number | undefined => {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === name) return Number(entry)
    } catch {}
  }
  return undefined
}

/** Open file descriptors of a process (sockets included); NaN when it cannot be read. */
export const openFds = (pid: number): number => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return Number.NaN
  }
}

const brokerProcess: Record<ClusterBrokerKind, string | undefined> = {
  memory: undefined,
  redis: "redis-server",
  nats: "nats-server"
}

/** A value of a Prometheus text exposition, summed over the series whose labels contain `labels`. */
export const metricValue = (text: string, name: string, labels = ""): number => {
  let total = 0
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== "{" && line[name.length] !== " ")) continue
    if (labels && !line.includes(labels)) continue
    total += Number(line.slice(line.lastIndexOf(" ") + 1))
  }
  return total
}

const scrape = async (port: number): Promise<string> => {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  return response.text()
}

export interface BrokerCounts {
  readonly out: number
  readonly in: number
}

/** Broker messages every relay has sent and received so far (their own counters; one port per relay only). */
export const brokerCounts = async (stack: ClusterStack): Promise<BrokerCounts> => {
  const texts = await Promise.all(stack.relayPorts.map(scrape))
  const sum = (direction: string) =>
    texts.reduce(
      (total, text) =>
        total + metricValue(text, "switchboard_cluster_broker_messages_total", `direction="${direction}"`),
      0
    )
  return { out: sum("out"), in: sum("in") }
}

/** Units seated in rooms over every relay (their own gauge; one port per relay only). */
export const seatedUnits = async (stack: ClusterStack): Promise<number> => {
  const texts = await Promise.all(stack.relayPorts.map(scrape))
  return texts.reduce((total, text) => total + metricValue(text, "switchboard_de_units"), 0)
}

/**
 * A unit is seated only once its relay's claim on the broker answers, after its socket opened: until
 * every unit is, a message sent to the group would rightly miss some and count as lost.
 */
export const awaitSeated = async (stack: ClusterStack, units: number, timeoutMs = 30_000): Promise<void> => {
  const until = performance.now() + timeoutMs
  for (;;) {
    const seated = await seatedUnits(stack)
    if (seated >= units) return
    if (performance.now() > until) throw new Error(`only ${seated} of ${units} units seated after ${timeoutMs} ms`)
    await Bun.sleep(20)
  }
}

/** Redis's own count of PUBLISH + SPUBLISH calls (every client of this Redis, so other users' traffic too). */
export const redisPublishCalls = async (): Promise<number> => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    const text = await redis.info("commandstats")
    return [...text.matchAll(/^cmdstat_s?publish:calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
  } finally {
    redis.disconnect()
  }
}

/** Redis used_memory in bytes (for the broker's share of the memory per connection). */
export const redisUsedMemory = async (): Promise<number> => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    const match = /^used_memory:(\d+)/m.exec(await redis.info("memory"))
    return match ? Number(match[1]) : Number.NaN
  } finally {
    redis.disconnect()
  }
}

/** Removes what a run left on the broker: Redis keys under the prefix, NATS KV buckets of the prefix. */
const cleanBroker = async (broker: ClusterBrokerKind, prefix: string, natsUrl: string) => {
  if (broker === "redis") {
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
    try {
      await redis.connect()
      let cursor = "0"
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 5000)
        cursor = next
        if (keys.length > 0) await redis.unlink(...keys)
      } while (cursor !== "0")
    } finally {
      redis.disconnect()
    }
  } else if (broker === "nats") {
    const connection = await natsConnect({ servers: natsUrl })
    try {
      const manager = await jetstreamManager(connection)
      const names: Array<string> = []
      for await (const name of manager.streams.names()) if (name.startsWith(`KV_${prefix}_`)) names.push(name)
      for (const name of names) await manager.streams.delete(name).catch(() => false)
    } finally {
      await connection.close()
    }
  }
}

const linkedRelays = async (authPort: number): Promise<number> => {
  try {
    return metricValue(await scrape(authPort), "switchboard_de_s2s_relays")
  } catch {
    return 0
  }
}

/** Starts the authenticator and the relays; waits until every relay is linked and logins work. */
export const startClusterStack = async (options: ClusterStackOptions): Promise<ClusterStack> => {
  const [authPort, s2sPort] = [freePort(), freePort()]
  const shared = freePort()
  const relayPorts = options.reusePort ? [shared] : Array.from({ length: options.relays }, freePort)
  const secret = crypto.randomUUID() + crypto.randomUUID()
  const prefix = `bench-${process.pid}-${crypto.randomUUID().slice(0, 8)}`
  const natsUrl = options.nats?.url ?? NATS_URL
  const children: Array<ReturnType<typeof Bun.spawn>> = []
  const outputs: Array<() => string> = []
  const stopAll = async () => {
    await Promise.all(children.map(stopChild))
    await cleanBroker(options.broker, prefix, natsUrl).catch(() => {})
  }
  try {
    const auth = await startListening(
      "authenticator",
      [process.execPath, join(root, "programs/authenticator.ts")],
      {
        LOG_LEVEL: "warning",
        AUTHENTICATOR_PORT: String(authPort),
        AUTHENTICATOR_HOSTNAME: "127.0.0.1",
        AUTHENTICATOR_S2S_PORT: String(s2sPort),
        AUTHENTICATOR_S2S_HOSTNAME: "127.0.0.1",
        AUTHENTICATOR_S2S_SECRET: secret,
        AUTHENTICATOR_LOGIN_RATE_LIMIT: "100000000",
        AUTHENTICATOR_STORAGE_BACKEND: "single",
        AUTHENTICATOR_STORAGE_SINGLE_NAME: DRONEENGAGE_ACCOUNT.name,
        // The verified-code cache stays at its default (10 s): logins in flight share one argon2 run, and renew it without one.
        AUTHENTICATOR_STORAGE_SINGLE_ACCESS_CODE: DRONEENGAGE_ACCOUNT.accessCode
      },
      authPort
    )
    children.push(auth.child)
    outputs.push(auth.output)
    for (let i = 0; i < options.relays; i++) {
      const port = relayPorts[options.reusePort ? 0 : i]!
      const relay = await startListening(
        `relay ${i + 1}`,
        [process.execPath, join(root, "programs/relay.ts")],
        {
          LOG_LEVEL: "warning",
          RELAY_SERVER_ID: `relay-${i + 1}`,
          RELAY_PORT: String(port),
          RELAY_HOSTNAME: "127.0.0.1",
          RELAY_PUBLIC_HOST: "127.0.0.1",
          RELAY_AUTHENTICATOR_URL: `ws://127.0.0.1:${s2sPort}`,
          RELAY_S2S_SECRET: secret,
          RELAY_MAX_CONNECTIONS: "0",
          RELAY_TASKS_STORAGE_BACKEND: "memory",
          ...(options.pingIntervalMs ? { RELAY_PING_INTERVAL_MS: String(options.pingIntervalMs) } : {}),
          ...(options.infoIntervalMs ? { RELAY_INFO_INTERVAL_MS: String(options.infoIntervalMs) } : {}),
          CLUSTER_BROKER: options.broker,
          CLUSTER_PREFIX: prefix,
          CLUSTER_NODE_ID: `${prefix}-${i + 1}`,
          CLUSTER_REDIS_URL: REDIS_URL,
          CLUSTER_NATS_URL: natsUrl,
          CLUSTER_REUSE_PORT: String(options.reusePort)
        },
        port
      )
      children.push(relay.child)
      outputs.push(relay.output)
      // On a shared port the port answers as soon as the first relay listens: wait for each link instead.
      const linked = i + 1
      await waitFor(`relay ${linked} to link with the authenticator`, async () => {
        if (relay.child.exitCode !== null) throw new Error(`relay ${linked} exited: ${relay.output()}`)
        return (await linkedRelays(authPort)) >= linked
      })
    }
    const authUrl = `http://127.0.0.1:${authPort}`
    await waitFor("logins through the authenticator", () => loginWorks(authUrl))
    const process_ = brokerProcess[options.broker]
    return {
      broker: options.broker,
      relayPids: children.slice(1).map((child) => child.pid),
      authPid: auth.child.pid,
      brokerPid:
        options.broker === "nats" && options.nats ? options.nats.pid : process_ ? pidByName(process_) : undefined,
      relayPorts,
      prefix,
      target: {
        protocol: "droneengage",
        authUrl,
        account: DRONEENGAGE_ACCOUNT.name,
        accessCode: DRONEENGAGE_ACCOUNT.accessCode,
        ...(options.reusePort ? {} : { relayPorts })
      },
      logs: () => outputs.map((output) => output()),
      stop: stopAll
    }
  } catch (error) {
    await stopAll()
    throw error
  }
}

/** Starts a stack, runs `body`, always stops it (children and broker state). */
export const withClusterStack = async <A>(
  options: ClusterStackOptions,
  body: (stack: ClusterStack) => Promise<A>
): Promise<A> => {
  const stack = await startClusterStack(options)
  try {
    return await body(stack)
  } finally {
    await stack.stop()
  }
}
