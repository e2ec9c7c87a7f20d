/**
 * Hydrogen WebSocket server (seed 004): the seed document's server on one port (5001), with the
 * original's legacy status message, guaranteed delivery and session recovery (src/hydrogen/).
 * This program only composes: the Hydrogen layer over Bun sockets, in-process rooms, memory
 * tokens (resume tokens) and the history store named by hydrogen.storage.
 */
import { runProgram } from "../layers/Program/runProgram.ts"
import { HydrogenLive } from "./servers/hydrogen.ts"

runProgram(HydrogenLive)
