import { join } from "node:path"
import { cpuBetween, rssBytes, sampleCpu } from "../lib/proc.ts"
import { Histogram, type LatencySummary, summarizeLatency } from "../lib/stats.ts"
import type { ChurnReport, FromWorker, SendPlan, ToWorker, WorkerReport } from "./Ipc.ts"
import { adapterFor, type ClientSpec, type TargetConfig } from "./Protocols.ts"

/**
 * Spawns load-generator worker processes, spreads clients over them and over source addresses
 * 127.0.0.2..251, closes the pacing loop (senders stay at most `window` messages ahead of the
 * slowest regular receiver), and turns the workers' counts into one result.
 */

const workerPath = join(import.meta.dir, "worker.ts")
const SOURCE_ADDRESSES = 250

export const sourceAddress = (index: number) => `127.0.0.${2 + (index % SOURCE_ADDRESSES)}`

export interface GroupPlan {
  readonly group: string
  readonly units: number
  readonly senders: number
  /** How many of the receivers read slowly. */
  readonly slowReceivers?: number
  readonly unitPrefix?: string
}

/** Clients of one group: senders first, then receivers, slow receivers last. */
export const planGroup = (plan: GroupPlan, firstIndex = 0): Array<ClientSpec> =>
  Array.from({ length: plan.units }, (_, i) => {
    const index = firstIndex + i
    return {
      index,
      unit: `${plan.unitPrefix ?? "u"}${index}`,
      group: plan.group,
      sender: i < plan.senders ? i : -1,
      localAddress: sourceAddress(index),
      slow: i >= plan.units - (plan.slowReceivers ?? 0)
    }
  })

interface Worker {
  readonly process: ReturnType<typeof Bun.spawn>
  readonly clients: ReadonlyArray<ClientSpec>
  readonly inbox: Array<FromWorker>
  waiters: Array<(message: FromWorker) => void>
  acked: ReadonlyArray<number | null>
  delivered: number
  /** The run whose progress reports count (older ones are still in flight when a run starts). */
  run: number
}

export interface RunOptions {
  readonly plan: Omit<SendPlan, "run">
  readonly warmupMs: number
  readonly measureMs: number
  /** After senders stop: wait at most this long for the last deliveries. */
  readonly drainMs: number
  /** Server processes whose CPU time and memory are measured. */
  readonly serverPids: ReadonlyArray<number>
  /** Called every ~250 ms while measuring (progress line, memory samples). */
  readonly onTick?: (elapsedMs: number, delivered: number) => void
}

export interface RunResult {
  readonly deliveries: number
  readonly seconds: number
  readonly deliveriesPerSec: number
  readonly latency: LatencySummary
  /** Server CPU time per delivery in the measured window, µs. */
  readonly serverCpuPerDeliveryUs: number
  /** Server CPU use in the measured window, in cores (1 = one core busy). */
  readonly serverCores: number
  readonly clientCores: number
  readonly sent: number
  readonly expected: number
  readonly lost: number
  readonly duplicates: number
  readonly slowDelivered: number
  readonly closes: Record<string, number>
  readonly slowCloses: Record<string, number>
  readonly serverRssBytes: number
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export class LoadGenerator {
  private acks: Array<number>
  private runNumber = 0
  private ackTimer: ReturnType<typeof setInterval> | undefined
  private closed = false

  private constructor(
    readonly workers: ReadonlyArray<Worker>,
    readonly clients: ReadonlyArray<ClientSpec>,
    readonly senders: number,
    readonly echoesToSender: boolean,
    readonly connectMs: number,
    readonly connectFailures: number,
    readonly connectErrors: ReadonlyArray<string>,
    /** Clients never tried because the connect deadline passed. */
    readonly notAttempted: number
  ) {
    this.acks = Array.from({ length: senders }, () => -1)
  }

  /** Spawns `workerCount` processes and connects every client (login + upgrade + handshake). */
  static async connect(options: {
    readonly target: TargetConfig
    readonly clients: ReadonlyArray<ClientSpec>
    readonly workers: number
    readonly clockBase: number
    readonly connectConcurrency?: number
    /** Stop starting connections after this long; those not attempted count in `notConnected`. */
    readonly connectDeadlineMs?: number
  }): Promise<LoadGenerator> {
    const senders = options.clients.filter((client) => client.sender >= 0).length
    const count = Math.max(1, Math.min(options.workers, options.clients.length))
    const shares: Array<Array<ClientSpec>> = Array.from({ length: count }, () => [])
    options.clients.forEach((client, i) => {
      shares[i % count]!.push(client)
    })
    const workers = shares.map(spawnWorker)
    const started = performance.now()
    const readies = await askAll(
      workers,
      (worker) => ({
        type: "setup",
        clockBase: options.clockBase,
        target: options.target,
        clients: worker.clients,
        senders,
        connectConcurrency: options.connectConcurrency ?? 64,
        connectDeadlineMs: options.connectDeadlineMs ?? 3_600_000
      }),
      "ready"
    ).catch(async (error) => {
      for (const worker of workers) worker.process.kill()
      throw error
    })
    const connectMs = performance.now() - started
    const failures = readies.reduce((sum, ready) => sum + ready.failed, 0)
    const notAttempted = readies.reduce((sum, ready) => sum + ready.notAttempted, 0)
    const errors = readies.flatMap((ready) => ready.errors)
    const echoes = adapterFor(options.target).echoesToSender
    return new LoadGenerator(workers, options.clients, senders, echoes, connectMs, failures, errors, notAttempted)
  }

  /** How many regular (non-slow) receivers each sender's messages should reach. */
  private expectedReceivers(): number {
    const regular = this.clients.filter((client) => !client.slow).length
    return this.echoesToSender ? regular : regular - 1
  }

  async run(options: RunOptions): Promise<RunResult> {
    this.runNumber += 1
    this.acks = Array.from({ length: this.senders }, () => -1)
    for (const worker of this.workers) {
      worker.run = this.runNumber
      worker.acked = []
      worker.delivered = 0
      send(worker, { type: "send", plan: { ...options.plan, run: this.runNumber } })
    }
    this.ackTimer = setInterval(() => this.shareAcks(), 2)
    await sleep(options.warmupMs)
    const markedAt = await askAll(this.workers, () => ({ type: "mark" }), "marked")
    const startDelivered = markedAt.reduce((sum, marked) => sum + marked.delivered, 0)
    const workerPids = this.workers.map((worker) => worker.process.pid)
    const cpuStart = sampleCpu(options.serverPids)
    const clientStart = sampleCpu(workerPids)
    const startedAt = performance.now()
    while (performance.now() - startedAt < options.measureMs) {
      await sleep(Math.min(250, options.measureMs - (performance.now() - startedAt)))
      const delivered = this.workers.reduce((sum, worker) => sum + worker.delivered, 0) - startDelivered
      options.onTick?.(performance.now() - startedAt, delivered)
    }
    const cpuEnd = sampleCpu(options.serverPids)
    const clientEnd = sampleCpu(workerPids)
    const seconds = (performance.now() - startedAt) / 1000
    const serverRss = options.serverPids.reduce((sum, pid) => sum + rssBytes(pid), 0)
    const reportsAtEnd = await askAll(this.workers, () => ({ type: "report" }), "report")
    const windowDeliveries = reportsAtEnd.reduce((sum, r) => sum + r.report.deliveredSinceMark, 0)
    const latency = new Histogram()
    for (const r of reportsAtEnd) latency.merge(r.report.latency)

    const stopped = await askAll(this.workers, () => ({ type: "stop" }), "stopped")
    const sentPerSender = Array.from({ length: this.senders }, (_, s) =>
      stopped.reduce((sum, stop) => sum + (stop.sent[s] ?? 0), 0)
    )
    const sent = sentPerSender.reduce((a, b) => a + b, 0)
    const expected = sent * this.expectedReceivers()
    const drainUntil = performance.now() + options.drainMs
    let final: Array<WorkerReport> = []
    while (true) {
      final = (await askAll(this.workers, () => ({ type: "report" }), "report")).map((r) => r.report)
      const unique = final.reduce((sum, r) => sum + r.unique.reduce((a, b) => a + b, 0), 0)
      if (unique >= expected || performance.now() > drainUntil) break
      await sleep(50)
    }
    clearInterval(this.ackTimer)
    const unique = final.reduce((sum, r) => sum + r.unique.reduce((a, b) => a + b, 0), 0)
    const serverCpu = cpuBetween(cpuStart, cpuEnd)
    return {
      deliveries: windowDeliveries,
      seconds,
      deliveriesPerSec: windowDeliveries / seconds,
      latency: summarizeLatency(latency),
      serverCpuPerDeliveryUs: windowDeliveries > 0 ? serverCpu / windowDeliveries : Number.NaN,
      serverCores: serverCpu / 1e6 / seconds,
      clientCores: cpuBetween(clientStart, clientEnd) / 1e6 / seconds,
      sent,
      expected,
      lost: Math.max(0, expected - unique),
      duplicates: final.reduce((sum, r) => sum + r.duplicates.reduce((a, b) => a + b, 0), 0),
      slowDelivered: final.reduce((sum, r) => sum + r.slowUnique.reduce((a, b) => a + b, 0), 0),
      closes: mergeCounts(final.map((r) => r.closes)),
      slowCloses: mergeCounts(final.map((r) => r.slowCloses)),
      serverRssBytes: serverRss
    }
  }

  /** Login + connect + close loops for `durationMs`, `concurrency` lanes per worker. */
  static async churn(options: {
    readonly target: TargetConfig
    readonly workers: number
    readonly concurrency: number
    readonly durationMs: number
    readonly clockBase: number
    readonly group: string
  }): Promise<{ completed: number; failed: number; errors: Array<string>; latency: LatencySummary; seconds: number }> {
    const workers = Array.from({ length: options.workers }, (_, w) =>
      spawnWorker(
        Array.from({ length: options.concurrency }, (_, lane) => {
          const index = w * options.concurrency + lane
          return {
            index,
            unit: `c${index}`,
            group: options.group,
            sender: -1,
            localAddress: sourceAddress(index),
            slow: false
          }
        })
      )
    )
    try {
      const started = performance.now()
      const reports = await askAll(
        workers,
        (worker) => ({
          type: "churn",
          clockBase: options.clockBase,
          target: options.target,
          plan: { concurrency: options.concurrency, durationMs: options.durationMs },
          clients: worker.clients
        }),
        "churned"
      )
      const seconds = (performance.now() - started) / 1000
      const latency = new Histogram()
      for (const r of reports) latency.merge(r.report.latency)
      const sum = (pick: (r: ChurnReport) => number) => reports.reduce((total, r) => total + pick(r.report), 0)
      return {
        completed: sum((r) => r.completed),
        failed: sum((r) => r.failed),
        errors: reports.flatMap((r) => [...r.report.errors]).slice(0, 5),
        latency: summarizeLatency(latency),
        seconds
      }
    } finally {
      for (const worker of workers) stopWorker(worker)
    }
  }

  private shareAcks(): void {
    for (let s = 0; s < this.senders; s++) {
      let min = Number.POSITIVE_INFINITY
      for (const worker of this.workers) {
        const seen = worker.acked[s]
        if (seen !== null && seen !== undefined && seen < min) min = seen
      }
      this.acks[s] = min === Number.POSITIVE_INFINITY ? -1 : min
    }
    for (const worker of this.workers)
      if (worker.clients.some((c) => c.sender >= 0))
        send(worker, { type: "acks", run: this.runNumber, acks: this.acks })
  }

  /** Lets slow readers read at full speed; returns closes seen by then (slow readers apart). */
  async release(
    waitMs: number
  ): Promise<{ closes: Record<string, number>; slowCloses: Record<string, number>; slowDelivered: number }> {
    await askAll(this.workers, () => ({ type: "release" }), "released")
    await sleep(waitMs)
    const reports = (await askAll(this.workers, () => ({ type: "report" }), "report")).map((r) => r.report)
    return {
      closes: mergeCounts(reports.map((r) => r.closes)),
      slowCloses: mergeCounts(reports.map((r) => r.slowCloses)),
      slowDelivered: reports.reduce((sum, r) => sum + r.slowUnique.reduce((a, b) => a + b, 0), 0)
    }
  }

  /** Closes seen so far, regular clients and slow readers apart (for idle connections). */
  async closes(): Promise<{ closes: Record<string, number>; slowCloses: Record<string, number> }> {
    const reports = (await askAll(this.workers, () => ({ type: "report" }), "report")).map((r) => r.report)
    return {
      closes: mergeCounts(reports.map((r) => r.closes)),
      slowCloses: mergeCounts(reports.map((r) => r.slowCloses))
    }
  }

  workerPids(): Array<number> {
    return this.workers.map((worker) => worker.process.pid)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.ackTimer)
    await Promise.all(this.workers.map(stopWorker))
  }
}

const mergeCounts = (tallies: ReadonlyArray<Record<string, number>>) => {
  const out: Record<string, number> = {}
  for (const tally of tallies) for (const [key, count] of Object.entries(tally)) out[key] = (out[key] ?? 0) + count
  return out
}

/** Every spawned worker, so an interrupted run can still kill them. */
export const liveWorkers = new Set<ReturnType<typeof Bun.spawn>>()

const spawnWorker = (clients: ReadonlyArray<ClientSpec>): Worker => {
  const worker: Worker = {
    clients,
    inbox: [],
    waiters: [],
    acked: [],
    delivered: 0,
    run: 0,
    process: undefined as never
  }
  const child = Bun.spawn([process.execPath, workerPath], {
    stdio: ["ignore", "inherit", "inherit"],
    serialization: "json",
    ipc(message: FromWorker) {
      if (message.type === "progress") {
        if (message.run !== worker.run) return
        worker.acked = message.acked
        worker.delivered = message.delivered
        return
      }
      const waiter = worker.waiters.shift()
      if (waiter) waiter(message)
      else worker.inbox.push(message)
    }
  })
  ;(worker as { process: typeof child }).process = child
  liveWorkers.add(child)
  void child.exited.then(() => {
    liveWorkers.delete(child)
    const waiters = worker.waiters.splice(0)
    for (const waiter of waiters)
      waiter({ type: "error", message: `worker ${child.pid} exited with ${child.exitCode}` })
  })
  return worker
}

const send = (worker: Worker, message: ToWorker) => {
  if (!worker.process.killed && worker.process.exitCode === null) worker.process.send(message)
}

const nextMessage = (worker: Worker): Promise<FromWorker> => {
  const queued = worker.inbox.shift()
  if (queued) return Promise.resolve(queued)
  if (worker.process.exitCode !== null) return Promise.resolve({ type: "error", message: "worker has exited" })
  return new Promise((resolve) => worker.waiters.push(resolve))
}

const expect = async <T extends FromWorker["type"]>(
  worker: Worker,
  type: T
): Promise<Extract<FromWorker, { type: T }>> => {
  const message = await nextMessage(worker)
  if (message.type === "error") throw new Error(`load generator worker: ${message.message}`)
  if (message.type !== type) throw new Error(`load generator worker answered ${message.type}, expected ${type}`)
  return message as Extract<FromWorker, { type: T }>
}

const request = <T extends FromWorker["type"]>(worker: Worker, message: ToWorker, answer: T) => {
  send(worker, message)
  return expect(worker, answer)
}

/** Sends each worker its message and waits for every answer. */
const askAll = <T extends FromWorker["type"]>(
  workers: ReadonlyArray<Worker>,
  message: (worker: Worker) => ToWorker,
  answer: T
) => Promise.all(workers.map((worker) => request(worker, message(worker), answer)))

const stopWorker = async (worker: Worker) => {
  send(worker, { type: "close" })
  const exited = await Promise.race([worker.process.exited.then(() => true), sleep(2000).then(() => false)])
  if (!exited) worker.process.kill(9)
}
