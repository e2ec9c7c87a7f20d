import { rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import {
  exportPrivatePem,
  exportPublicPem,
  generateKeyPair,
  importPublicPem,
  type PublicKeyInfo,
  signData,
  verifyData
} from "../../src/neighbourhood/Crypto.ts"
import { verifySigned } from "../../src/neighbourhood/Verify.ts"
import { WsConn } from "../loadgen/WsWire.ts"
import { cpuBetween, cpuMicros, sampleCpu } from "../lib/proc.ts"
import { freePort, liveServers, waitFor } from "../lib/servers.ts"
import { Histogram, spreadOf } from "../lib/stats.ts"
import { formatRate, type ResultRow, type Scenario, windowFor } from "./common.ts"

/**
 * Neighbourhood (OLAF v1.2) cases. Every client message carries an RSA-PSS signature the home
 * server verifies, so messages are signed before the clock starts (signing costs ~1 ms each) and
 * the senders replay them closed-loop: each sender keeps a window of messages in flight, counted done
 * when a probe receiver has them. Receivers are Bun WebSocket clients in this process (on the same
 * 2 cores), so deliveries/s is bounded by them too; server CPU per delivery, read from /proc, is not.
 */

const root = join(import.meta.dir, "..", "..")
const SENDERS = 10
/** Messages in flight per sender: the fanout scenario's rule (~256 KiB per receiver) for the signed frame's size. */
const windowOf = (frames: ReadonlyArray<ReadonlyArray<string>>) => windowFor(SENDERS, frames[0]?.[0]?.length ?? 64)
const PAYLOAD = 64

interface ServerProcess {
  readonly pid: number
  readonly port: number
  readonly stop: () => Promise<void>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

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

interface BenchClient {
  readonly client: NeighbourhoodClient
  readonly send: (frame: string) => void
  readonly close: () => void
  received: number
}

/**
 * A client on the load generator's own WebSocket wire (frames read straight from TCP chunks, no
 * event object per message), as the relay's receivers in the fanout scenario, so the comparison
 * is not skewed by a slower client.
 */
const connectClient = (port: number, client: NeighbourhoodClient, onFrame?: (text: string) => void) =>
  new Promise<BenchClient>((resolve, reject) => {
    let bench: BenchClient | undefined
    WsConn.open(
      0,
      { url: `ws://127.0.0.1:${port}/` },
      {
        onOpen: (conn) => {
          bench = { client, send: (frame) => conn.sendText(frame), close: () => conn.close(), received: 0 }
          client.hello().then((hello) => {
            conn.sendText(hello)
            resolve(bench!)
          }, reject)
        },
        onMessage: (_conn, _opcode, payload) => {
          if (!bench) return
          bench.received++
          if (onFrame) onFrame(payload.toString())
        },
        onClose: (_conn, code, reason) => {
          if (!bench) reject(new Error(`cannot connect to ${port}: ${code} ${reason}`))
        }
      },
      0
    ).catch(reject)
  })

/** Asks a server for the client list (no hello needed) until it shows `total` clients (hellos and client_updates done). */
const waitForClients = async (port: number, total: number) => {
  let listed = 0
  const socket = new WebSocket(`ws://127.0.0.1:${port}/`)
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data as string) as { type: string; servers?: Array<{ clients: Array<string> }> }
    if (frame.type === "client_list") listed = frame.servers!.reduce((n, s) => n + s.clients.length, 0)
  }
  await new Promise((resolve) => (socket.onopen = resolve))
  try {
    await waitFor(
      `${total} clients listed`,
      async () => {
        socket.send(JSON.stringify({ type: "client_list_request" }))
        await sleep(50)
        return listed >= total
      },
      30_000
    )
  } finally {
    socket.close()
  }
}

interface RunFigures {
  readonly messagesPerSec: number
  readonly deliveriesPerSec: number
  readonly cpuUsPerDelivery: number
  readonly cpuUsPerMessage: number
  /** RSA-PSS verifications the servers made per CPU-second they used (all their work included). */
  readonly verificationsPerCoreSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly lost: number
}

/**
 * Replays pre-signed frames closed-loop; the window measured is from 10 % to 90 % of the
 * messages acknowledged by the probe, so ramp-up and drain are left out.
 */
const replay = async (
  senders: ReadonlyArray<BenchClient>,
  frames: ReadonlyArray<ReadonlyArray<string>>,
  receivers: ReadonlyArray<BenchClient>,
  probeDone: { onDone: (sender: number, seq: number) => void },
  deliveriesPerMessage: number,
  serverPids: ReadonlyArray<number>,
  verificationsPerMessage: number
): Promise<RunFigures> => {
  const total = frames.reduce((n, f) => n + f.length, 0)
  const next = frames.map(() => 0)
  const sentAt = frames.map((f) => new Float64Array(f.length))
  const latency = new Histogram()
  let done = 0
  const received = () => receivers.reduce((n, r) => n + r.received, 0)
  let mark: { at: number; deliveries: number; cpu: ReturnType<typeof sampleCpu>; done: number } | undefined
  let end: typeof mark
  const finished = new Promise<void>((resolve) => {
    probeDone.onDone = (sender, seq) => {
      latency.record((performance.now() - sentAt[sender]![seq]!) * 1000)
      done++
      if (!mark && done >= total * 0.1)
        mark = { at: performance.now(), deliveries: received(), cpu: sampleCpu(serverPids), done }
      if (!end && done >= total * 0.9)
        end = { at: performance.now(), deliveries: received(), cpu: sampleCpu(serverPids), done }
      send(sender)
      if (done === total) resolve()
    }
  })
  const send = (sender: number) => {
    const i = next[sender]!
    if (i >= frames[sender]!.length) return
    next[sender] = i + 1
    sentAt[sender]![i] = performance.now()
    senders[sender]!.send(frames[sender]![i]!)
  }
  const before = received()
  const window = windowOf(frames)
  for (let s = 0; s < senders.length; s++) for (let w = 0; w < window; w++) send(s)
  await Promise.race([finished, sleep(120_000)])
  await sleep(300)
  if (!mark || !end) throw new Error(`only ${done} of ${total} messages arrived`)
  const seconds = (end.at - mark.at) / 1000
  const deliveries = end.deliveries - mark.deliveries
  const messages = end.done - mark.done
  const cpu = cpuBetween(mark.cpu, end.cpu)
  return {
    messagesPerSec: messages / seconds,
    deliveriesPerSec: deliveries / seconds,
    cpuUsPerDelivery: cpu / deliveries,
    cpuUsPerMessage: cpu / messages,
    verificationsPerCoreSecond: (messages * verificationsPerMessage) / (cpu / 1e6),
    p50Ms: latency.quantile(0.5) / 1000,
    p99Ms: latency.quantile(0.99) / 1000,
    lost: total * deliveriesPerMessage - (received() - before)
  }
}

const text = (sender: number, seq: number) => `b ${sender} ${seq} `.padEnd(PAYLOAD, "x")
const probeParse = /b (\d+) (\d+) /

/** Public chat: 100 clients spread over `servers`, 10 of them senders; every message reaches the other 99. */
const publicFanout = async (
  keys: ReadonlyArray<NeighbourhoodClient>,
  serverCount: number,
  perSender: number
): Promise<RunFigures> => {
  const servers = await startMesh(serverCount)
  const clients: Array<BenchClient> = []
  try {
    const probe = { onDone: (_s: number, _q: number) => {} }
    for (const [i, key] of keys.entries()) {
      // The probe is the last client, on the last server: in a mesh its messages crossed a link.
      const isProbe = i === keys.length - 1
      const onFrame = isProbe
        ? (frame: string) => {
            const m = probeParse.exec(frame)
            if (m) probe.onDone(Number(m[1]), Number(m[2]))
          }
        : undefined
      clients.push(await connectClient(servers[i % serverCount]!.port, key, onFrame))
    }
    await waitForClients(servers[0]!.port, keys.length)
    const senders = clients.slice(0, SENDERS)
    const frames = await Promise.all(
      senders.map((s, i) => Promise.all(Array.from({ length: perSender }, (_, q) => s.client.publicChat(text(i, q)))))
    )
    for (const c of clients) c.received = 0
    return await replay(
      senders,
      frames,
      clients,
      probe,
      keys.length - 1,
      servers.map((s) => s.pid),
      serverCount
    )
  } finally {
    for (const c of clients) c.close()
    await Promise.all(servers.map((s) => s.stop()))
  }
}

/** Private chat: 10 senders on s0, 10 receivers on s1; each chat is sealed for the probe and delivered to s1's clients. */
const privateRouting = async (keys: ReadonlyArray<NeighbourhoodClient>, perSender: number): Promise<RunFigures> => {
  const servers = await startMesh(2)
  const clients: Array<BenchClient> = []
  try {
    const probe = { onDone: (_s: number, _q: number) => {} }
    const probeKey = keys[SENDERS]!
    const sentOrder: Array<Map<string, number>> = []
    for (let i = 0; i < SENDERS; i++) clients.push(await connectClient(servers[0]!.port, keys[i]!))
    for (let i = SENDERS; i < 2 * SENDERS; i++) {
      // The probe tells chats apart by their signature (the plaintext is sealed).
      const onFrame =
        i === SENDERS
          ? (frame: string) => {
              const signature = /"signature":"([^"]+)"/.exec(frame)?.[1]
              if (!signature) return
              for (const [s, order] of sentOrder.entries()) {
                const q = order.get(signature)
                if (q !== undefined) return probe.onDone(s, q)
              }
            }
          : undefined
      clients.push(await connectClient(servers[1]!.port, keys[i]!, onFrame))
    }
    await waitForClients(servers[0]!.port, 2 * SENDERS)
    const senders = clients.slice(0, SENDERS)
    const recipient = [{ pem: probeKey.publicPem, server: "s1" }]
    // Sealed one after another per sender: chat() takes its counter after sealing, so order must be kept here.
    const frames = await Promise.all(
      senders.map(async (s, i) => {
        const list: Array<string> = []
        for (let q = 0; q < perSender; q++) list.push(await s.client.chat(recipient, text(i, q)))
        return list
      })
    )
    for (const list of frames)
      sentOrder.push(new Map(list.map((frame, q) => [JSON.parse(frame).signature as string, q])))
    for (const c of clients) c.received = 0
    return await replay(
      senders,
      frames,
      clients.slice(SENDERS),
      probe,
      SENDERS,
      servers.map((s) => s.pid),
      1
    )
  } finally {
    for (const c of clients) c.close()
    await Promise.all(servers.map((s) => s.stop()))
  }
}

/**
 * Raw RSA-PSS verifications in this process, per CPU-second used: WebCrypto (one at a time, and
 * many in flight on its work pool) and node:crypto's synchronous verify, which the server uses.
 */
const rawVerify = async (count: number) => {
  const pair = await generateKeyPair()
  const key = (await importPublicPem(await exportPublicPem(pair.publicKey))) as PublicKeyInfo
  const data = text(0, 0)
  const signature = await signData(pair.privateKey, data, 1)
  const measure = async (run: () => Promise<unknown> | unknown) => {
    const cpuBefore = cpuMicros(process.pid)
    const started = performance.now()
    await run()
    return {
      perSec: count / ((performance.now() - started) / 1000),
      perCoreSecond: count / ((cpuMicros(process.pid) - cpuBefore) / 1e6)
    }
  }
  const sequential = await measure(async () => {
    for (let i = 0; i < count; i++) await verifyData(pair.publicKey, data, 1, signature)
  })
  const parallel = await measure(() =>
    Promise.all(Array.from({ length: count }, () => verifyData(pair.publicKey, data, 1, signature)))
  )
  const node = await measure(() => {
    for (let i = 0; i < count; i++) if (!verifySigned(key, data, 1, signature)) throw new Error("verify failed")
  })
  return { sequential, parallel, node }
}

const row = (c: string, runs: ReadonlyArray<RunFigures>, ratios?: Record<string, number>): ResultRow => ({
  server: "neighbourhood",
  case: c,
  metrics: {
    messagesPerSec: spreadOf(runs.map((r) => r.messagesPerSec)),
    deliveriesPerSec: spreadOf(runs.map((r) => r.deliveriesPerSec)),
    p50Ms: spreadOf(runs.map((r) => r.p50Ms)),
    p99Ms: spreadOf(runs.map((r) => r.p99Ms)),
    cpuUsPerDelivery: spreadOf(runs.map((r) => r.cpuUsPerDelivery)),
    cpuUsPerMessage: spreadOf(runs.map((r) => r.cpuUsPerMessage)),
    messagesPerCoreSecond: spreadOf(runs.map((r) => 1e6 / r.cpuUsPerMessage)),
    verificationsPerCoreSecond: spreadOf(runs.map((r) => r.verificationsPerCoreSecond)),
    lost: spreadOf(runs.map((r) => r.lost))
  },
  ...(ratios ? { ratios } : {})
})

const oneServer = "public chat, 100 clients, 1 server"
const mesh = "public chat, 100 clients over 3 servers"

export const neighbourhood: Scenario = {
  id: "neighbourhood",
  title: "Neighbourhood: signed public-chat fan-out, private-chat routing, RSA-PSS verification",
  run: async (context) => {
    const rows: Array<ResultRow> = []
    const notes: Array<string> = []
    const skipped: Array<string> = []
    const perSender = context.quick ? 150 : 600
    context.log(
      `  generating 100 client keys and signing ${SENDERS * perSender} messages per case (RSA-2048, ~1 ms each)…`
    )
    const keys = await Promise.all(Array.from({ length: 100 }, () => NeighbourhoodClient.generate()))
    const fanoutResult = context.earlier.get("fanout")
    const relay = fanoutResult?.rows.find((r) => r.server === "relay" && r.case === "100 units, 64 B")
    const relayRate = relay?.metrics.deliveriesPerSec?.median
    const relayCpu = relay?.metrics.cpuUsPerDelivery?.median
    // A saved result carries finishedAt; one measured earlier in this invocation does not.
    const savedAt = (fanoutResult as { finishedAt?: string } | undefined)?.finishedAt
    if (relay) {
      notes.push(
        savedAt
          ? `relay figures from the saved fanout result of ${savedAt}, not this invocation (run "fanout neighbourhood" together for one-run ratios)`
          : "relay figures from this invocation's fanout scenario (100 units, 64 B)"
      )
    }
    const median = (runs: ReadonlyArray<RunFigures>, pick: (r: RunFigures) => number) => spreadOf(runs.map(pick)).median
    const cases: Array<[string, () => Promise<RunFigures>]> = [
      [oneServer, () => publicFanout(keys, 1, perSender)],
      [mesh, () => publicFanout(keys, 3, perSender)],
      ["private chat, 10 senders on s0 → 10 clients on s1", () => privateRouting(keys, perSender)]
    ]
    // Runs interleave the cases (1 server, mesh, private, then again), so a busy spell on the box hits all alike.
    const runsOf = new Map<string, Array<RunFigures>>(cases.map(([label]) => [label, []]))
    const failed = new Set<string>()
    for (let i = 0; i < context.runs; i++) {
      for (const [label, measure] of cases) {
        if (failed.has(label)) continue
        try {
          const figures = await measure()
          runsOf.get(label)!.push(figures)
          if (figures.lost !== 0) notes.push(`${label} run ${i + 1}: ${figures.lost} deliveries missing`)
          context.log(
            `  ${label} run ${i + 1}/${context.runs}: ${formatRate(figures.messagesPerSec)} messages/s, ${formatRate(figures.deliveriesPerSec)} deliveries/s, ` +
              `${figures.cpuUsPerDelivery.toFixed(2)} µs CPU/delivery, ${figures.cpuUsPerMessage.toFixed(1)} µs CPU/message, ` +
              `${formatRate(figures.verificationsPerCoreSecond)} verifications/core-s, p99 ${figures.p99Ms.toFixed(1)} ms`
          )
        } catch (error) {
          failed.add(label)
          skipped.push(`${label}: ${(error as Error).message}`)
          context.log(`  ${label}: FAILED ${(error as Error).message}`)
        }
      }
    }
    const single = runsOf.get(oneServer)!
    for (const [label, runs] of runsOf) {
      if (runs.length === 0) continue
      const ratios: Record<string, number> = {}
      if (label !== cases[2]![0] && relayRate != null && relayCpu != null) {
        ratios["deliveriesPerSec vs relay"] = median(runs, (r) => r.deliveriesPerSec) / relayRate
        ratios["cpuUsPerDelivery vs relay"] = median(runs, (r) => r.cpuUsPerDelivery) / relayCpu
      }
      if (label === mesh && single.length > 0)
        ratios["deliveriesPerSec vs 1 server"] =
          median(runs, (r) => r.deliveriesPerSec) / median(single, (r) => r.deliveriesPerSec)
      rows.push(row(label, runs, Object.keys(ratios).length > 0 ? ratios : undefined))
    }
    const verifyRuns = []
    for (let i = 0; i < context.runs; i++) verifyRuns.push(await rawVerify(context.quick ? 2000 : 10_000))
    rows.push({
      server: "webcrypto",
      case: "raw RSA-PSS verify in the bench process",
      metrics: {
        verificationsPerSec: spreadOf(verifyRuns.map((v) => v.parallel.perSec)),
        sequentialPerSec: spreadOf(verifyRuns.map((v) => v.sequential.perSec)),
        verificationsPerCoreSecond: spreadOf(verifyRuns.map((v) => v.parallel.perCoreSecond)),
        // Shown in the summary's "messages (verifications) per core-second" column, beside the servers'.
        messagesPerCoreSecond: spreadOf(verifyRuns.map((v) => v.parallel.perCoreSecond))
      }
    })
    rows.push({
      server: "node:crypto",
      case: "raw RSA-PSS verify in the bench process (the server's verifier)",
      metrics: {
        verificationsPerSec: spreadOf(verifyRuns.map((v) => v.node.perSec)),
        verificationsPerCoreSecond: spreadOf(verifyRuns.map((v) => v.node.perCoreSecond)),
        messagesPerCoreSecond: spreadOf(verifyRuns.map((v) => v.node.perCoreSecond))
      }
    })
    for (const v of verifyRuns) {
      context.log(
        `  raw RSA-PSS verify: WebCrypto ${formatRate(v.sequential.perSec)}/s one at a time, ${formatRate(v.parallel.perSec)}/s in flight ` +
          `(${formatRate(v.parallel.perCoreSecond)} per CPU-second); node:crypto ${formatRate(v.node.perSec)}/s (${formatRate(v.node.perCoreSecond)} per CPU-second)`
      )
    }
    if (relayRate === undefined) notes.push("no relay fan-out result to compare with (run the fanout scenario first)")
    notes.push(
      "messagesPerCoreSecond: client messages per server CPU-second; verificationsPerCoreSecond: RSA-PSS checks made (one per message at its home server, one more per neighbour for public chats) per server CPU-second, beside the raw verifiers' rows",
      "clients run on the load generator's WebSocket wire inside the bench process (one process; the relay's are spread over the load generator's workers), so on a busy box deliveries/s is bounded by that process: compare CPU per delivery first"
    )
    return {
      scenario: "neighbourhood",
      title: neighbourhood.title,
      settings: {
        senders: SENDERS,
        window: "the fanout rule: ~256 KiB per receiver (46 public chats of ~570 B)",
        payloadBytes: PAYLOAD,
        perSender,
        runs: context.runs,
        clients: 100
      },
      rows,
      notes,
      skipped
    }
  }
}
