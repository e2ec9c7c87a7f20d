import { existsSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TargetConfig } from "../loadgen/Protocols.ts"

/**
 * Starts the servers under test as child processes on loopback (so their CPU time and memory can
 * be read from /proc) and stops them again. Every child is tracked so an interrupted run can
 * still kill it.
 */

const root = join(import.meta.dir, "..", "..")
export const liveServers = new Set<ReturnType<typeof Bun.spawn>>()

export type ServerKind = "bun-raw" | "node-ws" | "transport" | "relay" | "chat" | "hydrogen"

/** How a scenario wants a server configured beyond the benchmark defaults. */
export interface ServerOptions {
  /** Heartbeat period (our servers and Node ws ping every interval; raw Bun's uWS pings sockets idle for twice it). */
  readonly pingIntervalMs?: number
  /** Extra environment for every program of the server (config keys the bench leaves at their defaults). */
  readonly env?: Record<string, string>
}

export interface RunningServer {
  readonly kind: ServerKind
  /** Processes whose CPU and memory are the server's cost (the relay, not the authenticator). */
  readonly pids: ReadonlyArray<number>
  /** Every process of the server (the relay plus its authenticator). */
  readonly allPids: ReadonlyArray<number>
  readonly target: TargetConfig
  readonly stop: () => Promise<void>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A free loopback port: bind port 0, read it, release it. */
export const freePort = (): number => {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
  const port = probe.port
  probe.stop(true)
  return port
}

const portOpen = async (port: number): Promise<boolean> => {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } })
    socket.end()
    return true
  } catch {
    return false
  }
}

export const waitFor = async (what: string, probe: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> => {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    if (await probe()) return
    await sleep(50)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/**
 * BENCH_PROFILE=<dir> runs every Bun server under test with --cpu-prof (plus a Markdown digest),
 * written to <dir> when the server stops: the way to find where a server spends its time.
 */
const profiled = (command: Array<string>): Array<string> => {
  const dir = process.env.BENCH_PROFILE
  if (!dir || command[0] !== process.execPath) return command
  return [command[0]!, "--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${dir}`, ...command.slice(1)]
}

/** The hook that collects garbage and reports heap figures on SIGUSR2 (bench/lib/gc-hook.mjs), loaded into every server. */
const gcHook = join(import.meta.dir, "gc-hook.mjs")
const withGcHook = (command: Array<string>): Array<string> => {
  if (command[0] === process.execPath) return [command[0], "--preload", gcHook, ...command.slice(1)]
  if (command[0] === "node") return ["node", "--expose-gc", "--import", gcHook, ...command.slice(1)]
  return command
}

/** Spawns a child with its output collected (shown when it fails to start). */
const spawn = (command: Array<string>, env: Record<string, string>) => {
  const child = Bun.spawn(profiled(withGcHook(command)), {
    cwd: root,
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe"
  })
  liveServers.add(child)
  void child.exited.then(() => liveServers.delete(child))
  let output = ""
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder()
    const reader = stream.getReader()
    while (true) {
      const { done, value } = await reader.read()
      if (done) return
      output = (output + decoder.decode(value)).slice(-4000)
    }
  }
  void collect(child.stdout as ReadableStream<Uint8Array>)
  void collect(child.stderr as ReadableStream<Uint8Array>)
  return { child, output: () => output }
}

export const stopChild = async (child: ReturnType<typeof Bun.spawn>) => {
  if (child.exitCode !== null) return
  child.kill("SIGTERM")
  const exited = await Promise.race([child.exited.then(() => true), sleep(5000).then(() => false)])
  if (!exited) child.kill(9)
}

/** Spawns a program and waits until it accepts TCP connections on `port` (the fuzz suite starts servers with it). */
export const startListening = async (
  label: string,
  command: Array<string>,
  env: Record<string, string>,
  port: number,
  timeoutMs?: number
) => {
  const proc = spawn(command, env)
  try {
    await waitFor(
      `${label} on port ${port}`,
      async () => {
        if (proc.child.exitCode !== null)
          throw new Error(`${label} exited with ${proc.child.exitCode}: ${proc.output()}`)
        return portOpen(port)
      },
      timeoutMs
    )
  } catch (error) {
    await stopChild(proc.child)
    throw error
  }
  return proc
}

const baselineCommand: Record<"bun-raw" | "node-ws" | "transport", Array<string>> = {
  "bun-raw": [process.execPath, join(root, "bench/baselines/bun-raw.ts")],
  "node-ws": ["node", join(root, "bench/baselines/node-ws.mjs")],
  transport: [process.execPath, join(root, "bench/baselines/transport.ts")]
}

const baseline = async (kind: "bun-raw" | "node-ws" | "transport", options: ServerOptions): Promise<RunningServer> => {
  const port = freePort()
  const command = baselineCommand[kind]
  const env: Record<string, string> = { PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "warning", ...options.env }
  if (options.pingIntervalMs) {
    env.PING_INTERVAL_MS = String(options.pingIntervalMs)
    env.IDLE_TIMEOUT_S = String(Math.max(1, Math.round((2 * options.pingIntervalMs) / 1000)))
  }
  const { child } = await startListening(kind, command, env, port)
  return {
    kind,
    pids: [child.pid],
    allPids: [child.pid],
    target: { protocol: "droneengage", authUrl: `http://127.0.0.1:${port}`, account: "bench", accessCode: "bench" },
    stop: () => stopChild(child)
  }
}

/** programs/chat.ts with the original's limits raised to benchmark sizes (room size, message size, connections). */
const chat = async (options: ServerOptions): Promise<RunningServer> => {
  const port = freePort()
  const env: Record<string, string> = {
    CHAT_PORT: String(port),
    CHAT_HOSTNAME: "127.0.0.1",
    CHAT_MAX_MEMBERS_PER_ROOM: "20000",
    CHAT_MAX_CONNECTIONS: "20000",
    CHAT_MAX_MESSAGE_BYTES: "4096",
    CHAT_MAX_NICK_BYTES: "64",
    // Load generators send far faster than people: the per-connection limiter still runs, it just never refuses.
    CHAT_MESSAGES_PER_SECOND: "1000000",
    CHAT_MESSAGE_BURST: "1000000",
    LOG_LEVEL: "warning"
  }
  if (options.pingIntervalMs) env.CHAT_PING_INTERVAL_MS = String(options.pingIntervalMs)
  Object.assign(env, options.env)
  const { child } = await startListening("chat", [process.execPath, join(root, "programs/chat.ts")], env, port)
  return {
    kind: "chat",
    pids: [child.pid],
    allPids: [child.pid],
    target: { protocol: "chat", url: `ws://127.0.0.1:${port}/` },
    stop: () => stopChild(child)
  }
}

/** The DroneEngage bench account (single-account storage: no database, codes still hashed). */
export const DRONEENGAGE_ACCOUNT = { name: "bench", accessCode: "bench-access-code-0001" }

export const loginWorks = async (authUrl: string): Promise<boolean> => {
  try {
    const response = await fetch(`${authUrl}/w/wl`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ acc: DRONEENGAGE_ACCOUNT.name, pwd: DRONEENGAGE_ACCOUNT.accessCode, gr: "probe" })
    })
    return ((await response.json()) as { e?: number }).e === 0
  } catch {
    return false
  }
}

/**
 * programs/authenticator.ts + programs/relay.ts, linked with a random S2S secret. The relay is the
 * measured process; the authenticator counts in churn (allPids). Login rate limit raised for the
 * load generator's thousands of logins.
 */
const relay = async (options: ServerOptions): Promise<RunningServer> => {
  const [authPort, s2sPort, relayPort] = [freePort(), freePort(), freePort()]
  const secret = crypto.randomUUID() + crypto.randomUUID()
  const common = { LOG_LEVEL: "warning" }
  const auth = await startListening(
    "authenticator",
    [process.execPath, join(root, "programs/authenticator.ts")],
    {
      ...common,
      AUTHENTICATOR_PORT: String(authPort),
      AUTHENTICATOR_HOSTNAME: "127.0.0.1",
      AUTHENTICATOR_S2S_PORT: String(s2sPort),
      AUTHENTICATOR_S2S_HOSTNAME: "127.0.0.1",
      AUTHENTICATOR_S2S_SECRET: secret,
      AUTHENTICATOR_LOGIN_RATE_LIMIT: "100000000",
      AUTHENTICATOR_STORAGE_BACKEND: "single",
      AUTHENTICATOR_STORAGE_SINGLE_NAME: DRONEENGAGE_ACCOUNT.name,
      AUTHENTICATOR_STORAGE_SINGLE_ACCESS_CODE: DRONEENGAGE_ACCOUNT.accessCode,
      ...options.env
    },
    authPort
  )
  const relayEnv: Record<string, string> = {
    ...common,
    RELAY_PORT: String(relayPort),
    RELAY_HOSTNAME: "127.0.0.1",
    RELAY_PUBLIC_HOST: "127.0.0.1",
    RELAY_AUTHENTICATOR_URL: `ws://127.0.0.1:${s2sPort}`,
    RELAY_S2S_SECRET: secret,
    RELAY_MAX_CONNECTIONS: "0",
    // The bench never stores tasks: no data file in the working tree.
    RELAY_TASKS_STORAGE_BACKEND: "memory"
  }
  if (options.pingIntervalMs) relayEnv.RELAY_PING_INTERVAL_MS = String(options.pingIntervalMs)
  Object.assign(relayEnv, options.env)
  let relayProcess: Awaited<ReturnType<typeof startListening>> | undefined
  try {
    relayProcess = await startListening(
      "relay",
      [process.execPath, join(root, "programs/relay.ts")],
      relayEnv,
      relayPort
    )
    const authUrl = `http://127.0.0.1:${authPort}`
    await waitFor("the relay to link with the authenticator", () => loginWorks(authUrl))
    const [authChild, relayChild] = [auth.child, relayProcess.child]
    return {
      kind: "relay",
      pids: [relayChild.pid],
      allPids: [relayChild.pid, authChild.pid],
      target: {
        protocol: "droneengage",
        authUrl,
        account: DRONEENGAGE_ACCOUNT.name,
        accessCode: DRONEENGAGE_ACCOUNT.accessCode
      },
      stop: async () => {
        await stopChild(relayChild)
        await stopChild(authChild)
      }
    }
  } catch (error) {
    if (relayProcess) await stopChild(relayProcess.child)
    await stopChild(auth.child)
    throw error
  }
}

/** Reliable channels of the Hydrogen bench config: every group whose name starts with this. */
export const HYDROGEN_RELIABLE_PREFIX = "reliable"

/** A hydrogen-protocol server on a loopback port with an API key: where the Hydrogen clients go (reliable channel). */
export const hydrogenTarget = (port: number, key: string): TargetConfig => ({
  protocol: "hydrogen",
  url: `ws://127.0.0.1:${port}/`,
  key,
  subprotocol: "hydrogen-protocol",
  reliable: true
})

/** programs/hydrogen.ts from a JSON config: one API key, reliable channels, limits raised to benchmark sizes. */
const hydrogen = async (options: ServerOptions): Promise<RunningServer> => {
  const port = freePort()
  const key = crypto.randomUUID()
  const configPath = join(tmpdir(), `switchboard-bench-hydrogen-${process.pid}-${port}.json`)
  const config = {
    hydrogen: {
      Port: port,
      Interface: "127.0.0.1",
      Key: key,
      ReliableChannels: [`${HYDROGEN_RELIABLE_PREFIX}*`],
      MaxConnections: 20000,
      ConnectionRatePerSecond: 1_000_000,
      ConnectionBurst: 1_000_000,
      MessageRatePerSecond: 10_000_000,
      MessageBurst: 10_000_000,
      ...(options.pingIntervalMs ? { pingIntervalMs: options.pingIntervalMs } : {})
    }
  }
  writeFileSync(configPath, JSON.stringify(config))
  try {
    const { child } = await startListening(
      "hydrogen",
      [process.execPath, join(root, "programs/hydrogen.ts"), "--config", configPath],
      { LOG_LEVEL: "warning", ...options.env },
      port
    )
    return {
      kind: "hydrogen",
      pids: [child.pid],
      allPids: [child.pid],
      target: hydrogenTarget(port, key),
      stop: async () => {
        await stopChild(child)
        rmSync(configPath, { force: true })
      }
    }
  } catch (error) {
    rmSync(configPath, { force: true })
    throw error
  }
}

export const startServer = (kind: ServerKind, options: ServerOptions = {}): Promise<RunningServer> => {
  switch (kind) {
    case "bun-raw":
    case "node-ws":
    case "transport":
      return baseline(kind, options)
    case "chat":
      return chat(options)
    case "hydrogen":
      return hydrogen(options)
    case "relay":
      return relay(options)
  }
}

/** Our servers' programs; each is measured once its file exists in the checkout. */
const programs: Partial<Record<ServerKind, string>> = {
  relay: "programs/relay.ts",
  chat: "programs/chat.ts",
  hydrogen: "programs/hydrogen.ts"
}

/** Baselines plus every server of ours whose program exists, in table order. */
export const availableServers = (): Array<ServerKind> =>
  (["bun-raw", "node-ws", "transport", "relay", "chat", "hydrogen"] as const).filter((kind) => {
    if (kind === "bun-raw" || kind === "node-ws" || kind === "transport") return true
    const file = programs[kind]
    return file !== undefined && existsSync(join(root, file))
  })

export const killAllChildren = () => {
  for (const child of liveServers) child.kill(9)
}
