import { readdirSync, readFileSync, readlinkSync } from "node:fs"
import os from "node:os"

/** Linux reports utime/stime in clock ticks; 100 per second on every common kernel config. */
const CLOCK_TICKS_PER_SECOND = 100

/** CPU time (user + system) a process has used so far, in microseconds; NaN when it is gone. */
export const cpuMicros = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name is in parentheses and may contain spaces: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const utime = Number(fields[11])
    const stime = Number(fields[12])
    return ((utime + stime) * 1_000_000) / CLOCK_TICKS_PER_SECOND
  } catch {
    return Number.NaN
  }
}

/** The pid of the process listening on a loopback TCP port (/proc/net/tcp, then whose fd holds that socket). */
export const pidListeningOn = (port: number): number | undefined => {
  const hex = port.toString(16).toUpperCase().padStart(4, "0")
  const inode = readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .find((fields) => fields[1]?.endsWith(`:${hex}`) && fields[3] === "0A")?.[9]
  if (inode === undefined) return undefined
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      for (const fd of readdirSync(`/proc/${entry}/fd`))
        if (readlinkSync(`/proc/${entry}/fd/${fd}`) === `socket:[${inode}]`) return Number(entry)
    } catch {}
  }
  return undefined
}

/** Resident set size in bytes; NaN when the process is gone. */
export const rssBytes = (pid: number): number => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const match = /VmRSS:\s+(\d+) kB/.exec(status)
    return match ? Number(match[1]) * 1024 : Number.NaN
  } catch {
    return Number.NaN
  }
}

export interface CpuSample {
  readonly at: number
  readonly micros: ReadonlyArray<number>
}

export const sampleCpu = (pids: ReadonlyArray<number>): CpuSample => ({
  at: performance.now(),
  micros: pids.map(cpuMicros)
})

/** CPU used between two samples, summed over the pids, in microseconds. */
export const cpuBetween = (from: CpuSample, to: CpuSample): number =>
  to.micros.reduce((sum, value, i) => sum + (value - (from.micros[i] ?? Number.NaN)), 0)

/** Soft and hard RLIMIT_NOFILE of this process (children inherit it). */
const openFiles = (): [number, number] => {
  try {
    const match = /Max open files\s+(\d+)\s+(\d+)/.exec(readFileSync("/proc/self/limits", "utf8"))
    if (match) return [Number(match[1]), Number(match[2])]
  } catch {}
  return [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]
}

/** How many files (so sockets) one process may open. */
export const openFilesLimit = () => openFiles()[0]

/** The machine a result was measured on, committed next to the figures. */
export const machine = () => {
  const cpus = os.cpus()
  return {
    nproc: cpus.length,
    cpuModel: cpus[0]?.model ?? "unknown",
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    kernel: os.release(),
    bun: Bun.version,
    node: nodeVersion(),
    openFilesSoftHard: openFiles().join("/")
  }
}

const nodeVersion = (): string => {
  try {
    const result = Bun.spawnSync(["node", "--version"])
    return result.stdout.toString().trim() || "not installed"
  } catch {
    return "not installed"
  }
}
