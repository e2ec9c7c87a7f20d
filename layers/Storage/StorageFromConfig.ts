import type { SqlClient } from "@effect/sql"
import { type ConfigError, Effect, Layer, Option, Redacted } from "effect"
import type { ClusterSettings } from "../Cluster/ClusterConfig.ts"
import type { StorageError } from "../../src/storage/Account.ts"
import {
  AuthCacheTtlConfig,
  type Backend,
  BackendConfig,
  JsonConfig,
  MysqlConfig,
  QueryTimeoutConfig,
  SingleConfig,
  SqliteConfig,
  type StorageSettings,
  underPath
} from "../../src/storage/StorageConfig.ts"
import type { AccessCodeHasher } from "./AccessCodeHasher.ts"
import type { AccountStore } from "./AccountStore.ts"
import { CachedAccountStore } from "./CachedAccountStore.ts"
import { MemoryHardwareStore } from "./HardwareStore.ts"
import { JsonAccountStore } from "./JsonAccountStore.ts"
import { MemoryAccountStore } from "./MemoryAccountStore.ts"
import { MemoryStreamStore } from "./MemoryStreamStore.ts"
import { SingleAccountStore } from "./SingleAccountStore.ts"
import { SqlAccountStore } from "./SqlAccountStore.ts"
import { MysqlDatabase, SqliteDatabase, SqlQueryTimeout } from "./SqlDatabase.ts"
import { SqlHardwareStore } from "./SqlHardwareStore.ts"
import { SqlStreamStore } from "./SqlStreamStore.ts"
import { MemoryTaskStore } from "./MemoryTaskStore.ts"
import { NatsStreamStore } from "./NatsStreamStore.ts"
import { RedisStreamStore } from "./RedisStreamStore.ts"
import { SqlTaskStore } from "./SqlTaskStore.ts"

export type { StorageSettings } from "../../src/storage/StorageConfig.ts"

type Database = Layer.Layer<SqlClient.SqlClient | SqlQueryTimeout, StorageError>

/**
 * The database of a sqlite/mysql backend with its query timeout, None otherwise. Equal settings give
 * the same client Layer value, so the stores of one program share one client (one pool, one SQLite handle).
 */
const databaseFor = (settings: StorageSettings, backend: Backend) =>
  Effect.gen(function* () {
    const config = underPath(settings)
    if (backend !== "sqlite" && backend !== "mysql") return Option.none<Database>()
    const client =
      backend === "sqlite"
        ? SqliteDatabase(yield* config(SqliteConfig(settings)))
        : MysqlDatabase(yield* config(MysqlConfig))
    const timeout = Layer.succeed(SqlQueryTimeout, yield* config(QueryTimeoutConfig))
    return Option.some<Database>(Layer.merge(client, timeout))
  })

/** Reads the backend, then the keys that backend needs (and only those). */
const select = <A>(
  settings: StorageSettings,
  choose: (backend: Backend, database: Option.Option<Database>) => Effect.Effect<A, ConfigError.ConfigError>
) =>
  Effect.gen(function* () {
    const backend = yield* underPath(settings)(BackendConfig(settings))
    return yield* choose(backend, yield* databaseFor(settings, backend))
  })

/**
 * AccountStore chosen by `<path>.backend` (memory | single | json | sqlite | mysql; default
 * sqlite), behind the authentication cache unless `<path>.authCacheTtlMs` is 0. Needs an AccessCodeHasher.
 */
export const AccountStoreFromConfig = (settings: StorageSettings) =>
  Layer.unwrapEffect(
    select(settings, (backend, database) =>
      Effect.gen(function* () {
        const config = underPath(settings)
        const store: Layer.Layer<AccountStore, StorageError, AccessCodeHasher> = Option.isSome(database)
          ? SqlAccountStore.pipe(Layer.provide(database.value))
          : backend === "single"
            ? SingleAccountStore(yield* config(SingleConfig))
            : backend === "json"
              ? JsonAccountStore(yield* config(JsonConfig))
              : MemoryAccountStore
        const ttl = yield* config(AuthCacheTtlConfig)
        return ttl > 0 ? CachedAccountStore({ ttl }).pipe(Layer.provide(store)) : store
      })
    )
  )

/** HardwareStore in the SQL database of sqlite/mysql backends; in memory for memory/single/json. */
export const HardwareStoreFromConfig = (settings: StorageSettings) =>
  Layer.unwrapEffect(
    select(settings, (_backend, database) =>
      Effect.succeed(
        Option.isSome(database) ? SqlHardwareStore.pipe(Layer.provide(database.value)) : MemoryHardwareStore
      )
    )
  )

/** StreamStore in the SQL database of sqlite/mysql backends; in memory for memory/single/json. */
export const StreamStoreFromConfig = (settings: StorageSettings) =>
  Layer.unwrapEffect(
    select(settings, (_backend, database) =>
      Effect.succeed(Option.isSome(database) ? SqlStreamStore.pipe(Layer.provide(database.value)) : MemoryStreamStore)
    )
  )

/**
 * The StreamStore every node of a cluster shares, in the cluster's broker: Redis Streams for
 * `cluster.broker = redis`, JetStream for `nats` (keys and subjects under `cluster.prefix`).
 */
export const ClusterStreamStore = (cluster: ClusterSettings) =>
  cluster.broker === "nats"
    ? NatsStreamStore({ url: Redacted.value(cluster.natsUrl), prefix: cluster.prefix })
    : RedisStreamStore({ url: Redacted.value(cluster.redisUrl), prefix: `${cluster.prefix}:`, redis: cluster.redis })

/** TaskStore (DroneEngage stored tasks) in the SQL database of sqlite/mysql backends; in memory otherwise. */
export const TaskStoreFromConfig = (settings: StorageSettings) =>
  Layer.unwrapEffect(
    select(settings, (_backend, database) =>
      Effect.succeed(Option.isSome(database) ? SqlTaskStore.pipe(Layer.provide(database.value)) : MemoryTaskStore)
    )
  )

/** All three stores from one set of keys, on one shared database client. */
export const StorageFromConfig = (settings: StorageSettings) =>
  Layer.mergeAll(AccountStoreFromConfig(settings), HardwareStoreFromConfig(settings), StreamStoreFromConfig(settings))
