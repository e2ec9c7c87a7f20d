import { Config, ConfigError, Duration, Either, Option, Redacted } from "effect"
import { positiveInt } from "../../src/shared/ConfigValues.ts"
import { randomNodeId, redactUrl } from "./Broker.ts"
import { defaultRedisSettings, type RedisSettings } from "./RedisConnection.ts"

export const brokers = ["memory", "redis", "nats"] as const
export type BrokerKind = (typeof brokers)[number]

export interface ClusterSettings {
  /** memory = one process (the default); redis or nats = a node of a cluster. */
  readonly broker: BrokerKind
  readonly redisUrl: Redacted.Redacted<string>
  readonly natsUrl: Redacted.Redacted<string>
  readonly nodeId: string
  /** Separates clusters sharing one broker: every channel, key, subject and bucket is named from it. */
  readonly prefix: string
  readonly heartbeat: Duration.Duration
  readonly nodeTtl: Duration.Duration
  /** Listen with SO_REUSEPORT, so N processes of one server share its port on one machine. */
  readonly reusePort: boolean
  /** `cluster.redis.*`: command timeout and replica WAITs of every Redis connection (broker, tokens, streams). */
  readonly redis: RedisSettings
}

const name = (key: string) =>
  Config.validate({
    message: "must be 1 to 64 letters, digits, '-' or '_'",
    validation: (value: string) => /^[A-Za-z0-9_-]{1,64}$/.test(value)
  })(Config.string(key))

/** `cluster.redis.*`: commandTimeoutMs (5000), waitReplicas ("auto" or a count, 0 = off), waitTimeoutMs (500). */
const RedisConfig: Config.Config<RedisSettings> = Config.all({
  commandTimeoutMs: positiveInt("commandTimeoutMs", defaultRedisSettings.commandTimeoutMs),
  waitReplicas: Config.string("waitReplicas").pipe(
    Config.mapOrFail((text) =>
      text === "auto" || /^\d{1,2}$/.test(text)
        ? Either.right(text === "auto" ? ("auto" as const) : Number(text))
        : Either.left(ConfigError.InvalidData([], 'must be "auto" or a count of replicas (0 = off)'))
    ),
    Config.withDefault<number | "auto">(defaultRedisSettings.waitReplicas)
  ),
  waitTimeoutMs: positiveInt("waitTimeoutMs", defaultRedisSettings.waitTimeoutMs)
}).pipe(
  Config.validate({
    message: "cluster.redis.waitTimeoutMs must be below cluster.redis.commandTimeoutMs",
    validation: (redis) => redis.waitTimeoutMs < redis.commandTimeoutMs
  }),
  Config.nested("redis")
)

/** `cluster.*`: broker, redisUrl, natsUrl, nodeId (default random), prefix, heartbeatMs, nodeTtlMs, reusePort, redis.*. */
export const ClusterConfig: Config.Config<ClusterSettings> = Config.all({
  broker: Config.literal(...brokers)("broker").pipe(Config.withDefault("memory" as const)),
  redisUrl: Config.redacted("redisUrl").pipe(Config.withDefault(Redacted.make("redis://127.0.0.1:6379"))),
  natsUrl: Config.redacted("natsUrl").pipe(Config.withDefault(Redacted.make("nats://127.0.0.1:4222"))),
  nodeId: Config.option(name("nodeId")).pipe(Config.map(Option.getOrElse(randomNodeId))),
  prefix: name("prefix").pipe(Config.withDefault("switchboard")),
  heartbeatMs: positiveInt("heartbeatMs", 1500),
  nodeTtlMs: positiveInt("nodeTtlMs", 5000),
  reusePort: Config.boolean("reusePort").pipe(Config.withDefault(false)),
  redis: RedisConfig
}).pipe(
  Config.validate({
    message: "cluster.heartbeatMs must be below cluster.nodeTtlMs",
    validation: (c) => c.heartbeatMs < c.nodeTtlMs
  }),
  Config.map(({ heartbeatMs, nodeTtlMs, ...rest }) => ({
    ...rest,
    heartbeat: Duration.millis(heartbeatMs),
    nodeTtl: Duration.millis(nodeTtlMs)
  })),
  Config.nested("cluster")
)

/** A broker URL for logs: the password, if any, replaced. */
export const safeUrl = (url: Redacted.Redacted<string>) => redactUrl(Redacted.value(url))
