/**
 * One load-generator process: opens its share of the clients, sends paced benchmark messages for
 * its senders, and counts every delivery (per sender sequence numbers: loss and duplicates).
 * Driven over IPC by Coordinator.ts; exits when told to or when the coordinator goes away.
 */
import { Histogram } from "../lib/stats.ts"
import type { ChurnPlan, FromWorker, SendPlan, ToWorker } from "./Ipc.ts"
import { type Marker, readMarker } from "./Marker.ts"
import { type Adapter, adapterFor, type ClientSpec } from "./Protocols.ts"
import { encodeFrame, nowMicros, WsConn, type WsHandlers } from "./WsWire.ts"

const PROGRESS_EVERY_MS = 5
const SEND_TICK_MS = 2
const READY_TIMEOUT_MS = 15_000
/** A sender stops writing while this many bytes wait for its socket (bounded client buffers). */
const SENDER_PENDING_LIMIT = 256 * 1024
const MAX_PER_TICK = 512

const post = (message: FromWorker) => process.send!(message)

interface Client {
  readonly spec: ClientSpec
  readonly row: number
  conn?: WsConn
  ready: boolean
  resolveReady?: () => void
  rejectReady?: (error: Error) => void
}

let adapter: Adapter
let clockBase = 0
let senders = 0
let clients: Array<Client> = []
let lastSeq = new Int32Array(0)
let unique = new Float64Array(0)
let duplicates = new Float64Array(0)
let slowUnique = new Float64Array(0)
let sent = new Float64Array(0)
let acks: Array<number> = []
let delivered = 0
let deliveredAtMark = 0
/** Wall-clock time (ms) a slow reader was first closed, 0 while none was. */
let firstSlowCloseAt = 0
const latency = new Histogram()
const closes: Record<string, number> = {}
const slowCloses: Record<string, number> = {}
const marker: Marker = { run: 0, sender: 0, seq: 0, sentAt: 0 }
let run = 0
let progressTimer: ReturnType<typeof setInterval> | undefined
let sendTimer: ReturnType<typeof setInterval> | undefined
let slowTimer: ReturnType<typeof setInterval> | undefined

const handlers: WsHandlers = {
  onOpen: (conn) => {
    const client = conn.user as Client
    adapter.onOpen(conn, client.spec)
  },
  onMessage: (conn, opcode, payload, now) => {
    const client = conn.user as Client
    if (!client.ready) {
      try {
        if (adapter.handshake(conn, opcode, payload) === "ready") {
          client.ready = true
          client.resolveReady?.()
        }
      } catch (error) {
        client.rejectReady?.(error as Error)
        conn.close(1000)
      }
      return
    }
    const offset = adapter.deliveryOffset(opcode, payload)
    if (offset < 0 || !readMarker(payload, marker, offset)) return
    const s = marker.sender
    if (marker.run !== run || s >= senders) return
    const k = client.row * senders + s
    if (marker.seq <= lastSeq[k]!) {
      duplicates[s]! += 1
      return
    }
    lastSeq[k] = marker.seq
    if (client.spec.slow) slowUnique[s]! += 1
    else {
      unique[s]! += 1
      delivered += 1
      latency.record(now - marker.sentAt)
    }
    adapter.reply?.(conn, payload)
  },
  onChunkEnd: (conn) => adapter.chunkEnd?.(conn),
  onClose: (conn, code, reason) => {
    const client = conn.user as Client
    if (client.spec.slow && firstSlowCloseAt === 0) firstSlowCloseAt = Date.now()
    const tally = client.spec.slow ? slowCloses : closes
    tally[code] = (tally[code] ?? 0) + 1
    if (!client.ready) client.rejectReady?.(new Error(`closed ${code} before ready: ${reason}`))
  }
}

/** Opens one client and waits until its handshake is done. */
const openClient = async (client: Client): Promise<void> => {
  const target = await adapter.prepare(client.spec)
  const ready = new Promise<void>((resolve, reject) => {
    client.resolveReady = resolve
    client.rejectReady = reject
  })
  const conn = await WsConn.open(client.spec.index, target, handlers, clockBase)
  conn.user = client
  client.conn = conn
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("handshake timed out")), READY_TIMEOUT_MS)
  })
  try {
    await Promise.race([ready, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Runs tasks with at most `limit` in flight. */
const pool = async <A>(items: ReadonlyArray<A>, limit: number, task: (item: A) => Promise<void>) => {
  let next = 0
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]!)
  })
  await Promise.all(lanes)
}

const setup = async (message: Extract<ToWorker, { type: "setup" }>) => {
  clockBase = message.clockBase
  adapter = adapterFor(message.target)
  senders = message.senders
  clients = message.clients.map((spec, row) => ({ spec, row, ready: false }))
  lastSeq = new Int32Array(clients.length * senders).fill(-1)
  unique = new Float64Array(senders)
  duplicates = new Float64Array(senders)
  slowUnique = new Float64Array(senders)
  sent = new Float64Array(senders)
  acks = Array.from({ length: senders }, () => -1)
  const errors: Array<string> = []
  let failed = 0
  let skipped = 0
  const started = performance.now()
  const deadline = started + message.connectDeadlineMs
  await pool(clients, message.connectConcurrency, async (client) => {
    if (performance.now() > deadline) {
      skipped += 1
      return
    }
    try {
      await openClient(client)
    } catch (error) {
      failed += 1
      if (errors.length < 5) errors.push(`${client.spec.unit}: ${(error as Error).message}`)
    }
  })
  const connectMs = performance.now() - started
  for (const client of clients) if (client.spec.slow && client.conn) startSlowReading()
  if (senders > 0) progressTimer = setInterval(reportProgress, PROGRESS_EVERY_MS)
  post({
    type: "ready",
    connected: clients.length - failed - skipped,
    failed,
    notAttempted: skipped,
    errors,
    connectMs
  })
}

/** A slow reader takes one TCP chunk every second and leaves the rest waiting (measured: well under 1 MB/s). */
const SLOW_READ_EVERY_MS = 1000
const startSlowReading = () => {
  if (slowTimer) return
  const slow = clients.filter((client) => client.spec.slow)
  for (const client of slow) {
    client.conn!.pauseAfterChunk = true
    client.conn!.pauseReading(true)
  }
  slowTimer = setInterval(() => {
    for (const client of slow) client.conn?.pauseReading(false)
  }, SLOW_READ_EVERY_MS)
}

const countsTowardWindow = (client: Client, s: number) =>
  !client.spec.slow &&
  client.ready &&
  client.conn?.state === "open" &&
  (adapter.echoesToSender || client.spec.sender !== s)

const reportProgress = () => {
  const acked: Array<number | null> = []
  for (let s = 0; s < senders; s++) {
    let min = Number.POSITIVE_INFINITY
    for (const client of clients) {
      if (!countsTowardWindow(client, s)) continue
      const seen = lastSeq[client.row * senders + s]!
      if (seen < min) min = seen
    }
    acked.push(min === Number.POSITIVE_INFINITY ? null : min)
  }
  post({ type: "progress", run, acked, delivered })
}

/** Every run starts from zero, so runs of one connected set of clients are independent. */
const resetCounts = (nextRun: number) => {
  run = nextRun
  lastSeq.fill(-1)
  for (const counts of [unique, duplicates, slowUnique, sent]) counts.fill(0)
  acks = Array.from({ length: senders }, () => -1)
  delivered = 0
  deliveredAtMark = 0
  firstSlowCloseAt = 0
  latency.reset()
  for (const tally of [closes, slowCloses]) for (const key of Object.keys(tally)) delete tally[key]
}

const startSending = (plan: SendPlan) => {
  resetCounts(plan.run)
  const mine = clients.filter((client) => client.spec.sender >= 0 && client.ready)
  const started = performance.now()
  sendTimer = setInterval(() => {
    const elapsed = (performance.now() - started) / 1000
    const sentAt = nowMicros(clockBase)
    for (const client of mine) {
      const conn = client.conn!
      if (conn.state !== "open" || conn.pendingBytes > SENDER_PENDING_LIMIT) continue
      const s = client.spec.sender
      const already = sent[s]!
      const cap =
        plan.mode === "paced" ? Math.min(plan.maxPerSender, Math.floor(plan.rate * elapsed)) : plan.maxPerSender
      const n = Math.min(MAX_PER_TICK, cap - already, acks[s]! + plan.window + 1 - already)
      if (n <= 0) continue
      const frames: Array<Buffer> = []
      for (let i = 0; i < n; i++) {
        const { opcode, payload } = adapter.message(client.spec, run, already + i, sentAt, plan.payloadBytes)
        frames.push(encodeFrame(opcode, payload))
      }
      conn.writeRaw(frames.length === 1 ? frames[0]! : Buffer.concat(frames))
      sent[s] = already + n
    }
  }, SEND_TICK_MS)
}

const report = () => {
  post({
    type: "report",
    report: {
      unique: [...unique],
      duplicates: [...duplicates],
      slowUnique: [...slowUnique],
      latency: latency.serialize(),
      closes,
      slowCloses,
      sent: [...sent],
      deliveredSinceMark: delivered - deliveredAtMark,
      firstSlowCloseAt
    }
  })
}

/** Login + connect + handshake + close, over and over, by `concurrency` lanes until the deadline. */
const churn = async (plan: ChurnPlan, templates: ReadonlyArray<ClientSpec>) => {
  const deadline = performance.now() + plan.durationMs
  const errors: Array<string> = []
  let completed = 0
  let failed = 0
  latency.reset()
  await Promise.all(
    templates.map(async (template) => {
      for (let round = 0; performance.now() < deadline; round++) {
        const client: Client = { spec: { ...template, unit: `${template.unit}r${round}` }, row: 0, ready: false }
        const started = performance.now()
        try {
          await openClient(client)
          latency.record((performance.now() - started) * 1000)
          completed += 1
        } catch (error) {
          failed += 1
          if (errors.length < 5) errors.push((error as Error).message)
        } finally {
          client.conn?.close(1000)
        }
      }
    })
  )
  post({ type: "churned", report: { completed, failed, errors, latency: latency.serialize() } })
}

const closeAll = () => {
  clearInterval(progressTimer)
  clearInterval(sendTimer)
  clearInterval(slowTimer)
  for (const client of clients) client.conn?.close(1000)
  setTimeout(() => process.exit(0), 50)
}

process.on("message", (message: ToWorker) => {
  const fail = (error: unknown) => post({ type: "error", message: String((error as Error)?.stack ?? error) })
  try {
    switch (message.type) {
      case "setup":
        return void setup(message).catch(fail)
      case "send":
        return startSending(message.plan)
      case "acks":
        if (message.run === run) acks = message.acks as Array<number>
        return
      case "mark":
        latency.reset()
        deliveredAtMark = delivered
        return post({ type: "marked", delivered })
      case "stop":
        clearInterval(sendTimer)
        sendTimer = undefined
        return post({ type: "stopped", sent: [...sent] })
      case "report":
        return report()
      case "churn":
        clockBase = message.clockBase
        adapter = adapterFor(message.target)
        return void churn(message.plan, message.clients).catch(fail)
      case "release":
        clearInterval(slowTimer)
        for (const client of clients) {
          if (!client.spec.slow || !client.conn) continue
          client.conn.pauseAfterChunk = false
          client.conn.pauseReading(false)
        }
        return post({ type: "released" })
      case "close":
        return closeAll()
    }
  } catch (error) {
    fail(error)
  }
})
process.on("disconnect", () => process.exit(0))
