/**
 * DroneEngage relay (the original's communication server, seed 000): client WebSocket on 9966.
 * Made of: the Bun transport, in-process Rooms (under DroneEngage's unit rooms), in-memory
 * Tokens for the single-use login keys, the Federation link to the authenticator over real
 * WebSockets, Bun's file system (the S2S key file), Bun UDP sockets (the 9008 proxy), the task
 * store of relay.tasks.storage (9001-9004) and the relay service (src/droneengage/Relay.ts).
 */
import { runProgram } from "../layers/Program/runProgram.ts"
import { RelayLive } from "./servers/relay.ts"

runProgram(RelayLive)
