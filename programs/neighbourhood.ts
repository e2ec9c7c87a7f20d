/**
 * Neighbourhood server (seed 003): the OLAF/Neighbourhood protocol v1.2, port 9002.
 * Made of: the Bun transport (clients, neighbours, the page and the file API on one port), the
 * in-process Rooms (fan-out to local clients), Federation links to the configured neighbours, the
 * FileStore (a directory by default, with quota and expiry), and the server key from `keyPath`
 * (generated on first start).
 */
import { runProgram } from "../layers/Program/runProgram.ts"
import { NeighbourhoodLive } from "./servers/neighbourhood.ts"

runProgram(NeighbourhoodLive)
