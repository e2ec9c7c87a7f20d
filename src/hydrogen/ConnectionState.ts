/**
 * The seed's connection state machine. Connecting/Verifying/Established happen during the HTTP
 * upgrade; Connected ⇄ Heartbeat → Inactive while the socket is open (Heartbeat: quiet for a ping
 * interval, kept alive by WS ping/pong only; Inactive: quiet for half the IdleTimeout, closed with
 * 4001 at IdleTimeout); Closing → Closed when it ends. Failed/Rejected end a refused upgrade.
 */
export const ConnectionStates = [
  "Connecting",
  "Verifying",
  "Established",
  "Connected",
  "Heartbeat",
  "Inactive",
  "Closing",
  "Closed",
  "Failed",
  "Rejected"
] as const
export type ConnectionState = (typeof ConnectionStates)[number]

const allowed: Record<ConnectionState, ReadonlyArray<ConnectionState>> = {
  Connecting: ["Verifying", "Failed"],
  Verifying: ["Established", "Rejected", "Failed"],
  Established: ["Connected", "Closing"],
  Connected: ["Heartbeat", "Closing"],
  Heartbeat: ["Connected", "Inactive", "Closing"],
  Inactive: ["Connected", "Closing"],
  Closing: ["Closed"],
  Closed: [],
  Failed: [],
  Rejected: []
}

export const canMove = (from: ConnectionState, to: ConnectionState): boolean => allowed[from].includes(to)

/** States a connection can sit in for a while; each has a gauge. */
export const openStates: ReadonlyArray<ConnectionState> = ["Connected", "Heartbeat", "Inactive", "Closing"]

/** Which quiet state a connection is in after `quietMs` without an inbound message. */
export const quietState = (quietMs: number, pingIntervalMs: number, idleTimeoutMs: number): ConnectionState =>
  idleTimeoutMs > 0 && quietMs >= idleTimeoutMs / 2 ? "Inactive" : quietMs >= pingIntervalMs ? "Heartbeat" : "Connected"
