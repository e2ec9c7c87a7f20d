/**
 * DroneEngage authenticator (seed 000): the original's HTTP login API on 19408 and the
 * server-to-server listener for relays on 19001.
 * Made of: the Bun transport (two listeners), an AccountStore and a HardwareStore, in-memory
 * Tokens for sessions, Bun's file system (trusted S2S keys) and the authenticator service
 * (src/droneengage/Authenticator.ts: rate limits, the relay registry and the login API). With
 * `cluster.broker = redis | nats` its login limits per address/account hold across authenticator nodes, and its
 * sessions (sid) live in the broker, so a client logged in on one authenticator goes on with any other.
 */
import { BunFileSystem } from "@effect/platform-bun"
import { Effect, Layer } from "effect"
import { TokensFromConfig, withSharedLimitsFromConfig } from "../../layers/Cluster/ClusterFromConfig.ts"
import { AccessCodeHasher } from "../../layers/Storage/AccessCodeHasher.ts"
import { AccountStoreFromConfig, HardwareStoreFromConfig } from "../../layers/Storage/StorageFromConfig.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import type { Tokens } from "../../layers/Tokens/Tokens.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { AuthenticatorServer } from "../../src/droneengage/Authenticator.ts"
import { AuthenticatorConfig } from "../../src/droneengage/Config.ts"

/** Accounts and hardware from `authenticator.storage.*` (SQLite at ./data/droneengage.sqlite by default). */
export const authenticatorStorageSettings = { name: "droneengage", path: ["authenticator", "storage"] } as const

export const AuthenticatorStorage = Layer.merge(
  AccountStoreFromConfig(authenticatorStorageSettings).pipe(Layer.provide(AccessCodeHasher.Default)),
  HardwareStoreFromConfig(authenticatorStorageSettings)
)

/**
 * The authenticator from an explicit config (the stack uses it to share one S2S secret with its relay); needs the
 * stores. Sessions in `tokens` (this process's memory unless told otherwise).
 */
export const AuthenticatorFrom = <E>(config: AuthenticatorConfig, tokens: Layer.Layer<Tokens, E> = MemoryTokensLive) =>
  AuthenticatorServer(config).pipe(Layer.provide(Layer.mergeAll(BunTransportLive, tokens, BunFileSystem.layer)))

export const AuthenticatorLive = withSharedLimitsFromConfig(
  Layer.unwrapEffect(Effect.map(AuthenticatorConfig, (config) => AuthenticatorFrom(config, TokensFromConfig)))
).pipe(Layer.provide(AuthenticatorStorage))
