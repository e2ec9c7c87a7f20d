import { Config, Effect, Layer } from "effect"
import { MysqlDatabase, SqliteDatabase, SqlQueryTimeout } from "../../layers/Storage/SqlDatabase.ts"
import { SqliteDirectFile, SqliteDirectNone } from "../../layers/Storage/SqliteDirect.ts"
import { MysqlConfig, SqliteConfig, underPath } from "../storage/StorageConfig.ts"
import { AliyaQueryTimeoutConfig, AliyaStorage, GatewayConfig, ManagerConfig, TokenServerConfig } from "./Config.ts"
import { startGateway, startManagers, startTokenServer } from "./Services.ts"

/**
 * The three Aliya parts as layers (each reads its own config section); programs give them the
 * Bun transports and the internal HTTP client.
 */

/**
 * aliya.storage.backend: sqlite (default, ./data/aliya.sqlite) or mysql (aliya.storage.mysql.*).
 * On SQLite the hottest weapon requests also get a direct synchronous connection (SqliteDirect).
 * aliya.storage.queryTimeoutMs bounds each manager and token-server request (see RequestTimeout).
 */
export const AliyaDatabaseFromConfig = Layer.unwrapEffect(
  Effect.gen(function* () {
    const config = underPath(AliyaStorage)
    const backend = yield* config(
      Config.literal("sqlite", "mysql")("backend").pipe(Config.withDefault("sqlite" as const))
    )
    const timeout = Layer.succeed(SqlQueryTimeout, yield* AliyaQueryTimeoutConfig)
    if (backend === "mysql") return Layer.mergeAll(MysqlDatabase(yield* config(MysqlConfig)), SqliteDirectNone, timeout)
    const filename = yield* config(SqliteConfig(AliyaStorage))
    return Layer.mergeAll(SqliteDatabase(filename), SqliteDirectFile(filename), timeout)
  })
)

export const AliyaManagersPart = Layer.scopedDiscard(Effect.flatMap(ManagerConfig, startManagers))
export const AliyaTokensPart = Layer.scopedDiscard(Effect.flatMap(TokenServerConfig, startTokenServer))
export const AliyaGatewayPart = Layer.scopedDiscard(Effect.flatMap(GatewayConfig, startGateway))
