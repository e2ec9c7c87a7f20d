import { Config, Duration, Option } from "effect"
import { nonNegativeInt, nonNegativeMillis, positiveInt, positiveMillis } from "./ConfigValues.ts"

/** Per-server WebSocket limits; every server embeds these under its own config prefix. */
export interface SocketLimits {
  /** Largest inbound message in bytes; larger ones close with 1009. */
  readonly maxPayloadBytes: number
  /** Inbound messages queued per connection before reading from its socket pauses. */
  readonly inboxCapacity: number
  /** Outbound bytes buffered for one connection before it is closed as a slow consumer (4003). */
  readonly slowConsumerBytes: number
  /** How often buffered bytes are checked against slowConsumerBytes. */
  readonly slowConsumerCheck: Duration.Duration
  /** How often the server pings every connection. */
  readonly pingInterval: Duration.Duration
  /** How long a ping may go unanswered before the connection closes with 4000. */
  readonly pongTimeout: Duration.Duration
  /** Close connections that send nothing for this long (4001); zero disables. */
  readonly idleTimeout: Duration.Duration
  /** Upgrades beyond this many open connections get HTTP 503; zero means unlimited. */
  readonly maxConnections: number
  /**
   * Largest HTTP request body in bytes; larger ones get 413 with a short JSON reason. Unset: the
   * largest WebSocket message plus 64 KiB of envelope (see requestBodyLimit), since a server's HTTP
   * API carries at most what its sockets carry.
   */
  readonly maxRequestBodyBytes?: number | undefined
}

export const defaultSocketLimits: SocketLimits = {
  maxPayloadBytes: 1024 * 1024,
  inboxCapacity: 256,
  slowConsumerBytes: 1024 * 1024,
  slowConsumerCheck: Duration.seconds(1),
  pingInterval: Duration.seconds(25),
  pongTimeout: Duration.seconds(10),
  idleTimeout: Duration.zero,
  maxConnections: 0
}

/** Reads SocketLimits from keys such as `maxPayloadBytes`, `pingIntervalMs`, nested under a server's prefix. */
export const SocketLimitsConfig = (defaults: Partial<SocketLimits> = {}): Config.Config<SocketLimits> => {
  const d = { ...defaultSocketLimits, ...defaults }
  return Config.all({
    maxPayloadBytes: positiveInt("maxPayloadBytes", d.maxPayloadBytes),
    inboxCapacity: positiveInt("inboxCapacity", d.inboxCapacity),
    slowConsumerBytes: positiveInt("slowConsumerBytes", d.slowConsumerBytes),
    slowConsumerCheck: positiveMillis("slowConsumerCheckMs", d.slowConsumerCheck),
    pingInterval: positiveMillis("pingIntervalMs", d.pingInterval),
    pongTimeout: positiveMillis("pongTimeoutMs", d.pongTimeout),
    idleTimeout: nonNegativeMillis("idleTimeoutMs", d.idleTimeout),
    maxConnections: nonNegativeInt("maxConnections", d.maxConnections),
    maxRequestBodyBytes:
      d.maxRequestBodyBytes === undefined
        ? Config.integer("maxRequestBodyBytes").pipe(
            Config.validate({ message: "must be a positive integer", validation: (n) => n > 0 }),
            Config.option,
            Config.map(Option.getOrUndefined)
          )
        : positiveInt("maxRequestBodyBytes", d.maxRequestBodyBytes)
  })
}

/** Envelope allowed on top of maxPayloadBytes when maxRequestBodyBytes is unset. */
const requestEnvelopeBytes = 64 * 1024

/** The HTTP request body limit in force: maxRequestBodyBytes, or the largest WebSocket message plus 64 KiB. */
export const requestBodyLimit = (limits: SocketLimits) =>
  limits.maxRequestBodyBytes ?? limits.maxPayloadBytes + requestEnvelopeBytes

/** Where Bun itself drops a socket (seen by the client as 1006): far above slowConsumerBytes, as a memory cap. */
export const hardBackpressureLimit = (limits: SocketLimits) => Math.max(limits.slowConsumerBytes * 4, 16 * 1024 * 1024)
