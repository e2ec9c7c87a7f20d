import { existsSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** What bench/lib/gc-hook.mjs reports after a full collection in a server under test. */
export interface GcReport {
  readonly rss: number
  /** Bytes held by live JS objects. */
  readonly heapUsed: number
  /** Bytes the JS heap keeps (live objects plus free space in its blocks). */
  readonly heapCapacity: number
  /** Memory the engine is told about outside the heap (buffers, native objects). */
  readonly extraMemory: number
  /** JS objects by type (Bun only). */
  readonly objectTypeCounts?: Record<string, number>
}

/** The object types that grew by at least a quarter per connection between two reports, most first: "Object 4.0, string 1.8". */
export const objectsPerConnection = (before: GcReport, after: GcReport, connections: number): string => {
  const from = before.objectTypeCounts ?? {}
  return Object.entries(after.objectTypeCounts ?? {})
    .map(([type, n]) => [type, (n - (from[type] ?? 0)) / connections] as const)
    .filter(([, n]) => n >= 0.25)
    .sort((a, b) => b[1] - a[1])
    .map(([type, n]) => `${type} ${n.toFixed(1)}`)
    .join(", ")
}

const reportPath = (pid: number) => join(tmpdir(), `switchboard-gc-${pid}.json`)

/** Asks each server process for a full GC (SIGUSR2, answered by the hook) and waits for its figures. */
export const collectGarbage = async (pids: ReadonlyArray<number>, timeoutMs = 10_000): Promise<Array<GcReport>> =>
  Promise.all(
    pids.map(async (pid) => {
      const path = reportPath(pid)
      rmSync(path, { force: true })
      process.kill(pid, "SIGUSR2")
      const deadline = performance.now() + timeoutMs
      while (!existsSync(path)) {
        if (performance.now() > deadline) throw new Error(`process ${pid} did not report a GC within ${timeoutMs} ms`)
        await Bun.sleep(20)
      }
      // The hook writes the file in one call; a read racing it sees an empty or partial file, so retry.
      while (true) {
        try {
          const report = JSON.parse(readFileSync(path, "utf8")) as GcReport
          rmSync(path, { force: true })
          return report
        } catch (error) {
          if (performance.now() > deadline) throw error
          await Bun.sleep(20)
        }
      }
    })
  )
