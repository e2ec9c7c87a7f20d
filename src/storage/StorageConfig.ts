import { Config, Redacted } from "effect"
import { nonNegativeInt, positiveInt, positiveMillis } from "../shared/ConfigValues.ts"
import { Permission } from "./Account.ts"

export const backends = ["memory", "single", "json", "sqlite", "mysql"] as const
export type Backend = (typeof backends)[number]

/** Where the keys live and what to assume when they are absent. */
export interface StorageSettings {
  /** Used in default file names: ./data/<name>.sqlite. */
  readonly name: string
  /** Config path of the storage keys, outermost first, e.g. ["authenticator", "storage"]. */
  readonly path?: ReadonlyArray<string>
  readonly defaultBackend?: Backend
}

/** Nests `config` under `settings.path` (default ["storage"]). */
export const underPath =
  (settings: StorageSettings) =>
  <A>(config: Config.Config<A>): Config.Config<A> =>
    (settings.path ?? ["storage"]).reduceRight((inner, segment) => Config.nested(inner, segment), config)

export const BackendConfig = (settings: StorageSettings) =>
  Config.literal(...backends)("backend").pipe(Config.withDefault(settings.defaultBackend ?? "sqlite"))

export const SqliteConfig = (settings: StorageSettings) =>
  Config.string("filename").pipe(Config.withDefault(`./data/${settings.name}.sqlite`), Config.nested("sqlite"))

export const MysqlConfig = Config.all({
  host: Config.string("host").pipe(Config.withDefault("127.0.0.1")),
  port: Config.integer("port").pipe(
    Config.validate({ message: "must be a port number 1..65535", validation: (n) => n > 0 && n <= 65535 }),
    Config.withDefault(3306)
  ),
  database: Config.string("database"),
  username: Config.string("username"),
  password: Config.redacted("password").pipe(Config.withDefault(Redacted.make(""))),
  maxConnections: positiveInt("maxConnections", 10)
}).pipe(Config.nested("mysql"))

/** sqlite/mysql: how long one store call may wait for the database (a pooled connection included). */
export const QueryTimeoutConfig = positiveMillis("queryTimeoutMs", 5000)

export const JsonConfig = Config.string("path").pipe(Config.nested("json"))

export const SingleConfig = Config.all({
  name: Config.string("name"),
  accessCode: Config.redacted("accessCode").pipe(
    Config.validate({
      message: "must be at least 8 characters",
      validation: (code) => Redacted.value(code).length >= 8
    })
  ),
  permission: Config.integer("permission").pipe(
    Config.validate({
      message: "must be a permission bit set 0..4294967295",
      validation: (n) => n >= 0 && n <= Permission.all
    }),
    Config.withDefault(Permission.all)
  ),
  isAdmin: Config.boolean("isAdmin").pipe(Config.withDefault(false)),
  instanceLimit: nonNegativeInt("instanceLimit", 0)
}).pipe(Config.nested("single"))

/** Milliseconds a verified login is remembered (0 turns the authentication cache off). */
export const AuthCacheTtlConfig = nonNegativeInt("authCacheTtlMs", 10_000)
