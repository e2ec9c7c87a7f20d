/**
 * Instructions per delivery, counted by valgrind (callgrind), so the figure holds on a loaded box:
 * starts one server under callgrind (raw Bun, the Transport baseline, or the relay's client side without its
 * authenticator link, bench/lib/relay-unlinked.ts), connects `units` DroneEngage clients of one group, and has one of them
 * send the fan-out scenario's messages in lock-step batches (each delivered to everyone before the next).
 * Counters are zeroed after a warm-up and dumped after the measured messages; an idle spell as long
 * is counted too and subtracted (timers, idle GC). User-space only: the kernel's send work is not counted.
 * Needs valgrind and callgrind_control on PATH.
 *
 *   npx bun run bench/instructions.ts <bun-raw|transport|relay> [units=100] [payloadBytes=1024] [messages=200]
 *
 * Prints one JSON line; callgrind files stay in $TMPDIR/switchboard-instructions for callgrind_annotate.
 * COUNT=cpu runs the server without valgrind and counts, over the same lock-step load (idle spell subtracted),
 * the kernel side instead: the server's CPU time (/proc/<pid>/stat, 10 ms ticks: give it seconds of work),
 * context switches of its threads (/proc/<pid>/task) and, with STRACE=1, its syscalls (strace -c -f).
 * BATCH=n messages per lock-step batch (10). RAW_WS='{"idleTimeout":0}' gives raw Bun one of our websocket settings.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { adapterFor, type ClientSpec } from "./loadgen/Protocols.ts"
import { cpuMicros } from "./lib/proc.ts"
import { freePort, startListening, stopChild, waitFor } from "./lib/servers.ts"

const [kind = "relay", unitsArg = "100", payloadArg = "1024", messagesArg = "200"] = process.argv.slice(2)
if (kind !== "bun-raw" && kind !== "transport" && kind !== "relay") {
  throw new Error("server must be bun-raw, transport or relay")
}
const underValgrind = process.env.COUNT !== "cpu"
const units = Number(unitsArg)
const payloadBytes = Number(payloadArg)
const messages = Number(messagesArg)
const warmup = Math.max(50, Math.floor(messages / 2))
const batch = Number(process.env.BATCH ?? 10)

const root = join(import.meta.dir, "..")
const outDir = join(tmpdir(), "switchboard-instructions")
mkdirSync(outDir, { recursive: true })
const label = `${kind}-${units}x${payloadBytes}`
for (const file of readdirSync(outDir)) if (file.startsWith(`${label}.`)) rmSync(join(outDir, file))

const valgrind = (script: string) => (underValgrind ? valgrindCommand(script) : [process.execPath, join(root, script)])
const valgrindCommand = (script: string) => [
  "valgrind",
  "--tool=callgrind",
  "--smc-check=all-non-file",
  // Start-up runs uninstrumented (fast); counting starts before the warm-up.
  "--instr-atstart=no",
  `--callgrind-out-file=${join(outDir, `${label}.%p`)}`,
  process.execPath,
  join(root, script)
]

const control = async (pid: number, ...args: Array<string>) => {
  if (!underValgrind) return
  const proc = Bun.spawn(["callgrind_control", ...args, String(pid)], { stdout: "pipe", stderr: "pipe" })
  const text = await new Response(proc.stdout).text()
  if (!text.includes("OK.")) throw new Error(`callgrind_control ${args.join(" ")}: ${text}`)
  if ((await proc.exited) !== 0) throw new Error(`callgrind_control ${args.join(" ")} failed`)
}

const targetOf = (port: number) =>
  ({ protocol: "droneengage", authUrl: `http://127.0.0.1:${port}`, account: "bench", accessCode: "bench" }) as const

const startServer = async () => {
  if (kind === "bun-raw") {
    const port = freePort()
    // No HOST: valgrind names its control pipes after $HOST (raw Bun listens on 127.0.0.1 without it).
    const env = { PORT: String(port), ...(process.env.RAW_WS ? { RAW_WS: process.env.RAW_WS } : {}) }
    const { child } = await startListening(kind, valgrind("bench/baselines/bun-raw.ts"), env, port, 600_000)
    return { measured: child, target: targetOf(port) }
  }
  if (kind === "transport") {
    const port = freePort()
    const env = { PORT: String(port), LOG_LEVEL: "warning" }
    const { child } = await startListening(kind, valgrind("bench/baselines/transport.ts"), env, port, 600_000)
    return { measured: child, target: targetOf(port) }
  }
  const port = freePort()
  const relay = valgrind("bench/lib/relay-unlinked.ts")
  const { child } = await startListening(kind, relay, { PORT: String(port), LOG_LEVEL: "warning" }, port, 600_000)
  return { measured: child, target: targetOf(port) }
}

const server = await startServer()
const adapter = adapterFor(server.target)
const specs: Array<ClientSpec> = Array.from({ length: units }, (_, index) => ({
  index,
  unit: `u${index}`,
  group: "count",
  sender: index === 0 ? 0 : -1,
  localAddress: "127.0.0.1",
  slow: false
}))

/** CPU time (user + system, whole process, exited threads included) and context switches over its live threads. */
const threadTotals = (pid: number) => {
  const cpuNs = cpuMicros(pid) * 1000
  let voluntary = 0
  let involuntary = 0
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${task}/status`, "utf8")
      voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0)
      involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0)
    } catch {
      // A thread that ended between the listing and the read.
    }
  }
  return { cpuNs, voluntary, involuntary }
}

/** Calls per syscall from `strace -c`'s table (columns: % time, seconds, usecs/call, calls, [errors,] name). */
const straceCalls = (text: string): Record<string, number> => {
  const calls: Record<string, number> = {}
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/)
    if (fields.length < 5 || !/^\d/.test(fields[0]!) || fields.at(-1) === "total") continue
    calls[fields.at(-1)!] = Number(fields[3])
  }
  return calls
}

let delivered = 0
let onDelivered = () => {}
const sockets: Array<WebSocket> = []
try {
  for (const spec of specs) {
    const { url } = await adapter.prepare(spec)
    const socket = new WebSocket(url)
    await new Promise<void>((resolve, reject) => {
      socket.onmessage = (event) => {
        if (typeof event.data === "string" && event.data.includes('"mt":9007')) resolve()
      }
      socket.onerror = () => reject(new Error(`${spec.unit} failed to connect`))
    })
    socket.onmessage = () => {
      delivered++
      onDelivered()
    }
    sockets.push(socket)
  }
  const sender = sockets[0]!
  let seq = 0
  /** Sends `count` messages in batches, each batch delivered to every receiver before the next. */
  const send = async (count: number) => {
    for (let sent = 0; sent < count; sent += batch) {
      const n = Math.min(batch, count - sent)
      const expected = delivered + n * (units - 1)
      const done = new Promise<void>((resolve) => {
        onDelivered = () => delivered >= expected && resolve()
      })
      for (let i = 0; i < n; i++) sender.send(adapter.message(specs[0]!, 1, seq++, 0, payloadBytes).payload.toString())
      await done
    }
  }
  await control(server.measured.pid, "-i", "on")
  await send(warmup)
  /** Without valgrind: the kernel's view of the server over `done` (every thread's on-CPU time, switches, syscalls). */
  const kernelCounted = async (done: () => Promise<unknown>) => {
    const pid = server.measured.pid
    const tracer = process.env.STRACE
      ? Bun.spawn(["strace", "-c", "-f", "-p", String(pid)], { stdout: "pipe", stderr: "pipe" })
      : undefined
    if (tracer) await Bun.sleep(500)
    const before = threadTotals(pid)
    const started = performance.now()
    await done()
    const ms = performance.now() - started
    const after = threadTotals(pid)
    let syscalls: Record<string, number> | undefined
    if (tracer) {
      tracer.kill("SIGINT")
      syscalls = straceCalls(await new Response(tracer.stderr as ReadableStream).text())
    }
    return {
      ms,
      cpuNs: after.cpuNs - before.cpuNs,
      voluntary: after.voluntary - before.voluntary,
      involuntary: after.involuntary - before.involuntary,
      ...(syscalls ? { syscalls } : {})
    }
  }
  if (!underValgrind) {
    await send(warmup)
    const measured = await kernelCounted(() => send(messages))
    const idle = await kernelCounted(() => Bun.sleep(measured.ms))
    const deliveries = messages * (units - 1)
    const per = (value: number) => Number((value / deliveries).toFixed(4))
    console.log(
      JSON.stringify({
        server: kind,
        units,
        payloadBytes,
        messages,
        batch,
        deliveries,
        ms: Math.round(measured.ms),
        cpuNsPerDelivery: Math.round((measured.cpuNs - idle.cpuNs) / deliveries),
        idleCpuMs: Math.round(idle.cpuNs / 1e6),
        voluntaryPerDelivery: per(measured.voluntary - idle.voluntary),
        involuntaryPerDelivery: per(measured.involuntary - idle.involuntary),
        ...(measured.syscalls
          ? {
              syscallsPerDelivery: Object.fromEntries(
                Object.entries(measured.syscalls).map(([name, calls]) => [
                  name,
                  per(calls - (idle.syscalls?.[name] ?? 0))
                ])
              )
            }
          : {})
      })
    )
  } else {
    /** Instructions counted from now until `done` resolves (callgrind zeroes, then dumps to file `.n`). */
    const counted = async (n: number, done: () => Promise<unknown>) => {
      await control(server.measured.pid, "-z")
      const started = performance.now()
      await done()
      const ms = performance.now() - started
      await control(server.measured.pid, "-d")
      const file = join(outDir, `${label}.${server.measured.pid}.${n}`)
      const text = async () =>
        (
          await Bun.file(file)
            .text()
            .catch(() => "")
        ).match(/^totals: (\d+)/m)
      await waitFor("the callgrind dump", async () => (await text()) !== null, 600_000)
      return { instructions: Number((await text())![1]), ms, file }
    }
    const measured = await counted(1, () => send(messages))
    // Timers run whether or not messages flow, and valgrind stretches time: count an idle spell as long, to subtract.
    const idle = await counted(2, () => Bun.sleep(measured.ms))
    const instructions = measured.instructions - idle.instructions
    const deliveries = messages * (units - 1)
    console.log(
      JSON.stringify({
        server: kind,
        units,
        payloadBytes,
        messages,
        deliveries,
        measured: measured.instructions,
        idle: idle.instructions,
        instructions,
        perDelivery: Math.round(instructions / deliveries),
        perMessage: Math.round(instructions / messages),
        file: measured.file
      })
    )
  }
} finally {
  for (const socket of sockets) socket.close()
  await stopChild(server.measured)
}
