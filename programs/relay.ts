/**
 * DroneEngage relay (the original's communication server, seed 000): client WebSocket on 9966.
 * Made of: the Bun transport, Rooms (under DroneEngage's unit rooms), Tokens for the single-use
 * login keys and the Federation link to the authenticator over real WebSockets, all three from
 * `cluster.*` (one process by default; docs/cluster.md), Bun's file system (the S2S key file),
 * Bun UDP sockets (the 9008 proxy), the task store of relay.tasks.storage (9001-9004) and the
 * relay service (src/droneengage/Relay.ts).
 */
import { runProgram } from "../layers/Program/runProgram.ts"
import { RelayLive } from "./servers/relay.ts"

runProgram(RelayLive)
