import { rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { exportPrivatePem, exportPublicPem, generateKeyPair } from "../../src/neighbourhood/Crypto.ts"
import { freePort, liveServers, startListening, stopChild, waitFor } from "../lib/servers.ts"

/**
 * Neighbourhood servers for the bench: programs/neighbourhood.ts on loopback ports, alone or as a full mesh, and
 * the raw Bun floor on the same wire (bench/baselines/neighbourhood-raw.ts).
 */

const root = join(import.meta.dir, "..", "..")

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export interface ServerProcess {
  readonly pid: number
  readonly port: number
  readonly stop: () => Promise<void>
}

/** Starts programs/neighbourhood.ts on a loopback port with benchmark limits and the given neighbours. */
const startServer = async (
  index: number,
  port: number,
  keyPem: string,
  neighbours: Array<{ address: string; port: number; publicPem: string }>
) => {
  const dir = join(tmpdir(), `switchboard-bench-neighbourhood-${process.pid}-${port}`)
  const keyPath = `${dir}-key.pem`
  const configPath = `${dir}.json`
  writeFileSync(keyPath, keyPem, { mode: 0o600 })
  const config = {
    neighbourhood: {
      port,
      hostname: "127.0.0.1",
      address: `s${index}`,
      keyPath,
      neighbours: neighbours.map((n) => ({
        address: n.address,
        url: `ws://127.0.0.1:${n.port}/`,
        publicKey: n.publicPem
      })),
      files: { backend: "memory" },
      limits: {
        messagesPerSecond: 1_000_000,
        messageBurst: 1_000_000,
        connectionsPerSecond: 10_000,
        connectionBurst: 10_000
      },
      maxConnections: 0
    }
  }
  writeFileSync(configPath, JSON.stringify(config))
  // BENCH_PROFILE=<dir> profiles the servers, as for the other scenarios.
  const profile = process.env.BENCH_PROFILE
    ? ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]
    : []
  const child = Bun.spawn(
    [process.execPath, ...profile, join(root, "programs/neighbourhood.ts"), "--config", configPath],
    {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: "warning" },
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe"
    }
  )
  liveServers.add(child)
  const cleanup = () => {
    rmSync(keyPath, { force: true })
    rmSync(configPath, { force: true })
  }
  try {
    await waitFor(`neighbourhood server on ${port}`, async () => {
      if (child.exitCode !== null)
        throw new Error(`neighbourhood server exited: ${await new Response(child.stderr).text()}`)
      return fetch(`http://127.0.0.1:${port}/favicon.ico`).then(
        () => true,
        () => false
      )
    })
  } catch (error) {
    child.kill(9)
    cleanup()
    throw error
  }
  const server: ServerProcess = {
    pid: child.pid,
    port,
    stop: async () => {
      child.kill("SIGTERM")
      await Promise.race([child.exited, sleep(5000)])
      if (child.exitCode === null) child.kill(9)
      liveServers.delete(child)
      cleanup()
    }
  }
  return server
}

/** A mesh of `count` servers (full mesh, generated server keys). */
export const startMesh = async (count: number) => {
  const keys = await Promise.all(
    Array.from({ length: count }, async () => {
      const pair = await generateKeyPair()
      return { privatePem: await exportPrivatePem(pair.privateKey), publicPem: await exportPublicPem(pair.publicKey) }
    })
  )
  const ports = Array.from({ length: count }, () => freePort())
  const servers: Array<ServerProcess> = []
  try {
    for (let i = 0; i < count; i++) {
      const neighbours = ports
        .map((port, j) => ({ address: `s${j}`, port, publicPem: keys[j]!.publicPem }))
        .filter((_, j) => j !== i)
      servers.push(await startServer(i, ports[i]!, keys[i]!.privatePem, neighbours))
    }
  } catch (error) {
    await Promise.all(servers.map((s) => s.stop()))
    throw error
  }
  return servers
}

export type RawMode = "publish" | "verify" | "verify-async"

/** The same-wire floor: raw Bun forwarding every frame ("publish"), or verifying each public chat first ("verify"). */
export const startRaw = async (mode: RawMode): Promise<Array<ServerProcess>> => {
  const port = freePort()
  const { child } = await startListening(
    `neighbourhood-raw (${mode})`,
    [process.execPath, join(root, "bench/baselines/neighbourhood-raw.ts")],
    { PORT: String(port), MODE: mode },
    port
  )
  return [{ pid: child.pid, port, stop: () => stopChild(child) }]
}
