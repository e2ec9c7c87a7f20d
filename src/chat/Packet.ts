import { Either, ParseResult, Schema } from "effect"

/** The four bytes every packet starts with. */
export const FRAME_SIGNATURE = Uint8Array.of(0x45, 0x6a, 0x38, 0x40) // "Ej8@"
/** frame[4] + int32 uid, size, cmd, p1, p2 (little-endian). */
export const HEADER_BYTES = 24
/** The 15 bytes a client sends as data of its first packet (cmd 0). */
export const MAGIC = new TextEncoder().encode("magic string :)")
/** uid of every packet the server pushes on its own (not a reply). */
export const SERVER_PUSH_UID = -1

export const Command = {
  NOP: 0,
  SET_USER_NICK: 1,
  SET_ROOM: 2,
  RESP_OK: 3,
  RESP_ERROR: 4,
  NEW_USER: 5,
  DEL_USER: 6,
  NEW_MSG: 7,
  LOGGED_MSG: 8
} as const
export type Command = (typeof Command)[keyof typeof Command]

/** One tPacket. `cmd` stays a plain int32: unknown commands must decode so they can be refused. */
export const TPacket = Schema.Struct({
  uid: Schema.Int,
  cmd: Schema.Int,
  p1: Schema.Int,
  p2: Schema.Int,
  data: Schema.Uint8ArrayFromSelf
})
export type TPacket = typeof TPacket.Type

/** Why a frame is not a packet. */
export type FrameProblem = "short" | "signature" | "size"

export const frameProblemMessage: Record<FrameProblem, string> = {
  short: `frame shorter than the ${HEADER_BYTES}-byte header`,
  signature: `frame does not start with "Ej8@"`,
  size: "size field does not match the frame length"
}

// Header fields are read and written byte by byte: a DataView needs the array's `.buffer`, which makes
// JavaScriptCore move a small typed array's bytes into a new ArrayBuffer on every packet.
const writeInt32 = (bytes: Uint8Array, at: number, n: number) => {
  bytes[at] = n
  bytes[at + 1] = n >>> 8
  bytes[at + 2] = n >>> 16
  bytes[at + 3] = n >>> 24
}
const readInt32 = (bytes: Uint8Array, at: number) =>
  bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)

/** Serializes a packet: header with size = 24 + data length, then the data. */
export const encodePacket = (packet: TPacket): Uint8Array => {
  const bytes = new Uint8Array(HEADER_BYTES + packet.data.length)
  bytes.set(FRAME_SIGNATURE, 0)
  writeInt32(bytes, 4, packet.uid | 0)
  writeInt32(bytes, 8, bytes.length)
  writeInt32(bytes, 12, packet.cmd | 0)
  writeInt32(bytes, 16, packet.p1 | 0)
  writeInt32(bytes, 20, packet.p2 | 0)
  bytes.set(packet.data, HEADER_BYTES)
  return bytes
}

/** Signature, uid -1 and cmd NEW_MSG; size, p1 and p2 (0) are the encoder's. */
const newMessageHeader = Uint8Array.of(0x45, 0x6a, 0x38, 0x40, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 7, 0, 0, 0)

/** encodePacket(packet(NEW_MSG, { p1: sender, data: text })) without the packet object: the broadcast's hot path. */
export const encodeNewMessage = (sender: number, text: Uint8Array): Uint8Array => {
  const bytes = new Uint8Array(HEADER_BYTES + text.length)
  bytes.set(newMessageHeader, 0)
  writeInt32(bytes, 8, bytes.length)
  writeInt32(bytes, 16, sender | 0)
  bytes.set(text, HEADER_BYTES)
  return bytes
}

/**
 * The text of a frame that is a whole _NEW_MSG packet of at most `maxTextBytes`, read from its header without
 * decoding the packet; undefined for anything else (test/chat/Rules.test.ts: it agrees with `interpret`).
 */
export const newMessageText = (frame: Uint8Array, maxTextBytes: number): Uint8Array | undefined => {
  const length = frame.length
  if (length < HEADER_BYTES || length - HEADER_BYTES > maxTextBytes) return undefined
  if (frame[0] !== 0x45 || frame[1] !== 0x6a || frame[2] !== 0x38 || frame[3] !== 0x40) return undefined
  if (readInt32(frame, 8) !== length || readInt32(frame, 12) !== Command.NEW_MSG) return undefined
  return frame.subarray(HEADER_BYTES)
}

/** The uid of a frame as far as it can be read (to address an error reply), -1 otherwise. */
/** The user a _NEW_USER or _DEL_USER frame announces (p1), with its command; undefined for any other frame. */
export const userChange = (frame: Uint8Array): { readonly cmd: number; readonly id: number } | undefined => {
  if (frame.length < HEADER_BYTES || FRAME_SIGNATURE.some((byte, i) => frame[i] !== byte)) return undefined
  const cmd = readInt32(frame, 12)
  return cmd === Command.NEW_USER || cmd === Command.DEL_USER ? { cmd, id: readInt32(frame, 16) } : undefined
}

/** The sender of a _NEW_MSG frame, read from its header; undefined for any other frame. */
export const messageSender = (frame: Uint8Array): number | undefined => {
  if (frame.length < HEADER_BYTES || FRAME_SIGNATURE.some((byte, i) => frame[i] !== byte)) return undefined
  return readInt32(frame, 12) === Command.NEW_MSG ? readInt32(frame, 16) : undefined
}

export const frameUid = (frame: Uint8Array): number => (frame.length >= 8 ? readInt32(frame, 4) : SERVER_PUSH_UID)

/**
 * Reads one packet from one binary WebSocket message. Never throws: any byte string is either
 * a packet whose size field equals the frame length, or a FrameProblem. Data is a view, not a copy.
 */
export const readPacket = (frame: Uint8Array): Either.Either<TPacket, FrameProblem> => {
  if (frame.length < HEADER_BYTES) return Either.left("short")
  for (let i = 0; i < 4; i++) if (frame[i] !== FRAME_SIGNATURE[i]) return Either.left("signature")
  if (readInt32(frame, 8) !== frame.length) return Either.left("size")
  return Either.right({
    uid: readInt32(frame, 4),
    cmd: readInt32(frame, 12),
    p1: readInt32(frame, 16),
    p2: readInt32(frame, 20),
    data: frame.subarray(HEADER_BYTES)
  })
}

/** Wire bytes ↔ TPacket, for decoding untrusted frames with Schema. */
export const TPacketFromBytes = Schema.transformOrFail(Schema.Uint8ArrayFromSelf, TPacket, {
  strict: true,
  decode: (frame, _, ast) =>
    Either.match(readPacket(frame), {
      onLeft: (problem) => ParseResult.fail(new ParseResult.Type(ast, frame, frameProblemMessage[problem])),
      onRight: ParseResult.succeed
    }),
  encode: (packet) => ParseResult.succeed(encodePacket(packet))
})

/** Decodes a frame into a packet, or names what is wrong with it. */
export const decodeFrame = Schema.decodeEither(TPacketFromBytes)

export const packet = (cmd: number, fields: Partial<Omit<TPacket, "cmd">> = {}): TPacket => ({
  uid: fields.uid ?? SERVER_PUSH_UID,
  cmd,
  p1: fields.p1 ?? 0,
  p2: fields.p2 ?? 0,
  data: fields.data ?? new Uint8Array(0)
})

export const sameBytes = (a: Uint8Array, b: Uint8Array) => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
