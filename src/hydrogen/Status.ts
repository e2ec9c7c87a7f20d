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
