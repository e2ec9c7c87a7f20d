import { describe, expect } from "bun:test"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Config, ConfigProvider, Effect, Redacted } from "effect"
import { SocketLimitsConfig } from "../../../src/shared/SocketLimits.ts"
import { configPathFromArgs, providerFrom, readConfigFile } from "../../../layers/Config/ConfigFile.ts"
import { describeStartupFailure } from "../../../layers/Program/runProgram.ts"
import { it } from "../../support/effect.ts"

const ServerConfig = Config.nested(
  Config.all({
    port: Config.port("port").pipe(Config.withDefault(9966)),
    secret: Config.redacted("secret"),
    limits: SocketLimitsConfig({ maxPayloadBytes: 4096 })
  }),
  "relay"
)

// Same shape as ConfigProvider.fromEnv(): path segments joined by "_".
const envOf = (vars: Record<string, string>) =>
  ConfigProvider.fromMap(new Map(Object.entries(vars)), { pathDelim: "_" })

const load = (json: unknown, env: Record<string, string> = {}) =>
  Effect.withConfigProvider(ServerConfig, providerFrom(json, envOf(env)))

describe("config: env over JSON file", () => {
  it.effect("reads nested camelCase keys from the file and CONSTANT_CASE overrides from env", () =>
    Effect.gen(function* () {
      const config = yield* load(
        { relay: { port: 1234, secret: "s3cret", maxPayloadBytes: 100 } },
        { RELAY_PORT: "4321", RELAY_MAX_PAYLOAD_BYTES: "200" }
      )
      expect(config.port).toBe(4321)
      expect(config.limits.maxPayloadBytes).toBe(200)
      expect(config.limits.inboxCapacity).toBe(256)
      expect(Redacted.value(config.secret)).toBe("s3cret")
      expect(String(config.secret)).not.toContain("s3cret")
    })
  )

  it.effect("embedded defaults apply when neither file nor env says anything", () =>
    Effect.gen(function* () {
      const config = yield* load({ relay: { secret: "x" } })
      expect(config.port).toBe(9966)
      expect(config.limits.maxPayloadBytes).toBe(4096)
    })
  )

  it.effect("an invalid value fails with one line naming the key", () =>
    Effect.gen(function* () {
      const cause = yield* load({ relay: { secret: "x", port: "eighty" } }).pipe(Effect.sandbox, Effect.flip)
      const line = describeStartupFailure(cause)
      expect(line).toContain("relay.port")
      expect(line.split("\n")).toHaveLength(1)
      const negative = yield* load({ relay: { secret: "x", inboxCapacity: -1 } }).pipe(Effect.sandbox, Effect.flip)
      expect(describeStartupFailure(negative)).toContain("must be a positive integer")
    })
  )

  it.effect("--config is found in argv in both spellings; missing and broken files are clear errors", () =>
    Effect.gen(function* () {
      expect(configPathFromArgs(["bun", "x.ts", "--config", "a.json"])).toBe("a.json")
      expect(configPathFromArgs(["bun", "x.ts", "--config=b.json"])).toBe("b.json")
      expect(configPathFromArgs(["bun", "x.ts"])).toBeUndefined()
      const dir = mkdtempSync(join(tmpdir(), "sb-config-"))
      const broken = join(dir, "broken.json")
      writeFileSync(broken, "{ nope")
      const missing = yield* readConfigFile(join(dir, "missing.json")).pipe(Effect.flip)
      expect(missing.message).toContain("config file not found")
      const invalid = yield* readConfigFile(broken).pipe(Effect.flip)
      expect(invalid.message).toContain("not valid JSON")
      const good = join(dir, "good.json")
      writeFileSync(good, JSON.stringify({ relay: { port: 7 } }))
      expect(yield* readConfigFile(good)).toEqual({ relay: { port: 7 } })
    })
  )
})
