/**
 * tPacket chat server (seed 002): byte-compatible with the original's clients, port 25021.
 * Made of: the Bun transport, in-process rooms, a StreamStore for history (memory, or SQLite /
 * MySQL when `chat.history.backend` says so) and the file system for the web page.
 */
import { runProgram } from "../layers/Program/runProgram.ts"
import { ChatLive } from "./servers/chat.ts"

runProgram(ChatLive)
