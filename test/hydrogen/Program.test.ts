import { afterAll, describe, expect } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigProvider, Duration, Effect, Either, Exit, Layer, Logger, LogLevel, Scope } from "effect"
import { HydrogenLive } from "../../programs/servers/hydrogen.ts"
import { providerFrom } from "../../layers/Config/ConfigFile.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { hashApiKey } from "../../src/hydrogen/ApiKeys.ts"
import { HydrogenConfig } from "../../src/hydrogen/Config.ts"
import { it } from "../support/effect.ts"
import { hasOpenssl, selfSigned } from "../support/tls.ts"
import { connectWs } from "../support/WsClient.ts"
import { ok } from "./support.ts"

const read = (json: object, env: Record<string, string> = {}) =>
  Effect.either(
    Effect.withConfigProvider(
      HydrogenConfig,
      providerFrom(json, ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))
    )
  )

/** Collects log messages of level Info and up (tests run with Warning by default). */
const collectInfo = (lines: Array<string>) =>
  Layer.merge(
    Logger.replace(
      Logger.defaultLogger,
      Logger.make((options) => void lines.push(String(options.message)))
    ),
    Logger.minimumLogLevel(LogLevel.Info)
  )

/** Temp directories of this file's programs, removed when its tests end. */
const tempDirs: Array<string> = []
const makeTempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "sb-hydrogen-"))
  tempDirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})

const tempDir = makeTempDir

/** Runs HydrogenLive from a JSON config in its own scope; returns the port it printed and a way to stop it. */
const launch = (json: object) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const scope = yield* Scope.make()
    const logger = collectInfo(lines)
    yield* Layer.buildWithScope(
      HydrogenLive.pipe(
        Layer.provide(Metrics.Default),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson(json))),
        Layer.provide(logger)
      ),
      scope
    )
    // The layer is built once the server listens, so the line is already there.
    const listening = lines.find((l) => l.includes("hydrogen listening on"))
    if (listening === undefined) return yield* Effect.dieMessage(`no "listening" line in ${JSON.stringify(lines)}`)
    return {
      port: Number(/:(\d+)$/.exec(listening)![1]),
      url: listening.split(" on ")[1]!,
      lines,
      stop: Scope.close(scope, Exit.void)
    }
  })

describe("hydrogen program and config", () => {
  it.effect("reads the seed's keys (file) with env over file, and Hydrogen's own keys", () =>
    Effect.gen(function* () {
      const settings = Either.getOrThrow(
        yield* read(
          {
            hydrogen: {
              Enabled: true,
              Port: 8080,
              Interface: "0.0.0.0",
              EnableIPv6: true,
              SecureMode: "none",
              AuthRequired: true,
              IdleTimeout: 300,
              MaxConnections: 100,
              ThreadPoolSize: 4,
              ApiKeys: [{ Name: "app", Hash: hashApiKey("k"), Permissions: ["api"] }],
              ReliableChannels: ["orders", "audit.*"],
              RecoveryWindow: 60,
              AckRetryMs: 1500
            }
          },
          { HYDROGEN_PORT: "9001", HYDROGEN_MAX_CONNECTIONS: "7" }
        )
      )
      expect(settings.port).toBe(9001)
      expect(settings.maxConnections).toBe(7)
      expect(settings.limits.maxConnections).toBe(7)
      expect(Duration.toSeconds(settings.limits.idleTimeout)).toBe(300)
      expect(settings.threadPoolSize).toBe(4)
      expect(settings.enableIPv6).toBe(true)
      expect(settings.apiKeys[0]!.name).toBe("app")
      expect(Duration.toMillis(settings.ackRetryInterval)).toBe(1500)
      expect(settings.reliableChannels).toEqual(["orders", "audit.*"])
      const defaults = Either.getOrThrow(yield* read({}))
      expect(defaults.port).toBe(5001)
      expect(defaults.protocol).toBe("hydrogen-protocol")
      expect(defaults.authRequired).toBe(true)
    })
  )

  it.effect("refuses inconsistent settings with a message naming the key", () =>
    Effect.gen(function* () {
      const tls = yield* read({ hydrogen: { SecureMode: "tls" } })
      expect(Either.isLeft(tls) && String(tls.left)).toContain("CertificatePath")
      const badKey = yield* read({ hydrogen: { ApiKeys: [{ Name: "x", Permissions: [] }] } })
      expect(Either.isLeft(badKey) && String(badKey.left)).toContain("exactly one of Key or Hash")
      const badMode = yield* read({ hydrogen: { SecureMode: "ssl" } })
      expect(Either.isLeft(badMode) && String(badMode.left)).toContain("SecureMode")
      const badHash = yield* read({ hydrogen: { ApiKeys: [{ Name: "x", Hash: "md5:abc" }] } })
      expect(Either.isLeft(badHash) && String(badHash.left)).toContain("sha256")
    })
  )

  it.live("HydrogenLive from a config file: SQLite history survives a restart, so clients recover across it", () =>
    Effect.gen(function* () {
      const config = {
        hydrogen: {
          Port: 0,
          Interface: "127.0.0.1",
          StatusInterval: 0,
          Key: "legacy-key-0123456789",
          ReliableChannels: ["orders"],
          storage: { backend: "sqlite", sqlite: { filename: join(tempDir(), "hydrogen.sqlite") } }
        }
      }
      const first = yield* launch(config)
      const client = yield* connectWs(`ws://127.0.0.1:${first.port}/?key=legacy-key-0123456789`, {
        protocols: "hydrogen-protocol"
      })
      const position = yield* ok(client, "subscriptions", "subscribe", { channel: "orders" })
      for (let n = 1; n <= 3; n++)
        yield* ok(client, "events", "publish", { channel: "orders", action: "created", data: { n } })
      yield* first.stop
      const second = yield* launch(config)
      const again = yield* connectWs(`ws://127.0.0.1:${second.port}/`, {
        protocols: "hydrogen-protocol",
        headers: { authorization: "Key legacy-key-0123456789" }
      })
      yield* again.send(
        JSON.stringify({
          type: "command",
          id: "r",
          channel: "subscriptions",
          action: "subscribe",
          data: { channel: "orders", recover: { epoch: position.epoch, seq: 1 } }
        })
      )
      const replayed = [yield* again.nextJson(), yield* again.nextJson()]
      expect(replayed.map((e) => e.data.n)).toEqual([2, 3])
      expect((yield* again.nextJson()).data.recovery).toEqual({ recovered: true, replayed: 2 })
      yield* second.stop
    })
  )

  it.skipIf(!hasOpenssl).live('SecureMode "tls" serves wss and https from CertificatePath/KeyPath', () =>
    Effect.gen(function* () {
      const { certPath: CertificatePath, keyPath: KeyPath } = selfSigned()
      const server = yield* launch({
        hydrogen: {
          Port: 0,
          Interface: "127.0.0.1",
          SecureMode: "tls",
          CertificatePath,
          KeyPath,
          Key: "tls-key-0123456789",
          StatusInterval: 0
        }
      })
      expect(server.url.startsWith("https://")).toBe(true)
      const health = yield* Effect.promise(() =>
        fetch(`${server.url}/health`, { tls: { rejectUnauthorized: false } } as any).then(
          (r) => r.json() as Promise<any>
        )
      )
      expect(health.status).toBe("ok")
      const status = yield* Effect.promise(
        () =>
          new Promise<any>((resolve, reject) => {
            const ws = new WebSocket(`wss://127.0.0.1:${server.port}/`, {
              protocols: "hydrogen-protocol",
              headers: { authorization: "Key tls-key-0123456789" },
              tls: { rejectUnauthorized: false }
            } as any)
            ws.onopen = () => ws.send(JSON.stringify({ type: "status" }))
            ws.onmessage = (event) => {
              resolve(JSON.parse(String(event.data)))
              ws.close()
            }
            ws.onerror = () => reject(new Error("wss failed"))
          })
      )
      expect(status.services.websocket.secure).toBe(true)
      yield* server.stop
    })
  )

  it.live("Enabled=false starts nothing", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      yield* Layer.build(
        HydrogenLive.pipe(
          Layer.provide(Metrics.Default),
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson({ hydrogen: { Enabled: false } }))),
          Layer.provide(collectInfo(lines))
        )
      )
      expect(lines.some((l) => l.includes("disabled"))).toBe(true)
      expect(lines.some((l) => l.includes("listening"))).toBe(false)
    })
  )
})
