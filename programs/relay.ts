/**
 * DroneEngage relay (the original's communication server, seed 000): client WebSocket on 9966.
 * Made of: the Bun transport, Rooms (under DroneEngage's unit rooms), Tokens for the single-use
 * login keys and the Federation link to the authenticator over real WebSockets, all three from
 * `cluster.*` (docs/cluster.md), Bun's file system (the S2S key file) and the relay service.
 */
import { BunFileSystem } from "@effect/platform-bun"
import { Effect, Layer } from "effect"
import { BunTransportFromConfig, ClusterFromConfig } from "../layers/Cluster/ClusterFromConfig.ts"
import { runProgram } from "../layers/Program/runProgram.ts"
import { RelayConfig } from "../src/droneengage/Config.ts"
import { RelayServer } from "../src/droneengage/Relay.ts"
import { UnitRoomsLive } from "../src/droneengage/UnitRooms.ts"

// Rooms, login-key Tokens and Federation from `cluster.*`: one process by default, a node of a Redis or NATS cluster otherwise.
const RelayServices = Layer.mergeAll(BunTransportFromConfig, UnitRoomsLive("relay"), BunFileSystem.layer).pipe(
  Layer.provideMerge(ClusterFromConfig)
)

/** The relay from an explicit config (the stack uses it to share one S2S secret with its authenticator). */
export const RelayFrom = (config: RelayConfig) => RelayServer(config).pipe(Layer.provide(RelayServices))

export const RelayLive = Layer.unwrapEffect(Effect.map(RelayConfig, RelayFrom))

if (import.meta.main) runProgram(RelayLive)
