import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { freePort, pollUntil } from "./redisCluster.ts"
import { reachable } from "./services.ts"

const natsServerPath = Bun.which("nats-server") ?? Bun.which("nats-server", { PATH: "/usr/sbin:/usr/bin" })

/** Whether nats-server is here; outside CI its absence skips with a printed reason, in CI it fails. */
export const natsServerAvailable = (() => {
  if (natsServerPath !== null) return true
  const reason = "nats-server not found on PATH or in /usr/sbin"
  if (process.env.CI === "true") throw new Error(`${reason}; CI requires it for the NATS restart tests`)
  console.warn(`skipping NATS restart tests: ${reason}`)
  return false
})()

/**
 * The server runs under a `sh` that kills it and removes its JetStream store when this process's end
 * of its stdin closes (`stop`, `restartWithoutStorage`, or this process ending in any way); a subshell
 * kills it too when the `sh` is gone (bun kills its children, not theirs, when a test times out).
 */
const watchdog = [
  '"$NATS_SERVER" "$@" & server=$!',
  '(while kill -0 $$ 2>/dev/null; do sleep 1; done; kill -9 $server 2>/dev/null; sleep 1; rm -rf "$STORE_DIR") & orphanCheck=$!',
  'read _; kill $orphanCheck; kill -9 $server 2>/dev/null; wait $server; rm -rf "$STORE_DIR"'
].join("\n")

/**
 * A private nats-server with JetStream on a free loopback port, for tests that kill it (never the
 * shared one on 4222). `restartWithoutStorage` SIGKILLs it, deletes its store and starts it again on
 * the same port: every stream and KV bucket is gone.
 */
export const startNatsServer = () => startNatsServerWith({})

/** `startNatsServer` with extra environment for the server (e.g. the bench's `GOMAXPROCS=1`). */
export const startNatsServerWith = async (options: { readonly env?: Record<string, string> }) => {
  const port = await freePort()
  const monitorPort = await freePort()
  const root = mkdtempSync(join(tmpdir(), "sb-nats-"))
  let running: Subprocess<"pipe", "ignore", "ignore"> | undefined
  let starts = 0
  const launch = async () => {
    const store = join(root, String(++starts))
    running = Bun.spawn(
      [
        "sh",
        "-c",
        watchdog,
        "sh",
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        String(port),
        "-m",
        String(monitorPort),
        "-sd",
        store
      ],
      {
        stdin: "pipe",
        stdout: "ignore",
        stderr: "ignore",
        env: { ...process.env, ...options.env, NATS_SERVER: natsServerPath!, STORE_DIR: store }
      }
    )
    await pollUntil(`nats-server on ${port}`, async () =>
      (await reachable("127.0.0.1", port, 200)) ? true : undefined
    )
  }
  const kill = async () => {
    if (running === undefined) return
    running.stdin.end()
    await running.exited
    running = undefined
  }
  await launch()
  return {
    url: `127.0.0.1:${port}`,
    port,
    /** How many client connections the server holds now (its monitoring endpoint). */
    connections: async () =>
      ((await (await fetch(`http://127.0.0.1:${monitorPort}/varz`)).json()) as { connections: number }).connections,
    restartWithoutStorage: async () => {
      await kill()
      await launch()
    },
    stop: async () => {
      await kill()
      rmSync(root, { recursive: true, force: true })
    }
  }
}
