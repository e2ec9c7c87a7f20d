import { afterAll, describe, expect } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { it } from "../support/effect.ts"
import { hasOpenssl, selfSigned } from "../support/tls.ts"
import { connectWs } from "../support/WsClient.ts"

/** Free loopback ports, found by binding port 0 and releasing it. */
const freePorts = (count: number) =>
  Array.from({ length: count }, () => {
    const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() })
    const port = probe.port!
    probe.stop(true)
    return port
  })

class PortTaken extends Error {}

/** Whether this machine has an IPv6 loopback to test dual-stack listening on. */
const hasIpv6Loopback = () => {
  try {
    Bun.serve({ port: 0, hostname: "::1", fetch: () => new Response() }).stop(true)
    return true
  } catch {
    return false
  }
}

/** Temp directories of this file's programs, removed when its tests end. */
const tempDirs: Array<string> = []
const makeTempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "sb-stack-"))
  tempDirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})

/** Collects a child's log stream as it comes, so its pipe never fills, and lets a test await a line. */
const drainLogs = (stream: ReadableStream<Uint8Array>) => {
  let text = ""
  let waiters: Array<{ pattern: RegExp; resolve: () => void }> = []
  const done = (async () => {
    const decoder = new TextDecoder()
    const reader = stream.getReader()
    while (true) {
      const { value, done } = await reader.read()
      if (done) break
      text += decoder.decode(value, { stream: true })
      waiters = waiters.filter((waiter) => !(waiter.pattern.test(text) && (waiter.resolve(), true)))
    }
  })()
  return {
    text: () => done.then(() => text),
    waitFor: (pattern: RegExp) =>
      pattern.test(text) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ pattern, resolve }))
  }
}

/** Spawns `npm start`'s program in a temp directory on free ports and waits for its banner. */
const spawnStack = async (extraEnv: Record<string, string> = {}) => {
  const [auth, s2s, relay, chat, hydrogen, neighbourhood] = freePorts(6)
  const dir = makeTempDir()
  const child = Bun.spawn([process.execPath, "run", join(import.meta.dir, "../../programs/stack.ts")], {
    cwd: dir,
    env: {
      ...process.env,
      AUTHENTICATOR_PORT: String(auth),
      AUTHENTICATOR_S2S_PORT: String(s2s),
      RELAY_PORT: String(relay),
      RELAY_AUTHENTICATOR_URL: `ws://127.0.0.1:${s2s}`,
      CHAT_PORT: String(chat),
      HYDROGEN_PORT: String(hydrogen),
      NEIGHBOURHOOD_PORT: String(neighbourhood),
      // Info level: the test awaits the authenticator's "relay ... linked" line.
      LOG_LEVEL: "info",
      ...extraEnv
    },
    stdout: "pipe",
    stderr: "pipe"
  })
  const logs = drainLogs(child.stderr)
  const reader = child.stdout.getReader()
  let banner = ""
  while (!banner.includes("Stop with Ctrl-C.")) {
    const { value, done } = await reader.read()
    if (done) {
      const output = `${banner}${await logs.text()}`
      // Another process took a probed port between the probe and the bind: try other ports.
      throw output.includes("in use?") ? new PortTaken(output) : new Error(`stack exited early: ${output}`)
    }
    banner += new TextDecoder().decode(value)
  }
  reader.releaseLock()
  return { child, banner, dir, logs, ports: { auth, s2s, relay, chat, hydrogen, neighbourhood } }
}

/** The running stack, stopped with SIGTERM when the test's scope closes. */
const startStack = (extraEnv: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.tryPromise({ try: () => spawnStack(extraEnv), catch: (error) => error as Error }).pipe(
      Effect.retry({ times: 3, while: (error) => error instanceof PortTaken }),
      Effect.orDie
    ),
    ({ child }) => Effect.promise(() => (child.kill("SIGTERM"), child.exited))
  )

describe("npm start (programs/stack.ts)", () => {
  it.live(
    "starts every server, prints where they listen and the dev account, and stops cleanly",
    () =>
      Effect.gen(function* () {
        const stack = yield* startStack()
        const { ports } = stack
        expect(stack.banner).toContain(`http://127.0.0.1:${ports.auth}`)
        expect(stack.banner).toContain(`ws://127.0.0.1:${ports.relay}`)
        expect(stack.banner).toContain(`ws://127.0.0.1:${ports.chat}`)
        expect(stack.banner).toContain(`ws://127.0.0.1:${ports.neighbourhood}`)
        const [, name, code] = /dev account: (\w+) \/ ([0-9a-f]{32})/.exec(stack.banner) ?? []
        expect(name).toBe("dev")

        // The relay links to the authenticator in the background; a login succeeds once it has.
        yield* Effect.promise(() => stack.logs.waitFor(/relay \S+ linked/))
        const response = yield* Effect.promise(() =>
          fetch(`http://127.0.0.1:${ports.auth}/w/wl`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ acc: name, pwd: code, gr: "1", app: "test", ver: "1", ex: "" })
          })
        )
        const login: any = yield* Effect.promise(() => response.json())
        expect(login).toMatchObject({ e: 0, cs: { g: "127.0.0.1", h: ports.relay } })
        const gcs = yield* connectWs(`ws://127.0.0.1:${ports.relay}/?f=${login.cs.f}&s=console`)
        const welcome = yield* gcs.nextJson()
        expect(welcome).toMatchObject({ ty: "s", mt: 9007 })

        const [, hydrogenKey] = /Authorization: Key ([0-9a-f]{64})/.exec(stack.banner) ?? []
        const hydrogen = yield* connectWs(`ws://127.0.0.1:${ports.hydrogen}/`, {
          protocols: "hydrogen-protocol",
          headers: { Authorization: `Key ${hydrogenKey}` }
        })
        yield* hydrogen.send(JSON.stringify({ type: "status" }))
        expect(yield* hydrogen.nextJson()).toMatchObject({ status: { running: true } })

        const page = yield* Effect.promise(() => fetch(`http://127.0.0.1:${ports.chat}/`).then((r) => r.text()))
        expect(page).toContain("<html")

        // Every server listens dual-stack by default: the same ports answer over IPv6 loopback.
        if (hasIpv6Loopback()) {
          const healths = [
            [ports.auth, "/h/health"],
            [ports.relay, "/h/health"],
            [ports.chat, "/health"],
            [ports.hydrogen, "/health"],
            [ports.neighbourhood, "/metrics"]
          ] as const
          for (const [port, path] of healths) {
            const response = yield* Effect.promise(() => fetch(`http://[::1]:${port}${path}`))
            expect(`${path} on [::1]:${port} -> ${response.status}`).toBe(`${path} on [::1]:${port} -> 200`)
          }
          // The Aliya gateway (raw TCP, default port 8880) accepts over IPv6 too.
          const gateway = yield* Effect.promise(() =>
            Bun.connect({ hostname: "::1", port: 8880, socket: { data() {} } })
          )
          gateway.end()
        } else console.log("stack test: no IPv6 loopback on this machine; the [::1] checks are skipped")

        stack.child.kill("SIGTERM")
        expect((yield* gcs.closed).code).toBe(1001)
        expect(yield* Effect.promise(() => stack.child.exited)).toBe(0)
      }),
    30_000
  )

  it.skipIf(!hasOpenssl).live(
    "with TLS configured, the banner prints https:// and wss:// for those listeners",
    () =>
      Effect.gen(function* () {
        const { certPath, keyPath } = selfSigned()
        const tls = (prefix: string) => ({ [`${prefix}_TLS_CERT_PATH`]: certPath, [`${prefix}_TLS_KEY_PATH`]: keyPath })
        const stack = yield* startStack({ ...tls("AUTHENTICATOR"), ...tls("RELAY") })
        expect(stack.banner).toContain(`https://127.0.0.1:${stack.ports.auth}`)
        expect(stack.banner).toContain(`wss://127.0.0.1:${stack.ports.relay}/`)
        expect(stack.banner).toContain(`https://127.0.0.1:${stack.ports.relay}/metrics`)
        // The S2S listener has no TLS of its own here, so relays dial it over plain ws://.
        expect(stack.banner).toContain(`ws://127.0.0.1:${stack.ports.s2s}`)
      }),
    30_000
  )
})
