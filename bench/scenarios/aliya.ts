import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { aesGcmCipher } from "../../src/aliya/Cipher.ts"
import { encodeFrame, FrameDecoder } from "../../src/aliya/Frame.ts"
import { aliyaStackEnv } from "../lib/aliyaStackEnv.ts"
import { freePort, liveServers, waitFor } from "../lib/servers.ts"
import { Histogram, spreadOf } from "../lib/stats.ts"
import { formatRate, type ResultRow, ratio, type Scenario } from "./common.ts"

/**
 * Aliya gateway cases: a read (get_all_weapon), a spend (level_up_weapon) and login, each with
 * 100 concurrent connections in a closed loop (one request in flight per connection), against
 * the full stack (gateway → token server → managers → SQLite) in its two compositions (one
 * process with in-process calls; three processes over loopback HTTP) and a ceiling: a raw Bun TCP
 * server with the same framing and cipher answering from memory. Every spend is accounted:
 * after the run each player's iron must equal its start minus 20 per successful reply.
 */

const CONNECTIONS = 100
const root = join(import.meta.dir, "..", "..")
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Reply {
  status: number
  data: Record<string, unknown>
}

/** One connection that sends a request and waits for its reply. */
const connect = async (port: number, key: Buffer) => {
  const cipher = aesGcmCipher(key)
  const frames = new FrameDecoder()
  let waiting: ((reply: Reply) => void) | undefined
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data: (_s, bytes) => {
        for (const frame of frames.push(bytes).frames) {
          const resolve = waiting
          waiting = undefined
          resolve?.(JSON.parse(decoder.decode(cipher.open(frame)!)) as Reply)
        }
      }
    }
  })
  const call = (fn: string, data: Record<string, unknown>) =>
    new Promise<Reply>((resolve) => {
      waiting = resolve
      socket.write(encodeFrame(cipher.seal(encoder.encode(JSON.stringify({ function: fn, random: "1", data }))))!)
    })
  return { call, close: () => socket.end() }
}
type Connection = Awaited<ReturnType<typeof connect>>

const credentials = (i: number) => ({ identifier: "account", value: `bench-${i}`, password: `bench-password-${i}` })

type Case = "get_all_weapon" | "level_up_weapon" | "login"
const request = (kind: Case, i: number, token: string, n: number): [string, Record<string, unknown>] =>
  kind === "login"
    ? ["login", credentials(CONNECTIONS + i)] // its own players: their logins do not revoke the others' tokens
    : kind === "get_all_weapon"
      ? ["get_all_weapon", { token }]
      : ["level_up_weapon", { token, weapon: `weapon${(n % 40) + 1}`, iron: "20" }]

/** Runs the closed loop on every connection for warmup + measure; counts successes per connection. */
const drive = async (
  connections: ReadonlyArray<Connection>,
  tokens: ReadonlyArray<string>,
  kind: Case,
  warmupMs: number,
  measureMs: number
) => {
  const histogram = new Histogram()
  const successes = connections.map(() => 0)
  const failures: Record<string, number> = {}
  let measured = 0
  let replies = 0
  const start = performance.now()
  const measureFrom = start + warmupMs
  const end = measureFrom + measureMs
  await Promise.all(
    connections.map(async (connection, i) => {
      let n = 0
      while (performance.now() < end) {
        const [fn, data] = request(kind, i, tokens[i]!, n++)
        const sent = performance.now()
        if (sent >= end) break
        const reply = await connection.call(fn, data)
        const done = performance.now()
        replies++
        if (reply.status === 0) successes[i]!++
        else failures[String(reply.status)] = (failures[String(reply.status)] ?? 0) + 1
        // Throughput counts replies completed inside the window (a login may take longer than the window).
        if (done >= measureFrom && done <= end) {
          measured++
          histogram.record((done - sent) * 1000)
        }
      }
    })
  )
  return {
    perSec: measured / (measureMs / 1000),
    p50Ms: histogram.quantile(0.5) / 1000,
    p99Ms: histogram.quantile(0.99) / 1000,
    successes,
    failures,
    replies
  }
}

/** BENCH_PROFILE=<dir>: the servers run under --cpu-prof (with a Markdown digest) written to <dir> when they stop. */
const profiled = (command: Array<string>): Array<string> => {
  const dir = process.env.BENCH_PROFILE
  return dir ? [command[0]!, "--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${dir}`, ...command.slice(1)] : command
}

/** BENCH_ALIYA_CASES=get_all_weapon,level_up_weapon runs only those cases (all three by default). */
const selectedCases = (): ReadonlyArray<Case> => {
  const all: ReadonlyArray<Case> = ["get_all_weapon", "level_up_weapon", "login"]
  const wanted = process.env.BENCH_ALIYA_CASES?.split(",").map((c) => c.trim())
  return wanted ? all.filter((c) => wanted.includes(c)) : all
}

const spawnServer = async (label: string, command: Array<string>, env: Record<string, string>, port: number) => {
  const child = Bun.spawn(profiled(command), {
    cwd: root,
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe"
  })
  liveServers.add(child)
  await waitFor(
    `${label} on ${port}`,
    async () => {
      if (child.exitCode !== null)
        throw new Error(`${label} exited with ${child.exitCode}: ${await new Response(child.stderr).text()}`)
      try {
        ;(await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } })).end()
        return true
      } catch {
        return false
      }
    },
    120_000
  )
  const stop = async () => {
    child.kill("SIGTERM")
    await Promise.race([child.exited, sleep(5000)])
    if (child.exitCode === null) child.kill(9)
    liveServers.delete(child)
  }
  return { stop, pids: [child.pid] }
}

/** Server processes started for a target: how to stop them, and their pids (for CPU accounting). */
interface Running {
  readonly stop: () => Promise<void>
  readonly pids: ReadonlyArray<number>
}

/** A composition under test: how to start it and where its gateway (or the ceiling) listens. */
interface Target {
  readonly name: string
  readonly port: number
  readonly start: () => Promise<Running>
}

/** Starts each part in order (a part waits for the one before it), stops them in reverse. */
const startAll = async (parts: ReadonlyArray<() => Promise<Running>>): Promise<Running> => {
  const running: Array<Running> = []
  const stop = async () => {
    for (const part of [...running].reverse()) await part.stop()
  }
  try {
    for (const start of parts) running.push(await start())
  } catch (error) {
    await stop()
    throw error
  }
  return { stop, pids: running.flatMap((part) => part.pids) }
}

/** CPU seconds (user + system) the processes used so far, from /proc (Linux; 0 elsewhere). */
const cpuSeconds = (pids: ReadonlyArray<number>) =>
  pids.reduce((total, pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      return total + (Number(fields[11]) + Number(fields[12])) / 100
    } catch {
      return total
    }
  }, 0)

/**
 * BENCH_ALIYA_ARGON2=<memory KiB>,<passes>: the password hash cost of the stacks (seeded accounts
 * and every login); the production default (19456 KiB, 2 passes) when unset.
 */
const passwordCost = (): { readonly memoryKiB: number; readonly passes: number } => {
  const setting = process.env.BENCH_ALIYA_ARGON2
  if (!setting) return { memoryKiB: 19456, passes: 2 }
  const [memoryKiB, passes] = setting.split(",").map(Number)
  if (!Number.isSafeInteger(memoryKiB) || !Number.isSafeInteger(passes) || memoryKiB! < 8 || passes! < 1)
    throw new Error("BENCH_ALIYA_ARGON2 must be <memory KiB ≥ 8>,<passes ≥ 1>, e.g. 1024,1")
  return { memoryKiB: memoryKiB!, passes: passes! }
}

/** BENCH_ALIYA_TARGETS=aliya-raw,aliya-colocated measures only those targets (all three by default). */
const selectedTargets = (all: ReadonlyArray<Target>): ReadonlyArray<Target> => {
  const wanted = process.env.BENCH_ALIYA_TARGETS?.split(",").map((t) => t.trim())
  return wanted ? all.filter((t) => wanted.includes(t.name)) : all
}

/** The ceiling and both compositions of the stack (each on its own SQLite file). */
const targets = (key: Buffer, dir: string): ReadonlyArray<Target> => {
  const rawPort = freePort()
  const stack = [process.execPath, "bench/lib/aliya-stack.ts"]
  const cost = passwordCost()
  const options = { players: 2 * CONNECTIONS, logLevel: "Warning", argon2: cost }
  const colocated = aliyaStackEnv(key, join(dir, "colocated"), options)
  const split = aliyaStackEnv(key, join(dir, "split"), options)
  const part = (name: string) => ({ ...split.env, BENCH_ALIYA_PART: name })
  return selectedTargets([
    {
      name: "aliya-raw",
      port: rawPort,
      start: () =>
        spawnServer(
          "aliya-raw",
          [process.execPath, "bench/baselines/aliya-raw.ts"],
          { PORT: String(rawPort), ALIYA_KEY: key.toString("hex") },
          rawPort
        )
    },
    {
      // npm start's composition: one process, the gateway asks its managers in-process.
      name: "aliya-colocated",
      port: colocated.gateway,
      start: () => spawnServer("aliya stack (one process)", stack, colocated.env, colocated.gateway)
    },
    {
      // The parts as separate programs: gateway → token server / managers over loopback HTTP.
      name: "aliya-split",
      port: split.gateway,
      start: () =>
        startAll([
          () => spawnServer("aliya managers", stack, part("managers"), split.managers.weapon!),
          () => spawnServer("aliya token server", stack, part("tokens"), split.tokens),
          () => spawnServer("aliya gateway", stack, part("gateway"), split.gateway)
        ])
    }
  ])
}

/** Logs the read/spend players in, two at a time (argon2id is the cost; more in parallel only queue). */
const loginAll = async (connections: ReadonlyArray<Connection>) => {
  const tokens: Array<string> = []
  for (let i = 0; i < connections.length; i += 2)
    await Promise.all(
      connections.slice(i, i + 2).map(async (c, j) => {
        tokens[i + j] = String((await c.call("login", credentials(i + j))).data.token ?? `bench-${i + j}`)
      })
    )
  return tokens
}

/** Tokens live 360 s: log in again after this long. */
const TOKEN_REUSE_MS = 300_000

type Result = Awaited<ReturnType<typeof drive>>

export const aliya: Scenario = {
  id: "aliya",
  title: "Aliya gateway: read, spend and login over TCP, 100 connections",
  run: async (context) => {
    const rows: Array<ResultRow> = []
    const notes: Array<string> = []
    const skipped: Array<string> = []
    const timing = { warmupMs: context.quick ? 300 : 1000, measureMs: context.quick ? 1000 : 3000 }
    const key = Buffer.from(crypto.getRandomValues(new Uint8Array(32)))
    const dir = mkdtempSync(join(tmpdir(), "aliya-bench-"))
    const all = targets(key, dir)
    const running = new Map<string, Running>()
    const results = new Map<string, Array<Result & { cpuUsPerRequest: number }>>()
    const tokens = new Map<string, { readonly tokens: Array<string>; readonly at: number }>()
    try {
      for (const target of all) running.set(target.name, await target.start())
      // Interleaved: each run of a case measures every target back to back, so a noisy moment of
      // the shared box hits the ceiling and the stacks alike. Cases in order, login last: the
      // argon2 checks a login run leaves queued must not run under the read and spend cases.
      for (const kind of selectedCases()) {
        for (let r = 0; r < context.runs; r++) {
          for (const target of all) {
            const connections = await Promise.all(Array.from({ length: CONNECTIONS }, () => connect(target.port, key)))
            // One login per player, reused by the read and the spend until it nears its expiry.
            let login = tokens.get(target.name)
            if (!login || performance.now() - login.at > TOKEN_REUSE_MS) {
              login = { tokens: await loginAll(connections), at: performance.now() }
              tokens.set(target.name, login)
            }
            const tokensOf = login.tokens
            const audited = target.name !== "aliya-raw" && kind === "level_up_weapon"
            const before = audited ? await irons(connections, tokensOf) : undefined
            const pids = running.get(target.name)!.pids
            const cpuBefore = cpuSeconds(pids)
            const driven = await drive(connections, tokensOf, kind, timing.warmupMs, timing.measureMs)
            // Server CPU per reply (all its processes, warmup included): robust on a shared box.
            const result = { ...driven, cpuUsPerRequest: ((cpuSeconds(pids) - cpuBefore) * 1e6) / driven.replies }
            const label = `${target.name} ${kind}`
            results.set(label, [...(results.get(label) ?? []), result])
            if (before) {
              const after = await irons(connections, tokensOf)
              const wrong = after.filter((iron, i) => iron !== before[i]! - 20 * result.successes[i]!).length
              notes.push(
                wrong === 0
                  ? `${label} run ${r + 1}: every spend accounted (${result.successes.reduce((a, b) => a + b, 0)} level-ups, iron matches)`
                  : `${label} run ${r + 1}: ${wrong} players' iron does NOT match their successful replies`
              )
            }
            if (Object.keys(result.failures).length > 0)
              notes.push(`${label} run ${r + 1}: non-zero statuses ${JSON.stringify(result.failures)}`)
            for (const c of connections) c.close()
            context.log(
              `  ${label} run ${r + 1}/${context.runs}: ${formatRate(result.perSec)} req/s, p99 ${result.p99Ms.toFixed(1)} ms, ` +
                `server CPU ${result.cpuUsPerRequest.toFixed(0)} µs/request`
            )
          }
        }
      }
    } catch (error) {
      skipped.push(`aliya: ${(error as Error).message}`)
      context.log(`  aliya: FAILED ${(error as Error).message}`)
    } finally {
      for (const part of running.values()) await part.stop()
      rmSync(dir, { recursive: true, force: true })
    }
    for (const target of all) {
      for (const kind of selectedCases()) {
        const runs = results.get(`${target.name} ${kind}`)
        if (!runs) continue
        rows.push({
          server: target.name,
          case: `${kind}, ${CONNECTIONS} connections`,
          metrics: {
            requestsPerSec: spreadOf(runs.map((r) => r.perSec)),
            p50Ms: spreadOf(runs.map((r) => r.p50Ms)),
            p99Ms: spreadOf(runs.map((r) => r.p99Ms)),
            serverCpuUsPerRequest: spreadOf(runs.map((r) => r.cpuUsPerRequest))
          }
        })
      }
    }
    const withRatios = rows.map((row) => {
      if (row.server === "aliya-raw") return row
      const ceiling = rows.find((r) => r.server === "aliya-raw" && r.case === row.case)
      return {
        ...row,
        ratios: {
          "requestsPerSec vs aliya-raw": ratio(
            row.metrics.requestsPerSec?.median,
            ceiling?.metrics.requestsPerSec?.median
          ),
          // CPU per request of the ceiling ÷ ours: the throughput ratio a quiet box with equal cores would show.
          "cpu efficiency vs aliya-raw": ratio(
            ceiling?.metrics.serverCpuUsPerRequest?.median,
            row.metrics.serverCpuUsPerRequest?.median
          )
        }
      }
    })
    return {
      scenario: "aliya",
      title: aliya.title,
      settings: {
        connections: CONNECTIONS,
        ...timing,
        runs: context.runs,
        storage: "SQLite",
        cipher: "aes-256-gcm",
        passwordHash: `argon2id ${passwordCost().memoryKiB} KiB, ${passwordCost().passes} passes`,
        compositions:
          "aliya-colocated: gateway, token server and managers in one process (in-process calls); " +
          "aliya-split: three processes over loopback HTTP"
      },
      rows: withRatios,
      notes,
      skipped
    }
  }
}

/** Each player's iron, read through the gateway. */
const irons = (connections: ReadonlyArray<Connection>, tokens: ReadonlyArray<string>) =>
  Promise.all(
    connections.map(async (c, i) =>
      Number(((await c.call("get_all_supplies", { token: tokens[i] })).data.item2 as [string, number])[1])
    )
  )
