/**
 * Loaded into every server under test (bun --preload, node --import): on SIGUSR2 it runs a full
 * garbage collection and writes the process's RSS and JS heap figures to gcReportPath(pid), so the
 * idle scenario samples every server the same way, after collecting what connecting left behind.
 * Plain JavaScript so that Bun and Node load the same file; Node needs --expose-gc for global.gc.
 */
import { writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const reportPath = join(tmpdir(), `switchboard-gc-${process.pid}.json`)

const heapFigures = async () => {
  if (globalThis.Bun) {
    const { heapStats } = await import("bun:jsc")
    const stats = heapStats()
    return {
      heapUsed: stats.heapSize,
      heapCapacity: stats.heapCapacity,
      extraMemory: stats.extraMemorySize,
      objectTypeCounts: stats.objectTypeCounts
    }
  }
  const { heapUsed, heapTotal, external } = process.memoryUsage()
  return { heapUsed, heapCapacity: heapTotal, extraMemory: external }
}

process.on("SIGUSR2", async () => {
  // Twice: JSC's first full collection can leave objects that a finalizer of the first freed.
  for (let i = 0; i < 2; i++) {
    if (globalThis.Bun) Bun.gc(true)
    else globalThis.gc?.()
  }
  const heap = await heapFigures()
  writeFileSync(reportPath, JSON.stringify({ rss: process.memoryUsage().rss, ...heap }))
})
