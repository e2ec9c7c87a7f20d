import * as os from "node:os"
import { Clock, Deferred, Duration, Effect, Schedule } from "effect"
import type { HydrogenSettings } from "./Config.ts"
import { allows, type Identity, Permission } from "./Permissions.ts"
import type { Channels } from "./Channels.ts"

/** Counters behind the legacy status object (names follow the original server's reply). */
export interface StatusCounters {
  readonly startedAt: number
  activeConnections: number
  totalConnections: number
  totalRequests: number
  shuttingDown: boolean
}

/** Host facts of the original reply; shown only to identities with the "host" permission. */
export interface HostInfo {
  readonly sysname: string
  readonly nodename: string
  readonly release: string
  readonly version: string
  readonly machine: string
}

export interface ServiceInfo {
  readonly serverVersion: string
  readonly apiVersion: string
  readonly enabledServices: ReadonlyArray<string>
  readonly services: Record<string, unknown>
}

/** The reply to {"type":"status"} and the data of system/status: the original's shape, host details optional. */
export const statusObject = (counters: StatusCounters, now: number, info: ServiceInfo, host: HostInfo | undefined) => ({
  version: { server: info.serverVersion, api: info.apiVersion },
  ...(host ? { system: host } : {}),
  status: {
    running: !counters.shuttingDown,
    shutting_down: counters.shuttingDown,
    uptime: Math.max(0, Math.floor((now - counters.startedAt) / 1000)),
    activeConnections: counters.activeConnections,
    totalConnections: counters.totalConnections,
    totalRequests: counters.totalRequests
  },
  enabledServices: info.enabledServices,
  services: info.services
})

export const serverVersion = "switchboard-hydrogen/0.1.0"
export const apiVersion = "1.0"

const hostInfo = (): HostInfo => ({
  sysname: os.type(),
  nodename: os.hostname(),
  release: os.release(),
  version: os.version(),
  machine: os.machine()
})

/**
 * The counters of the legacy status reply and the periodic status events of the "system" channel.
 * `port` is the bound port, known once the transport listens (port 0 picks one).
 */
export const makeStatus = (settings: HydrogenSettings, startedAt: number, port: Deferred.Deferred<number>) => {
  const counters: StatusCounters = {
    startedAt,
    activeConnections: 0,
    totalConnections: 0,
    totalRequests: 0,
    shuttingDown: false
  }
  const infoAt = (listening: number): ServiceInfo => ({
    serverVersion,
    apiVersion,
    enabledServices: ["websocket", "publish-api", "metrics"],
    services: {
      websocket: {
        protocol: settings.protocol,
        port: listening,
        secure: settings.secureMode === "tls",
        authRequired: settings.authRequired,
        maxConnections: settings.maxConnections,
        reliableChannels: settings.reliableChannels
      }
    }
  })
  let info: ServiceInfo | undefined
  const snapshot = (identity: Identity | undefined) =>
    Effect.gen(function* () {
      info ??= infoAt(yield* Deferred.await(port))
      const now = yield* Clock.currentTimeMillis
      return statusObject(counters, now, info, identity && allows(identity, Permission.host) ? hostInfo() : undefined)
    })

  /** The seed's status_update event data (server_running, memory_usage, cpu_load, thread_count) with the status object. */
  const statusUpdate = Effect.map(snapshot(undefined), (status) => ({
    server_running: !counters.shuttingDown,
    memory_usage: process.memoryUsage().rss,
    cpu_load: os.loadavg()[0] ?? 0,
    // One event loop serves every socket.
    thread_count: 1,
    ...status
  }))

  /** Publishes a status_update event on the "system" channel every StatusInterval (scoped fiber). */
  const broadcastPeriodically = (channels: Channels) =>
    Duration.toMillis(settings.statusInterval) === 0
      ? Effect.void
      : Effect.forkScoped(
          Effect.repeat(
            statusUpdate.pipe(
              Effect.flatMap((data) =>
                channels.publish([{ channel: "system", action: "status_update", data, priority: "normal", ack: false }])
              )
            ),
            Schedule.spaced(settings.statusInterval)
          ).pipe(Effect.delay(settings.statusInterval))
        ).pipe(Effect.asVoid)

  return { counters, snapshot, broadcastPeriodically }
}

export type Status = ReturnType<typeof makeStatus>
