import type { NeighbourhoodClient } from "../../src/neighbourhood/Client.ts"
import { encodeFrame, Opcode, WsConn } from "../loadgen/WsWire.ts"
import { cpuBetween, sampleCpu } from "../lib/proc.ts"
import { waitFor } from "../lib/servers.ts"
import { Histogram } from "../lib/stats.ts"
import { windowFor } from "./common.ts"
import { sleep } from "./neighbourhood-servers.ts"
import type { ReceiverPool } from "./neighbourhood-receivers.ts"

/**
 * The closed-loop replay of pre-signed frames: senders (and the probe that acknowledges their
 * messages) live in the bench process on the load generator's WebSocket wire; the other receivers
 * are a ReceiverPool in their own processes, as the relay's are in the fanout scenario.
 */

export const SENDERS = 10
/** The load generator's send tick (bench/loadgen/worker.ts), so the servers see the relay's arrival pattern. */
const SEND_TICK_MS = 2
/** Messages in flight per sender: the fanout scenario's rule (~256 KiB per receiver) for the signed frame's size. */
const windowOf = (frames: ReadonlyArray<ReadonlyArray<string>>) => windowFor(SENDERS, frames[0]?.[0]?.length ?? 64)

export interface BenchClient {
  readonly client: NeighbourhoodClient
  readonly conn: WsConn
  received: number
}

/** A client in this process on the load generator's wire (frames read straight from TCP chunks). */
export const connectClient = (port: number, client: NeighbourhoodClient, onFrame?: (text: string) => void) =>
  new Promise<BenchClient>((resolve, reject) => {
    let bench: BenchClient | undefined
    WsConn.open(
      0,
      { url: `ws://127.0.0.1:${port}/` },
      {
        onOpen: (conn) => {
          bench = { client, conn, received: 0 }
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
export const waitForClients = async (port: number, total: number) => {
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

export interface RunFigures {
  readonly messagesPerSec: number
  readonly deliveriesPerSec: number
  readonly cpuUsPerDelivery: number
  readonly cpuUsPerMessage: number
  /** RSA-PSS verifications the servers made per CPU-second they used (all their work included). */
  readonly verificationsPerCoreSecond: number
  /** CPU the clients used (bench process and receiver processes), in cores. */
  readonly clientCores: number
  /** CPU the servers used, in cores. */
  readonly serverCores: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly lost: number
}

export interface ReplayPlan {
  readonly senders: ReadonlyArray<BenchClient>
  readonly frames: ReadonlyArray<ReadonlyArray<string>>
  /** Clients in this process whose deliveries count (the probe, and senders that receive). */
  readonly local: ReadonlyArray<BenchClient>
  readonly pool: ReceiverPool
  readonly probe: { onDone: (sender: number, seq: number) => void }
  readonly deliveriesPerMessage: number
  readonly serverPids: ReadonlyArray<number>
  readonly verificationsPerMessage: number
}

/**
 * Replays pre-signed frames closed-loop; the window measured is from 10 % to 90 % of the
 * messages acknowledged by the probe, so ramp-up and drain are left out.
 */
export const replay = async (plan: ReplayPlan): Promise<RunFigures> => {
  const { senders, frames, local, pool, probe, serverPids } = plan
  // Masked wire frames made before the clock starts: the senders only write bytes.
  const wire = frames.map((list) => list.map((frame) => encodeFrame(Opcode.text, Buffer.from(frame))))
  const total = frames.reduce((n, f) => n + f.length, 0)
  const next = frames.map(() => 0)
  const sentAt = frames.map((f) => new Float64Array(f.length))
  const latency = new Histogram()
  const clientPids = [process.pid, ...pool.pids]
  let done = 0
  const localReceived = () => local.reduce((n, r) => n + r.received, 0)
  const received = async (localNow: number) => localNow + (await pool.received())
  const sample = () => {
    const localNow = localReceived()
    return {
      at: performance.now(),
      deliveries: received(localNow),
      cpu: sampleCpu(serverPids),
      clientCpu: sampleCpu(clientPids),
      done
    }
  }
  let mark: ReturnType<typeof sample> | undefined
  let end: typeof mark
  const acked = frames.map(() => 0)
  const window = windowOf(frames)
  // As the load generator's senders: every tick, each sender writes what its window allows in one write.
  const tick = () => {
    const now = performance.now()
    for (let s = 0; s < senders.length; s++) {
      const from = next[s]!
      const upTo = Math.min(wire[s]!.length, acked[s]! + window)
      if (upTo <= from) continue
      for (let i = from; i < upTo; i++) sentAt[s]![i] = now
      next[s] = upTo
      const batch = wire[s]!.slice(from, upTo)
      senders[s]!.conn.writeRaw(batch.length === 1 ? batch[0]! : Buffer.concat(batch))
    }
  }
  const finished = new Promise<void>((resolve) => {
    probe.onDone = (sender, seq) => {
      latency.record((performance.now() - sentAt[sender]![seq]!) * 1000)
      done++
      acked[sender]!++
      if (!mark && done >= total * 0.1) mark = sample()
      if (!end && done >= total * 0.9) end = sample()
      if (done === total) resolve()
    }
  })
  const before = await received(localReceived())
  tick()
  const ticker = setInterval(tick, SEND_TICK_MS)
  await Promise.race([finished, sleep(120_000)])
  clearInterval(ticker)
  await sleep(300)
  if (!mark || !end) throw new Error(`only ${done} of ${total} messages arrived`)
  const seconds = (end.at - mark.at) / 1000
  const deliveries = (await end.deliveries) - (await mark.deliveries)
  const messages = end.done - mark.done
  const cpu = cpuBetween(mark.cpu, end.cpu)
  return {
    messagesPerSec: messages / seconds,
    deliveriesPerSec: deliveries / seconds,
    cpuUsPerDelivery: cpu / deliveries,
    cpuUsPerMessage: cpu / messages,
    verificationsPerCoreSecond: (messages * plan.verificationsPerMessage) / (cpu / 1e6),
    clientCores: cpuBetween(mark.clientCpu, end.clientCpu) / 1e6 / seconds,
    serverCores: cpu / 1e6 / seconds,
    p50Ms: latency.quantile(0.5) / 1000,
    p99Ms: latency.quantile(0.99) / 1000,
    lost: total * plan.deliveriesPerMessage - ((await received(localReceived())) - before)
  }
}
