import { Clock, Duration, Effect, Schedule } from "effect"
import type { HydrogenSettings } from "./Config.ts"
import { fullBucket, isRefilled, takeToken, type TokenBucket } from "../shared/TokenBucket.ts"
import type { Metrics } from "../../layers/Observability/Metrics.ts"

export type ConnectionAdmission = "ok" | "blocked" | "limited"
export type MessageAdmission = "ok" | "limited" | "abusive"

/** Per-connection message limiter: a token bucket and a count of violations in a row. */
export interface MessageLimiter {
  readonly admit: (now: number) => MessageAdmission
}

/**
 * Connection rate per IP and message rate per connection (token buckets), with temporary blocks:
 * an IP that opens connections too fast, or whose connection keeps flooding, is refused (HTTP 429)
 * for BlockSeconds. A sweep fiber forgets full buckets and expired blocks, so memory stays bounded.
 */
export const makeRateLimits = (settings: HydrogenSettings, metrics: typeof Metrics.Service) =>
  Effect.gen(function* () {
    const limited = metrics.counter("switchboard_hydrogen_rate_limited_total", "Upgrades and messages refused by rate limits", ["kind"])
    const blocks = metrics.counter("switchboard_hydrogen_ip_blocks_total", "Temporary IP blocks")
    const blockMillis = Duration.toMillis(settings.blockDuration)
    const perIp = new Map<string, TokenBucket>()
    const blockedUntil = new Map<string, number>()

    const limitedMessages = limited.labels({ kind: "message" })
    const onLimited = () => limitedMessages.inc()

    const block = (ip: string, now: number) => {
      if ((blockedUntil.get(ip) ?? 0) <= now) blocks.inc()
      blockedUntil.set(ip, now + blockMillis)
    }

    const sweep = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      for (const [ip, until] of blockedUntil) if (until <= now) blockedUntil.delete(ip)
      for (const [ip, bucket] of perIp) {
        if (isRefilled(bucket, now, settings.connectionRatePerSecond, settings.connectionBurst)) perIp.delete(ip)
      }
    })
    yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(Duration.max(settings.blockDuration, Duration.seconds(10)))))

    return {
      admitConnection: (ip: string, now: number): ConnectionAdmission => {
        if ((blockedUntil.get(ip) ?? 0) > now) {
          limited.inc({ kind: "blocked" })
          return "blocked"
        }
        let bucket = perIp.get(ip)
        if (!bucket) perIp.set(ip, (bucket = fullBucket(settings.connectionBurst, now)))
        if (takeToken(bucket, now, settings.connectionRatePerSecond, settings.connectionBurst)) return "ok"
        limited.inc({ kind: "connection" })
        block(ip, now)
        return "limited"
      },
      block,
      messageLimiter: (now: number): MessageLimiter => new ConnectionMessageLimiter(settings, fullBucket(settings.messageBurst, now), onLimited)
    }
  })

/** One connection's bucket and strikes; a class, so a connection holds one small object and no closure. */
class ConnectionMessageLimiter implements MessageLimiter {
  private strikes = 0
  constructor(
    private readonly settings: HydrogenSettings,
    private readonly bucket: TokenBucket,
    private readonly onLimited: () => void
  ) {}

  admit(at: number): MessageAdmission {
    const { settings } = this
    if (takeToken(this.bucket, at, settings.messageRatePerSecond, settings.messageBurst)) {
      this.strikes = 0
      return "ok"
    }
    this.onLimited()
    return ++this.strikes >= settings.rateLimitStrikes ? "abusive" : "limited"
  }
}

export type RateLimits = Effect.Effect.Success<ReturnType<typeof makeRateLimits>>
