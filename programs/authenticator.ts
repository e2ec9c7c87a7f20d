/**
 * DroneEngage authenticator (seed 000): the original's HTTP login API on 19408 and the
 * server-to-server listener for relays on 19001.
 * Made of: the Bun transport (two listeners), an AccountStore and a HardwareStore, in-memory
 * Tokens for sessions, Bun's file system (trusted S2S keys) and the authenticator service
 * (src/droneengage/Authenticator.ts: rate limits, the relay registry and the login API).
 */
import { runProgram } from "../layers/Program/runProgram.ts"
import { AuthenticatorLive } from "./servers/authenticator.ts"

runProgram(AuthenticatorLive)
