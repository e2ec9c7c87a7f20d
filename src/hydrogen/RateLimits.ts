import { Effect } from "effect"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import { type Admission, ConnectionLimiter, makeKeyedLimiter } from "../shared/RateLimiter.ts"
import type { HydrogenSettings } from "./Config.ts"

/** The reason of a 429 for an address that presented too many wrong keys or tokens. */
export const tooManyFailures = "too many failed credentials from this address; try again later"

export type ConnectionAdmission = "ok" | "blocked" | "limited"

/** Per-connection message limiter: a token bucket and a count of violations in a row. */
export interface MessageLimiter {
  readonly admit: (now: number) => Admission
}

/**
 * Connection rate per IP, failed credentials per IP and message rate per connection, with
 * temporary blocks: an IP that opens connections too fast, presents too many wrong keys or tokens,
 * or whose connection keeps flooding, is refused (HTTP 429 with Retry-After) for BlockSeconds.
 * All are the shared limiters of src/shared/RateLimiter.ts (its sweep forgets full
 * buckets and ended blocks); this file adds Hydrogen's metrics.
 */
export const makeRateLimits = (settings: HydrogenSettings, metrics: typeof Metrics.Service) =>
  Effect.gen(function* () {
    const limited = metrics.counter(
      "switchboard_hydrogen_rate_limited_total",
      "Upgrades and messages refused by rate limits",
      ["kind"]
    )
    const blocks = metrics.counter("switchboard_hydrogen_ip_blocks_total", "Temporary IP blocks")
    const limitedMessages = limited.labels({ kind: "message" })
    const limitedConnections = limited.labels({ kind: "connection" })
    const limitedBlocked = limited.labels({ kind: "blocked" })
    // One refusal blocks: an address that outruns its connection budget waits BlockSeconds.
    const connections = yield* makeKeyedLimiter("hydrogen connections", {
      ratePerSecond: settings.connectionRatePerSecond,
      burst: settings.connectionBurst,
      blockFor: settings.blockDuration,
      strikes: 1
    })
    // Wrong keys and tokens: an address that spends its budget is refused for BlockSeconds, whatever it presents then.
    const credentials = yield* makeKeyedLimiter("hydrogen failed credentials", {
      ratePerSecond: settings.failedCredentialsPerMinute / 60,
      burst: settings.failedCredentialsBurst,
      blockFor: settings.blockDuration,
      strikes: 1
    })
    const limitedCredentials = limited.labels({ kind: "credentials" })
    const messageOptions = {
      ratePerSecond: settings.messageRatePerSecond,
      burst: settings.messageBurst,
      strikes: settings.rateLimitStrikes
    }

    const block = (ip: string, now: number) => {
      if (!connections.isBlocked(ip, now)) blocks.inc()
      connections.block(ip, now)
    }

    return {
      admitConnection: (ip: string, now: number): ConnectionAdmission => {
        if (connections.isBlocked(ip, now)) {
          limitedBlocked.inc()
          return "blocked"
        }
        if (connections.admit(ip, now)) return "ok"
        limitedConnections.inc()
        blocks.inc()
        return "limited"
      },
      block,
      /** Seconds an address must wait because of its failed credentials (0: it may try). */
      credentialsBlocked: (ip: string, now: number): number => {
        if (!credentials.isBlocked(ip, now)) return 0
        limitedCredentials.inc()
        return Math.max(1, credentials.retryAfter(ip, now))
      },
      /** Counts a failed credential; the seconds to wait when this one used up the address's budget (0: answer 401 as usual). */
      credentialFailed: (ip: string, now: number): number => {
        if (credentials.admit(ip, now)) return 0
        limitedCredentials.inc()
        blocks.inc()
        return Math.max(1, credentials.retryAfter(ip, now))
      },
      messageLimiter: (now: number): MessageLimiter => new CountedLimiter(messageOptions, now, limitedMessages)
    }
  })

/** The shared per-connection limiter, counting refusals in the metrics (still one object per connection). */
class CountedLimiter extends ConnectionLimiter implements MessageLimiter {
  constructor(
    options: ConstructorParameters<typeof ConnectionLimiter>[0],
    now: number,
    private readonly refused: { readonly inc: () => void }
  ) {
    super(options, now)
  }

  override admit(now: number): Admission {
    const admission = super.admit(now)
    if (admission !== "ok") this.refused.inc()
    return admission
  }
}

export type RateLimits = Effect.Effect.Success<ReturnType<typeof makeRateLimits>>
