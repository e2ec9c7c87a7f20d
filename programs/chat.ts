/**
 * tPacket chat server (seed 002): byte-compatible with the original's clients, port 25021.
 * Made of: the Bun transport, Rooms with nick Claims and id Counters from `cluster.*` (one process
 * by default, a node of a Redis or NATS cluster otherwise; docs/cluster.md), a StreamStore for
 * history (memory, or SQLite / MySQL when `chat.history.backend` says so; a cluster shares MySQL)
 * and the file system for the web page.
 */
import { runProgram } from "../layers/Program/runProgram.ts"
import { ChatLive } from "./servers/chat.ts"

runProgram(ChatLive)
