import * as os from "node:os"
import { Clock, Duration, Effect, Schedule } from "effect"
import type { HydrogenSettings } from "../../src/hydrogen/Config.ts"
import { allows, type Identity, Permission } from "../../src/hydrogen/Permissions.ts"
import { type HostInfo, type ServiceInfo, type StatusCounters, statusObject } from "../../src/hydrogen/Status.ts"
import type { Channels } from "./HydrogenChannels.ts"

export const serverVersion = "switchboard-hydrogen/0.1.0"
export const apiVersion = "1.0"

const hostInfo = (): HostInfo => ({
  sysname: os.type(),
  nodename: os.hostname(),
  release: os.release(),
  version: os.version(),
  machine: os.machine()
})

/** The counters of the legacy status reply and the periodic status events of the "system" channel. */
export const makeStatus = (settings: HydrogenSettings, startedAt: number, listeningPort: () => number) => {
  const counters: StatusCounters = { startedAt, activeConnections: 0, totalConnections: 0, totalRequests: 0, shuttingDown: false }
  const info: ServiceInfo = {
    serverVersion,
    apiVersion,
    enabledServices: ["websocket", "publish-api", "metrics"],
    services: {
      websocket: {
        protocol: settings.protocol,
        get port() {
          return listeningPort()
        },
        secure: settings.secureMode === "tls",
        authRequired: settings.authRequired,
        maxConnections: settings.maxConnections,
        reliableChannels: settings.reliableChannels
      }
    }
  }
  const snapshot = (identity: Identity | undefined) =>
    Effect.map(Clock.currentTimeMillis, (now) =>
      statusObject(counters, now, info, identity && allows(identity, Permission.host) ? hostInfo() : undefined))

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
              Effect.flatMap((data) => channels.publish([{ channel: "system", action: "status_update", data, priority: "normal", ack: false }]))
            ),
            Schedule.spaced(settings.statusInterval)
          ).pipe(Effect.delay(settings.statusInterval))
        ).pipe(Effect.asVoid)

  return { counters, snapshot, broadcastPeriodically }
}

export type Status = ReturnType<typeof makeStatus>
