import { existsSync } from "node:fs"
import { join } from "node:path"
import type { TargetConfig } from "../loadgen/Protocols.ts"

/**
 * Starts the servers under test as child processes on loopback (so their CPU time and memory can
 * be read from /proc) and stops them again. Every child is tracked so an interrupted run can
 * still kill it.
 */

const root = join(import.meta.dir, "..", "..")
export const liveServers = new Set<ReturnType<typeof Bun.spawn>>()

export type ServerKind = "bun-raw" | "node-ws" | "relay" | "chat"

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

/** Spawns a child with its output collected (shown when it fails to start). */
const spawn = (command: Array<string>, env: Record<string, string>) => {
  const child = Bun.spawn(command, {
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

const stopChild = async (child: ReturnType<typeof Bun.spawn>) => {
  if (child.exitCode !== null) return
  child.kill("SIGTERM")
  const exited = await Promise.race([child.exited.then(() => true), sleep(5000).then(() => false)])
  if (!exited) child.kill(9)
}

const startListening = async (label: string, command: Array<string>, env: Record<string, string>, port: number) => {
  const proc = spawn(command, env)
  try {
    await waitFor(`${label} on port ${port}`, async () => {
      if (proc.child.exitCode !== null) throw new Error(`${label} exited with ${proc.child.exitCode}: ${proc.output()}`)
      return portOpen(port)
    })
  } catch (error) {
    await stopChild(proc.child)
    throw error
  }
  return proc
}

const baseline = async (kind: "bun-raw" | "node-ws"): Promise<RunningServer> => {
  const port = freePort()
  const command = kind === "bun-raw" ? [process.execPath, join(root, "bench/baselines/bun-raw.ts")] : ["node", join(root, "bench/baselines/node-ws.mjs")]
  const { child } = await startListening(kind, command, { PORT: String(port), HOST: "127.0.0.1" }, port)
  return {
    kind,
    pids: [child.pid],
    allPids: [child.pid],
    target: { protocol: "droneengage", authUrl: `http://127.0.0.1:${port}`, account: "bench", accessCode: "bench" },
    stop: () => stopChild(child)
  }
}

/** programs/chat.ts with the original's limits raised to benchmark sizes (room size, message size, connections). */
const chat = async (): Promise<RunningServer> => {
  const port = freePort()
  const env = {
    CHAT_PORT: String(port),
    CHAT_HOSTNAME: "127.0.0.1",
    CHAT_MAX_MEMBERS_PER_ROOM: "20000",
    CHAT_MAX_CONNECTIONS: "20000",
    CHAT_MAX_MESSAGE_BYTES: "4096",
    CHAT_MAX_NICK_BYTES: "64",
    LOG_LEVEL: "warning"
  }
  const { child } = await startListening("chat", [process.execPath, join(root, "programs/chat.ts")], env, port)
  return {
    kind: "chat",
    pids: [child.pid],
    allPids: [child.pid],
    target: { protocol: "chat", url: `ws://127.0.0.1:${port}/` },
    stop: () => stopChild(child)
  }
}

export const startServer = (kind: ServerKind): Promise<RunningServer> => {
  switch (kind) {
    case "bun-raw":
    case "node-ws":
      return baseline(kind)
    case "chat":
      return chat()
    default:
      throw new Error(`${kind} is not available yet`)
  }
}

/** Our servers' programs; each is measured once its file exists in the checkout. */
const programs: Partial<Record<ServerKind, string>> = { chat: "programs/chat.ts" }

/** Baselines plus every server of ours whose program exists, in table order. */
export const availableServers = (): Array<ServerKind> =>
  (["bun-raw", "node-ws", "relay", "chat"] as const).filter((kind) => {
    if (kind === "bun-raw" || kind === "node-ws") return true
    const file = programs[kind]
    return file !== undefined && existsSync(join(root, file))
  })

export const killAllChildren = () => {
  for (const child of liveServers) child.kill(9)
}
