import { describe, expect } from "bun:test"
import { ConfigProvider, Effect, Layer } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { AuthenticatorLive } from "../../programs/servers/authenticator.ts"
import { RelayLive } from "../../programs/servers/relay.ts"
import { it } from "../support/effect.ts"

describe("DroneEngage programs", () => {
  it.live("AuthenticatorLive and RelayLive build from config with only Metrics provided", () =>
    Effect.gen(function* () {
      const config = ConfigProvider.fromJson({
        authenticator: {
          port: 0,
          s2sPort: 0,
          hostname: "127.0.0.1",
          s2sHostname: "127.0.0.1",
          s2sSecret: "program test secret 123",
          storage: { backend: "memory" }
        },
        relay: {
          port: 0,
          hostname: "127.0.0.1",
          authenticatorUrl: "ws://127.0.0.1:9",
          s2sSecret: "program test secret 123",
          tasks: { storage: { backend: "memory" } }
        }
      })
      const built = yield* Layer.build(Layer.merge(AuthenticatorLive, RelayLive)).pipe(
        Effect.withConfigProvider(config),
        Effect.either
      )
      expect(built._tag).toBe("Right")
    }).pipe(Effect.provide(Metrics.Default))
  )
})
