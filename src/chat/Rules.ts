import { Either } from "effect"
import type { ChatLimits } from "./Config.ts"
import { Command, frameUid, MAGIC, packet, readPacket, sameBytes, SERVER_PUSH_UID, type TPacket } from "./Packet.ts"

/**
 * Every refusal is _RESP_ERROR with p1 = -1 (what the original sends, and all its clients look
 * at) and the reason in p2. The original's own refusals (nick taken, nick or room change) keep p2 = 0.
 */
export const ErrorReason = {
  refused: 0,
  malformed: 1,
  unknownCommand: 2,
  tooLong: 3,
  limitReached: 4,
  notInRoom: 5,
  empty: 6,
  nickFirst: 7,
  rateLimited: 8
} as const
export type ErrorReason = (typeof ErrorReason)[keyof typeof ErrorReason]

export const errorReasonText: Record<ErrorReason, string> = {
  0: "refused (nick in use, or nick/room already set)",
  1: "malformed packet",
  2: "unknown command",
  3: "too long",
  4: "server limit reached",
  5: "not in a room",
  6: "empty name",
  7: "set a nick first",
  8: "too many packets: slow down"
}

/** ErrorReason → its name ("tooLong"), for metric labels and logs. */
export const errorReasonName = Object.fromEntries(
  Object.entries(ErrorReason).map(([name, code]) => [code, name])
) as Record<ErrorReason, string>

export const okReply = (uid: number): TPacket => packet(Command.RESP_OK, { uid })
export const errorReply = (uid: number, reason: ErrorReason): TPacket =>
  packet(Command.RESP_ERROR, { uid, p1: -1, p2: reason })

/** Trust levels of one connection: after the WebSocket open, the magic packet, then a nick. */
export type Level = "awaitMagic" | "awaitNick" | "ready"

export interface SessionView {
  readonly level: Level
  readonly inRoom: boolean
}

/** What to do with one inbound WebSocket message; the caller applies it. */
export type Step =
  | { readonly _tag: "Close"; readonly reason: string }
  | { readonly _tag: "MagicAccepted" }
  | { readonly _tag: "Ignore" }
  | { readonly _tag: "Refuse"; readonly reply: TPacket; readonly reason: ErrorReason }
  | { readonly _tag: "SetNick"; readonly uid: number; readonly nick: Uint8Array }
  | { readonly _tag: "SetRoom"; readonly uid: number; readonly room: Uint8Array }
  | { readonly _tag: "Message"; readonly uid: number; readonly text: Uint8Array }

const refuse = (uid: number, reason: ErrorReason): Step => ({ _tag: "Refuse", reply: errorReply(uid, reason), reason })
const closeBeforeMagic: Step = { _tag: "Close", reason: "expected the magic packet" }

/** A name is 1..max bytes. */
export const nameProblem = (name: Uint8Array, maxBytes: number): ErrorReason | undefined =>
  name.length === 0 ? ErrorReason.empty : name.length > maxBytes ? ErrorReason.tooLong : undefined

/**
 * The handshake state machine and per-connection room rules. Total: any message at any level
 * yields a Step (text frames and broken frames included), so nothing a client sends can throw.
 */
export const interpret = (session: SessionView, message: string | Uint8Array, limits: ChatLimits): Step => {
  if (typeof message === "string")
    return session.level === "awaitMagic" ? closeBeforeMagic : refuse(SERVER_PUSH_UID, ErrorReason.malformed)
  // readPacket is the Schema's own decode step; the TPacket checks it adds (int32 fields, bytes) hold by
  // construction, so the hot path skips the Schema run (test/chat/Packet.test.ts: both agree on any bytes).
  const decoded = readPacket(message)
  if (Either.isLeft(decoded))
    return session.level === "awaitMagic" ? closeBeforeMagic : refuse(frameUid(message), ErrorReason.malformed)
  const p = decoded.right
  switch (session.level) {
    case "awaitMagic":
      return p.cmd === Command.NOP && sameBytes(p.data, MAGIC) ? { _tag: "MagicAccepted" } : closeBeforeMagic
    case "awaitNick": {
      if (p.cmd === Command.NOP) return { _tag: "Ignore" }
      if (p.cmd !== Command.SET_USER_NICK) return refuse(p.uid, ErrorReason.nickFirst)
      const problem = nameProblem(p.data, limits.maxNickBytes)
      // Nick refusals stay p2-informative but always allow a retry.
      return problem === undefined ? { _tag: "SetNick", uid: p.uid, nick: p.data } : refuse(p.uid, problem)
    }
    case "ready":
      switch (p.cmd) {
        case Command.NOP:
          return { _tag: "Ignore" }
        case Command.SET_USER_NICK:
          return refuse(p.uid, ErrorReason.refused)
        case Command.SET_ROOM: {
          if (session.inRoom) return refuse(p.uid, ErrorReason.refused)
          const problem = nameProblem(p.data, limits.maxRoomNameBytes)
          return problem === undefined ? { _tag: "SetRoom", uid: p.uid, room: p.data } : refuse(p.uid, problem)
        }
        case Command.NEW_MSG:
          if (!session.inRoom) return refuse(p.uid, ErrorReason.notInRoom)
          if (p.data.length > limits.maxMessageBytes) return refuse(p.uid, ErrorReason.tooLong)
          return { _tag: "Message", uid: p.uid, text: p.data }
        default:
          return refuse(p.uid, ErrorReason.unknownCommand)
      }
  }
}

/** Server-wide room rules, given how things stand. */
export const joinProblem = (
  state: { readonly roomExists: boolean; readonly roomCount: number; readonly memberCount: number },
  limits: ChatLimits
): ErrorReason | undefined => {
  if (!state.roomExists && state.roomCount >= limits.maxRooms) return ErrorReason.limitReached
  if (state.memberCount >= limits.maxMembersPerRoom) return ErrorReason.limitReached
  return undefined
}
