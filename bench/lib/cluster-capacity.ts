import { LoadGenerator, planGroup } from "../loadgen/Coordinator.ts"
import type { ClientSpec } from "../loadgen/Protocols.ts"
import {
  type ClusterBrokerKind,
  LOGINS_IN_FLIGHT_PER_WORKER,
  openFds,
  redisUsedMemory,
  withClusterStack
} from "./cluster-stack.ts"
import { cpuBetween, cpuMicros, openFilesLimit, rssBytes, sampleCpu } from "./proc.ts"

/**
 * The capacity case: N idle authenticated DroneEngage units (login through the authenticator +
 * upgrade each) over several relay processes sharing one port (SO_REUSEPORT), held idle with
 * heartbeats on; RSS per connection, idle CPU, time to connect, and where it stopped if it did.
 */

/** Clients one relay process or load-generator worker should hold at most: under 20,000 open files with room to spare. */
export const PER_PROCESS = 15_000
/** Units per DroneEngage group (groups are small in practice; each is a room on every node hosting it). */
export const GROUP_SIZE = 100
/** Heartbeats every 5 s, so the idle window sees sweeps. */
const PING_INTERVAL_MS = 5000
/**
 * Every INFO carries a relay's whole unit list and the authenticator decodes each one: at the
 * default 250 ms, N units cost the authenticator 4N entries/s to decode while they connect.
 */
export const CAPACITY_INFO_INTERVAL_MS = 2000

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const sum = (values: ReadonlyArray<number>) => values.reduce((a, b) => a + b, 0)

export interface CapacityOptions {
  readonly size: number
  readonly broker: ClusterBrokerKind
  /** Relay processes; at least size / PER_PROCESS. */
  readonly relays: number
  /** Load-generator worker processes; at least size / PER_PROCESS. */
  readonly workers: number
  readonly idleMs: number
  readonly connectDeadlineMs: number
  readonly clockBase: number
  readonly status: (line: string) => void
}

export interface CapacityRun {
  readonly size: number
  readonly relays: number
  readonly workers: number
  readonly connected: number
  readonly failed: number
  readonly notAttempted: number
  readonly errors: ReadonlyArray<string>
  readonly connectSeconds: number
  readonly connectsPerSec: number
  /** Sum of the relays' RSS growth / connections, at the end of the idle window. */
  readonly rssKbPerConnection: number
  readonly rssKbPerConnectionAt2s: number
  readonly authRssGrowthMb: number
  /** Redis used_memory growth per connection (presence entries, login keys not yet expired). */
  readonly brokerKbPerConnection: number
  readonly idleCpuPercent: number
  readonly authIdleCpuPercent: number
  readonly idleCpuUsPerConnectionSecond: number
  readonly closedWhileIdle: number
  /** Open files of each relay after connecting (its share of the sockets). */
  readonly relayFds: ReadonlyArray<number>
  readonly openFilesLimit: number
  /** Every 5 s while connecting: seconds, relay sockets (open files, summed), authenticator CPU %, its RSS MB. */
  readonly timeline: ReadonlyArray<readonly [number, number, number, number]>
}

/** Processes needed so that none holds more than PER_PROCESS sockets. */
export const processesFor = (size: number, minimum: number) => Math.max(minimum, Math.ceil(size / PER_PROCESS))

/** Units in groups of GROUP_SIZE, spread over source addresses by index. */
export const idleClients = (size: number): Array<ClientSpec> => {
  const clients: Array<ClientSpec> = []
  for (let first = 0; first < size; first += GROUP_SIZE)
    clients.push(
      ...planGroup({ group: `g${first / GROUP_SIZE}`, units: Math.min(GROUP_SIZE, size - first), senders: 0 }, first)
    )
  return clients
}

export const capacityRun = (options: CapacityOptions): Promise<CapacityRun> =>
  withClusterStack(
    {
      broker: options.broker,
      relays: options.relays,
      reusePort: true,
      pingIntervalMs: PING_INTERVAL_MS,
      infoIntervalMs: CAPACITY_INFO_INTERVAL_MS
    },
    async (stack) => {
      await sleep(1000)
      const rssOf = (pids: ReadonlyArray<number>) => sum(pids.map(rssBytes))
      const relayRssBefore = rssOf(stack.relayPids)
      const authRssBefore = rssBytes(stack.authPid)
      const brokerMemoryBefore = options.broker === "redis" ? await redisUsedMemory() : Number.NaN
      const timeline: Array<readonly [number, number, number, number]> = []
      const started = performance.now()
      let authCpu = cpuMicros(stack.authPid)
      const monitor = setInterval(() => {
        const sockets = sum(stack.relayPids.map(openFds))
        const cpu = cpuMicros(stack.authPid)
        const point = [
          Math.round((performance.now() - started) / 1000),
          sockets,
          Math.round((cpu - authCpu) / 50_000),
          Math.round(rssBytes(stack.authPid) / 1024 / 1024)
        ] as const
        authCpu = cpu
        timeline.push(point)
        options.status(
          `capacity: ${point[0]} s, ${sockets} relay sockets of ${options.size}, authenticator CPU ${point[2]} %`
        )
      }, 5000)
      const generator = await LoadGenerator.connect({
        target: stack.target,
        clients: idleClients(options.size),
        workers: options.workers,
        clockBase: options.clockBase,
        connectConcurrency: LOGINS_IN_FLIGHT_PER_WORKER,
        connectDeadlineMs: options.connectDeadlineMs
      }).finally(() => clearInterval(monitor))
      try {
        const connected = options.size - generator.connectFailures - generator.notAttempted
        const relayFds = stack.relayPids.map(openFds)
        await sleep(2000)
        const rssSettled = rssOf(stack.relayPids)
        options.status(`capacity: ${connected} units idle for ${options.idleMs / 1000} s`)
        const from = sampleCpu([...stack.relayPids, stack.authPid])
        await sleep(options.idleMs)
        const to = sampleCpu([...stack.relayPids, stack.authPid])
        const relayRssAfter = rssOf(stack.relayPids)
        const brokerMemoryAfter = options.broker === "redis" ? await redisUsedMemory() : Number.NaN
        const relayCpu = cpuBetween(
          { at: from.at, micros: from.micros.slice(0, -1) },
          { at: to.at, micros: to.micros.slice(0, -1) }
        )
        const authCpu = (to.micros.at(-1) ?? Number.NaN) - (from.micros.at(-1) ?? Number.NaN)
        const { closes } = await generator.closes()
        const seconds = generator.connectMs / 1000
        const perConnection = (bytes: number) => bytes / 1024 / connected
        return {
          size: options.size,
          relays: options.relays,
          workers: options.workers,
          connected,
          failed: generator.connectFailures,
          notAttempted: generator.notAttempted,
          errors: generator.connectErrors.slice(0, 10),
          connectSeconds: seconds,
          connectsPerSec: connected / seconds,
          rssKbPerConnection: perConnection(relayRssAfter - relayRssBefore),
          rssKbPerConnectionAt2s: perConnection(rssSettled - relayRssBefore),
          authRssGrowthMb: (rssBytes(stack.authPid) - authRssBefore) / 1024 / 1024,
          brokerKbPerConnection: perConnection(brokerMemoryAfter - brokerMemoryBefore),
          idleCpuPercent: (relayCpu / (options.idleMs * 1000)) * 100,
          authIdleCpuPercent: (authCpu / (options.idleMs * 1000)) * 100,
          idleCpuUsPerConnectionSecond: relayCpu / connected / (options.idleMs / 1000),
          closedWhileIdle: sum(Object.values(closes)),
          relayFds,
          openFilesLimit: openFilesLimit(),
          timeline
        }
      } finally {
        options.status("capacity: closing every connection")
        await generator.close()
      }
    }
  )
