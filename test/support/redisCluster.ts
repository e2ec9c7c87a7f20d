import { mkdtempSync, mkdirSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "bun:test"
import type { Subprocess } from "bun"
import Redis from "ioredis"
import { reachable } from "./services.ts"

/**
 * A real Redis Cluster for tests, started from the redis-server on PATH: `masters` masters with one
 * replica each, on free loopback ports, in a temp dir, with a 1 s node timeout so a failover takes
 * a couple of seconds. Every server runs under a `sh` that, when this process's end of its stdin
 * closes (`stop`, or this process exiting in any way, SIGKILL included), kills the server, waits for
 * it and removes its directory: bun test runs no exit hooks. A subshell checks every second that the
 * `sh` is still there and kills the server when it is not (bun kills its children, not theirs, when
 * a test times out).
 */
const watchdog = [
  'redis-server "$@" & server=$!',
  'cleanup() { rm -rf "$NODE_DIR"; rmdir "$ROOT_DIR" 2>/dev/null; }',
  "(while kill -0 $$ 2>/dev/null; do sleep 1; done; kill -9 $server 2>/dev/null; sleep 1; cleanup) & orphanCheck=$!",
  "read _; kill $orphanCheck; kill -9 $server 2>/dev/null; wait $server; cleanup"
].join("\n")

/** Whether redis-server and redis-cli are here; outside CI their absence skips with a printed reason, in CI it fails. */
export const redisClusterAvailable = (() => {
  const missing = ["redis-server", "redis-cli"].filter((program) => Bun.which(program) === null)
  if (missing.length === 0) return true
  const reason = `${missing.join(" and ")} not found on PATH`
  if (process.env.CI === "true") throw new Error(`${reason}; CI requires it for the Redis Cluster tests`)
  console.warn(`skipping Redis Cluster tests: ${reason}`)
  return false
})()

export interface ClusterNodeInfo {
  readonly id: string
  readonly port: number
  readonly role: "master" | "replica"
  /** For a replica, the id of its master. */
  readonly masterId: string | undefined
  readonly failed: boolean
}

interface Server {
  readonly port: number
  readonly busPort: number
  readonly dir: string
  /** Its watchdogs: one per start (a killed server's one still removes the directory at the end). */
  readonly watchdogs: Array<Subprocess<"pipe", "ignore", "ignore">>
  pid: number | undefined
  /** SIGSTOPped: it accepts connections and answers nothing. */
  paused: boolean
}

/** A free loopback port (closed again at once; the server binds it just after). */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

/** Bounded polling of an external process's state (real time: these are other processes, not TestClock). */
export const pollUntil = async <A>(what: string, probe: () => Promise<A | undefined>, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`test fixture: timed out waiting for ${what}`)
    await Bun.sleep(50)
  }
}

/** One command on one node, on a connection of its own that never retries. */
export const nodeCommand = async (port: number, ...args: Array<string>): Promise<unknown> => {
  const redis = new Redis({
    port,
    host: "127.0.0.1",
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    // A paused server accepts the connection and answers nothing: a poll asking it must go on.
    commandTimeout: 10_000
  })
  redis.on("error", () => {})
  try {
    await redis.connect()
    return await redis.call(args[0]!, ...args.slice(1))
  } finally {
    redis.disconnect()
  }
}

const parseNodes = (text: string): Array<ClusterNodeInfo> =>
  text
    .trim()
    .split("\n")
    .map((line) => {
      const [id, address, flags, master] = line.split(" ")
      const flagList = flags!.split(",")
      return {
        id: id!,
        port: Number(address!.split("@")[0]!.split(":")[1]),
        role: flagList.includes("master") ? "master" : "replica",
        masterId: master === "-" ? undefined : master,
        failed: flagList.includes("fail") || flagList.includes("fail?") || flagList.includes("noaddr")
      } as const
    })

/** A server that could not bind its port (another process took it between our probe and its start). */
class PortTaken extends Error {}

/** Starts a cluster; a port taken by someone else meanwhile means a new try on new ports (at most 3). */
export const startRedisCluster = async (options: { masters?: number } = {}) => {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options.masters ?? 3)
    } catch (error) {
      if (!(error instanceof PortTaken) || attempt === 3) throw error
    }
  }
}

const startOnce = async (masters: number) => {
  const root = mkdtempSync(join(tmpdir(), "sb-redis-cluster-"))
  const servers: Array<Server> = []
  for (let i = 0; i < masters * 2; i++) {
    const port = await freePort()
    const dir = join(root, String(port))
    mkdirSync(dir)
    servers.push({ port, busPort: await freePort(), dir, watchdogs: [], pid: undefined, paused: false })
  }
  const byPort = (port: number) => servers.find((server) => server.port === port)!

  const launch = async (server: Server) => {
    const args = [
      ...["--port", String(server.port), "--cluster-port", String(server.busPort), "--bind", "127.0.0.1"],
      ...["--cluster-enabled", "yes", "--cluster-node-timeout", "1000", "--cluster-config-file", "nodes.conf"],
      ...[
        "--save",
        "",
        "--appendonly",
        "no",
        "--repl-diskless-sync-delay",
        "0",
        "--dir",
        server.dir,
        "--logfile",
        "redis.log"
      ]
    ]
    const started = Bun.spawn(["sh", "-c", watchdog, "sh", ...args], {
      stdin: "pipe",
      stdout: "ignore",
      stderr: "ignore",
      env: { ...process.env, NODE_DIR: server.dir, ROOT_DIR: root }
    })
    server.watchdogs.push(started)
    const log = join(server.dir, "redis.log")
    const up = await pollUntil(`redis-server on ${server.port}`, async () => {
      if (await reachable("127.0.0.1", server.port, 200)) return "up"
      const text = await Bun.file(log)
        .text()
        .catch(() => "")
      return /Could not create server TCP listening socket/.test(text) ? "port taken" : undefined
    })
    if (up === "port taken") throw new PortTaken(`redis-server could not bind ${server.port} or ${server.busPort}`)
    const info = String(await nodeCommand(server.port, "INFO", "server"))
    server.pid = Number(/process_id:(\d+)/.exec(info)![1])
  }
  /** Ends every watchdog, which kills its server and removes its directory; then removes what is left. */
  const destroy = async () => {
    const watchdogs = servers.flatMap((server) => server.watchdogs)
    for (const running of watchdogs) running.stdin.end()
    await Promise.all(watchdogs.map((running) => running.exited))
    rmSync(root, { recursive: true, force: true })
  }

  const running = () => servers.find((server) => server.pid !== undefined && !server.paused)!.port
  const nodes = async (askPort?: number) =>
    parseNodes(String(await nodeCommand(askPort ?? running(), "CLUSTER", "NODES")))
  /** The master that serves `key`'s slot now, as a running node sees it. */
  const masterOf = async (key: string) => {
    const slot = Number(await nodeCommand(running(), "CLUSTER", "KEYSLOT", key))
    const shards = (await nodeCommand(running(), "CLUSTER", "SLOTS")) as Array<[number, number, [string, number]]>
    return shards.find(([from, to]) => from <= slot && slot <= to)![2][1]
  }
  /** Every running server says the cluster is ok and sees one healthy master with a synced replica per shard. */
  const healthy = async () => {
    for (const server of servers) {
      if (server.pid === undefined) continue
      if (!String(await nodeCommand(server.port, "CLUSTER", "INFO")).includes("cluster_state:ok")) return undefined
      const seen = await nodes(server.port)
      if (seen.some((node) => node.failed)) return undefined
      if (seen.filter((node) => node.role === "master").length !== masters) return undefined
      const replication = String(await nodeCommand(server.port, "INFO", "replication"))
      if (replication.includes("role:slave") && !replication.includes("master_link_status:up")) return undefined
    }
    return true
  }

  try {
    await Promise.all(servers.map(launch))
    const create = Bun.spawn(
      [
        "redis-cli",
        "--cluster",
        "create",
        ...servers.map((server) => `127.0.0.1:${server.port}`),
        "--cluster-replicas",
        "1",
        "--cluster-yes"
      ],
      { stdout: "pipe", stderr: "pipe" }
    )
    if ((await create.exited) !== 0)
      throw new Error(`redis-cli --cluster create failed: ${await new Response(create.stdout).text()}`)
    await pollUntil("the new cluster to be ok with its replicas synced", healthy)
  } catch (error) {
    await destroy()
    throw error
  }

  return {
    /** The seed URL the layers take: every node of the cluster. */
    url: `redis-cluster://${servers.map((server) => `127.0.0.1:${server.port}`).join(",")}`,
    ports: servers.map((server) => server.port),
    nodes,
    masterOf,
    /**
     * Waits until the replica of the master on `port` has every write the master took so far: WAIT
     * counts only its own connection's writes, so it writes a key of that master first (replication
     * is one ordered stream, so the replica holding that write holds all before it).
     */
    replicated: async (port: number) => {
      let marker = 0
      while ((await masterOf(`fixture-marker-${marker}`)) !== port) marker++
      const redis = new Redis({ port, host: "127.0.0.1", retryStrategy: () => null })
      redis.on("error", () => {})
      try {
        await redis.set(`fixture-marker-${marker}`, "1")
        return Number(await redis.call("WAIT", "1", "10000"))
      } finally {
        redis.disconnect()
      }
    },
    /** The port of the replica of the master on `port`. */
    replicaOf: async (port: number) => {
      const seen = await nodes()
      const master = seen.find((node) => node.port === port)
      const replica = seen.find((node) => node.role === "replica" && node.masterId === master?.id)
      if (replica === undefined) throw new Error(`no replica of the master on ${port}`)
      return replica.port
    },
    /** SIGKILL, SIGSTOP or SIGCONT to the server on `port`; a killed one is started again by `restart`. */
    signal: (port: number, signal: "SIGKILL" | "SIGSTOP" | "SIGCONT") => {
      const server = byPort(port)
      process.kill(server.pid!, signal)
      if (signal === "SIGKILL") server.pid = undefined
      server.paused = signal === "SIGSTOP"
    },
    /** Starts a killed server again with its nodes.conf: it rejoins the cluster (as a replica if it was failed over). */
    restart: (port: number) => launch(byPort(port)),
    /** Resumes paused servers, starts every killed one again and waits until the cluster is whole (a test that failed half-way leaves it so). */
    heal: async () => {
      for (const server of servers.filter((server) => server.paused)) {
        process.kill(server.pid!, "SIGCONT")
        server.paused = false
      }
      await Promise.all(servers.filter((server) => server.pid === undefined).map(launch))
      await pollUntil("the cluster to be ok again with every shard replicated", healthy, 30_000)
    },
    stop: destroy
  }
}

/**
 * One private redis-server (no cluster, no persistence) under the same watchdog: for tests that pause or
 * stop their Redis, which the shared one on 6379 must not be.
 */
export const startRedisServer = async () => {
  const root = mkdtempSync(join(tmpdir(), "sb-redis-"))
  const port = await freePort()
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", root]
  const watched = Bun.spawn(["sh", "-c", watchdog, "sh", ...args], {
    stdin: "pipe",
    stdout: "ignore",
    stderr: "ignore",
    env: { ...process.env, NODE_DIR: root, ROOT_DIR: root }
  })
  const stop = async () => {
    watched.stdin.end()
    await watched.exited
    rmSync(root, { recursive: true, force: true })
  }
  try {
    await pollUntil(`redis-server on ${port}`, async () =>
      (await reachable("127.0.0.1", port, 200)) ? true : undefined
    )
    const pid = Number(/process_id:(\d+)/.exec(String(await nodeCommand(port, "INFO", "server")))![1])
    // The port may have been taken by another process meanwhile: never signal one that is not our server.
    const parent = Number((await Bun.file(`/proc/${pid}/stat`).text()).split(") ")[1]!.split(" ")[1])
    if (parent !== watched.pid) throw new Error(`port ${port} was taken by another process`)
    return {
      url: `redis://127.0.0.1:${port}`,
      port,
      /** SIGSTOP or SIGCONT to the server: a paused Redis keeps its connections open and answers nothing. */
      signal: (signal: "SIGSTOP" | "SIGCONT") => process.kill(pid, signal),
      stop
    }
  } catch (error) {
    await stop()
    throw error
  }
}

export type RedisClusterFixture = Awaited<ReturnType<typeof startOnce>>

/** A cluster of the calling test file's own (for tests that kill or pause its nodes); the getter is valid in tests. */
export const ownRedisCluster = () => {
  let cluster: RedisClusterFixture | undefined
  beforeAll(async () => {
    if (redisClusterAvailable) cluster = await startRedisCluster()
  })
  afterAll(() => cluster?.stop())
  return () => cluster!
}

/** The first i whose `candidate(i)` has its slot on the master at `port`. */
export const firstOnMaster = async (cluster: RedisClusterFixture, port: number, candidate: (i: number) => string) => {
  for (let i = 0; i < 500; i++) if ((await cluster.masterOf(candidate(i))) === port) return i
  throw new Error(`no candidate key on ${port}`)
}
