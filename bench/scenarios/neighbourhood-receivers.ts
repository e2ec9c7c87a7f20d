import { join } from "node:path"
import { liveWorkers } from "../loadgen/Coordinator.ts"

/**
 * Receivers of the neighbourhood bench in their own processes (neighbourhood-receiver-worker.ts),
 * spread like the load generator's workers: each connects its clients with their pre-signed hellos
 * and counts deliveries; the scenario reads the counts at the start and end of its window.
 */

export type ToReceiver =
  | { readonly type: "connect"; readonly clients: ReadonlyArray<{ readonly url: string; readonly hello: string }> }
  | { readonly type: "count"; readonly id: number }
  | { readonly type: "close" }

export type FromReceiver =
  | { readonly type: "connected" }
  | { readonly type: "count"; readonly id: number; readonly received: number }
  | { readonly type: "error"; readonly message: string }

const workerPath = join(import.meta.dir, "neighbourhood-receiver-worker.ts")

interface ReceiverProcess {
  readonly child: ReturnType<typeof Bun.spawn>
  readonly waiting: Map<number | "connected", (message: FromReceiver) => void>
}

export interface ReceiverPool {
  readonly pids: ReadonlyArray<number>
  /** Deliveries counted so far by every receiver process. */
  readonly received: () => Promise<number>
  readonly close: () => Promise<void>
}

let nextId = 0

/** Starts `workers` processes and connects `clients` over them (client i in process i mod workers). */
export const startReceivers = async (
  clients: ReadonlyArray<{ readonly url: string; readonly hello: string }>,
  workers: number
): Promise<ReceiverPool> => {
  const count = Math.max(1, Math.min(workers, clients.length))
  const processes: Array<ReceiverProcess> = Array.from({ length: count }, () => {
    const waiting = new Map<number | "connected", (message: FromReceiver) => void>()
    const child = Bun.spawn([process.execPath, workerPath], {
      stdio: ["ignore", "inherit", "inherit"],
      serialization: "json",
      ipc(message: FromReceiver) {
        const key = message.type === "count" ? message.id : "connected"
        const resolve = waiting.get(key)
        waiting.delete(key)
        resolve?.(message)
      }
    })
    liveWorkers.add(child)
    void child.exited.then(() => {
      liveWorkers.delete(child)
      for (const resolve of waiting.values()) resolve({ type: "error", message: `receiver ${child.pid} exited` })
    })
    return { child, waiting }
  })
  const ask = (p: ReceiverProcess, key: number | "connected", message: ToReceiver) =>
    new Promise<FromReceiver>((resolve) => {
      p.waiting.set(key, resolve)
      p.child.send(message)
    })
  const close = async () => {
    await Promise.all(
      processes.map(async (p) => {
        if (p.child.exitCode === null) p.child.send({ type: "close" } satisfies ToReceiver)
        const exited = await Promise.race([p.child.exited.then(() => true), Bun.sleep(2000).then(() => false)])
        if (!exited) p.child.kill(9)
      })
    )
  }
  const answers = await Promise.all(
    processes.map((p, w) =>
      ask(p, "connected", { type: "connect", clients: clients.filter((_, i) => i % count === w) })
    )
  )
  const failed = answers.find((a) => a.type === "error")
  if (failed?.type === "error") {
    await close()
    throw new Error(`receiver: ${failed.message}`)
  }
  return {
    pids: processes.map((p) => p.child.pid),
    received: async () => {
      const id = nextId++
      const counts = await Promise.all(processes.map((p) => ask(p, id, { type: "count", id })))
      return counts.reduce((n, c) => n + (c.type === "count" ? c.received : 0), 0)
    },
    close
  }
}
