/**
 * Who is on the other end of a connection or an HTTP request, and what it may do. Permissions
 * are plain strings: a verb ("subscribe") allows it on every channel, "verb:channel" on one,
 * "*" allows everything.
 */
export interface Identity {
  readonly name: string
  readonly kind: "api-key" | "session" | "anonymous"
  readonly permissions: ReadonlyArray<string>
  /** Session tokens only: epoch milliseconds after which the connection must refresh or close. */
  readonly expiresAt?: number
}

export const Permission = {
  /** Subscribe to event channels (anonymous clients have only this). */
  subscribe: "subscribe",
  /** Publish events from a WebSocket command. */
  publish: "publish",
  /** Use the HTTP server API (publish, batch). */
  api: "api",
  /** Mint signed session tokens over HTTP. */
  tokens: "tokens",
  /** See host details (sysname, nodename, release...) in status replies. */
  host: "host"
} as const

export const anonymous: Identity = { name: "anonymous", kind: "anonymous", permissions: [Permission.subscribe] }

export const allows = (identity: Identity, permission: string, channel?: string): boolean => {
  for (const granted of identity.permissions) {
    if (granted === "*" || granted === permission) return true
    if (channel !== undefined && granted === `${permission}:${channel}`) return true
  }
  return false
}

/** Whether an identity may hold a WebSocket at all (keys meant only for the HTTP API may not). */
export const mayConnect = (identity: Identity): boolean =>
  identity.permissions.some(
    (p) =>
      p === "*" ||
      p === Permission.subscribe ||
      p === Permission.publish ||
      p.startsWith(`${Permission.subscribe}:`) ||
      p.startsWith(`${Permission.publish}:`) ||
      p === Permission.host
  )

/** Permissions a token issuer may hand out: a subset of its own. */
export const grantable = (issuer: Identity, requested: ReadonlyArray<string>): ReadonlyArray<string> =>
  requested.filter((p) => {
    if (issuer.permissions.includes("*")) return true
    const [verb, channel] = p.split(":", 2) as [string, string | undefined]
    return p !== "*" && allows(issuer, verb, channel)
  })
