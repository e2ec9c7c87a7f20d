/**
 * WebSocket close codes used by every Switchboard server. 1000-1011 are RFC 6455;
 * 4000-4999 is the private range, documented in README ("Close codes").
 */
export const CloseCodes = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  invalidPayload: 1007,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
  tryAgainLater: 1013,
  heartbeatTimeout: 4000,
  idleTimeout: 4001,
  inboxOverflow: 4002,
  slowConsumer: 4003,
  replaced: 4004,
  handshakeTimeout: 4005,
  rateLimited: 4006,
  badRequest: 4400,
  unauthorized: 4401,
  forbidden: 4403
} as const

export type CloseCode = (typeof CloseCodes)[keyof typeof CloseCodes]

export const closeReason: Record<CloseCode, string> = {
  1000: "normal closure",
  1001: "server shutting down",
  1002: "protocol error",
  1007: "invalid UTF-8 in a text message",
  1008: "policy violation",
  1009: "message too big",
  1011: "internal error",
  1013: "try again later",
  4000: "heartbeat timeout: no pong",
  4001: "idle timeout",
  4002: "inbox overflow: client sends faster than it is served",
  4003: "slow consumer: too many bytes waiting to be sent",
  4004: "replaced by a newer connection",
  4005: "handshake timeout",
  4006: "rate limited",
  4400: "bad request",
  4401: "unauthorized",
  4403: "forbidden"
}

/** RFC 6455 codes a peer may send or report (1004 is reserved and 1015 only ever reported). */
const rfcCodes = new Set([1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015])
const documentedCodes = new Set<number>(Object.values(CloseCodes))

/**
 * The metrics label for a close code: RFC and documented codes by number, anything else a client
 * chose (3000-4999 are free for peers) as "other", so the label's values stay a small fixed set.
 */
export const closeCodeLabel = (code: number): string =>
  rfcCodes.has(code) || documentedCodes.has(code) ? String(code) : "other"
