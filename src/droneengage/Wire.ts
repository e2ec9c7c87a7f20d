import { Either, Schema } from "effect"
import { exceedsJsonDepth, maxJsonDepth } from "../shared/JsonDepth.ts"
import { describeParseError } from "./SchemaErrors.ts"

/** Error numbers of the DroneEngage HTTP API (field `e`), as the original authenticator defines them. */
export const ErrorCode = {
  none: 0,
  invalidData: 1,
  accountNotFound: 2,
  databaseError: 3,
  noServer: 5,
  noPermission: 6,
  sessionNotFound: 7,
  hardwareNotFound: 8,
  accountDisabled: 9,
  notFound: 10,
  unknown: 999
} as const

/** Actor types: "g" ground control station (web/desktop), "d" drone agent. */
export const ActorType = Schema.Literal("g", "d")
export type ActorType = typeof ActorType.Type

/** Reserved targets (tg) and the relay's own sender id. */
export const Target = {
  allGcs: "_GCS_",
  everyone: "_GD_",
  allAgents: "_AGN_",
  system: "_SYS_"
} as const

/** System message types (mt with ty "s"). */
export const SystemMessage = {
  loadTasks: 9001,
  saveTasks: 9002,
  deleteTasks: 9003,
  disableTasks: 9004,
  ping: 9005,
  leaveGroup: 9006,
  connected: 9007,
  udpProxy: 9008,
  /** Ours: the relay's error reply to a message it cannot handle (see docs/droneengage.md). */
  error: 9100
} as const

/** The client envelope. Unknown extra fields are kept and forwarded untouched. */
export const Envelope = Schema.Struct(
  {
    ty: Schema.Literal("g", "i", "s"),
    sd: Schema.optional(Schema.Unknown),
    tg: Schema.optional(Schema.String),
    mt: Schema.Union(Schema.Number.pipe(Schema.finite()), Schema.String),
    ms: Schema.optional(Schema.Unknown),
    p: Schema.optional(Schema.Unknown)
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)
export type Envelope = typeof Envelope.Type

const decodeEnvelope = Schema.decodeUnknownEither(Envelope)

export type ParsedFrame =
  | { readonly _tag: "Text"; readonly envelope: Envelope }
  | { readonly _tag: "Binary"; readonly envelope: Envelope; readonly body: Uint8Array }

export interface FrameError {
  readonly _tag: "FrameError"
  readonly reason: string
}

const frameError = (reason: string): FrameError => ({ _tag: "FrameError", reason })
const utf8 = new TextDecoder("utf-8", { fatal: true })
const encoder = new TextEncoder()

const tooDeep = `message nests deeper than ${maxJsonDepth} levels`

const parseEnvelopeText = (text: string): Either.Either<Envelope, FrameError> => {
  if (exceedsJsonDepth(text)) return Either.left(frameError(tooDeep))
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return Either.left(frameError("not JSON"))
  }
  return decodeEnvelope(json).pipe(Either.mapLeft((error) => frameError(describeParseError(error, "message"))))
}

/**
 * Decodes a client frame: text is a JSON envelope; binary is a JSON envelope header, one 0x00
 * byte, then raw bytes (the body is a view, never copied or decoded).
 */
export const parseFrame = (message: string | Uint8Array): Either.Either<ParsedFrame, FrameError> => {
  if (typeof message === "string")
    return Either.map(parseEnvelopeText(message), (envelope) => ({ _tag: "Text", envelope }))
  const split = splitBinaryFrame(message)
  if (split === undefined) return Either.left(frameError("binary header is not UTF-8"))
  return Either.map(parseEnvelopeText(split.header), (envelope) => ({ _tag: "Binary", envelope, body: split.body }))
}

const emptyBody = new Uint8Array(0)

/** A binary frame's header text and body (a view), or undefined when the header is not UTF-8. */
export const splitBinaryFrame = (message: Uint8Array): { header: string; body: Uint8Array } | undefined => {
  const split = message.indexOf(0)
  try {
    const header = utf8.decode(split === -1 ? message : message.subarray(0, split))
    return { header, body: split === -1 ? emptyBody : message.subarray(split + 1) }
  } catch {
    return undefined
  }
}

/** A binary frame: header JSON, 0x00, body. */
export const encodeBinaryFrame = (header: unknown, body: Uint8Array): Uint8Array =>
  encodeBinaryText(JSON.stringify(header), body)

/** A binary frame from its header's JSON text. */
export const encodeBinaryText = (headerText: string, body: Uint8Array): Uint8Array => {
  const head = encoder.encode(headerText)
  const frame = new Uint8Array(head.byteLength + 1 + body.byteLength)
  frame.set(head, 0)
  frame[head.byteLength] = 0
  frame.set(body, head.byteLength + 1)
  return frame
}

/** The relay's welcome frame. */
export const welcome = (remoteAddress: string) =>
  JSON.stringify({ ty: "s", mt: SystemMessage.connected, ms: { s: `OK:connected:tcp:${remoteAddress}` } })

/** Machine-readable reasons in error replies (ms.s is "ERR:<reason>"). */
export type RelayErrorReason =
  | "malformed"
  | "not-in-group"
  | "target-not-found"
  | "unknown-system-message"
  | "tasks-unavailable"
  | "udp-proxy-unavailable"
  | "agents-only"
  | "udp-proxy-invalid"
  | "task-invalid"
  | "task-too-large"
  | "task-quota"
  | "task-storage"
  | "foreign-account"

/** What a system-message service answers: frames for the unit, or a refusal sent as an error reply. */
export type SystemOutcome =
  | { readonly _tag: "Replies"; readonly frames: ReadonlyArray<string> }
  | { readonly _tag: "Refused"; readonly reason: RelayErrorReason; readonly text: string }

/**
 * The relay's answer to a message it cannot handle:
 * {"ty":"s","sd":"_SYS_","mt":9100,"ms":{"s":"ERR:<reason>","em":"<text>","mt":<offending mt>}}.
 */
export const errorReply = (reason: RelayErrorReason, text: string, offendingType?: number | string) =>
  JSON.stringify({
    ty: "s",
    sd: Target.system,
    mt: SystemMessage.error,
    ms:
      offendingType === undefined
        ? { s: `ERR:${reason}`, em: text }
        : { s: `ERR:${reason}`, em: text, mt: offendingType }
  })
