import { Either, ParseResult, Schema } from "effect"
import { type ErrorIssue, ErrorCodes, HydrogenError, protocolError } from "./Errors.ts"
import { preview } from "../shared/ClientText.ts"
import { parseJson } from "./Json.ts"
import { actionPattern, channelPattern, handCommand } from "./HandDecode.ts"

/** Channel names: letters, digits and `_ . : -`, up to 128 characters. */
export const ChannelName = Schema.String.pipe(
  Schema.pattern(channelPattern, { message: () => "a channel is 1-128 characters of A-Z a-z 0-9 _ . : -" })
)
export const ActionName = Schema.String.pipe(
  Schema.pattern(actionPattern, { message: () => "an action is 1-64 characters of A-Z a-z 0-9 _ . : -" })
)
export const MessageId = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128))
/** ISO-8601 in every message the server sends; clients may send any short string or omit it. */
export const Timestamp = Schema.String.pipe(Schema.maxLength(64))
export const Priority = Schema.Literal("normal", "high")
export type Priority = typeof Priority.Type

/** Per-message credentials of the seed (`auth.token`); signatures are refused (use TLS). */
export const MessageAuth = Schema.Struct({
  token: Schema.optional(Schema.String.pipe(Schema.maxLength(4096))),
  signature: Schema.optional(Schema.String.pipe(Schema.maxLength(4096)))
})

/** Client → server: a request that always gets exactly one response with the same id. */
export const Command = Schema.Struct({
  type: Schema.Literal("command"),
  id: MessageId,
  timestamp: Schema.optional(Timestamp),
  channel: ChannelName,
  action: ActionName,
  data: Schema.optional(Schema.Unknown),
  auth: Schema.optional(MessageAuth)
})
export type Command = typeof Command.Type

/** Most event ids one ack may name (a batch ack after a resume, for instance). */
export const maxAckIds = 256

/**
 * Client → server: confirms receipt of the event whose `id` it names, or of every event in `ids`
 * (a batch ack, at most maxAckIds). Never answered.
 */
export const Ack = Schema.Struct({
  type: Schema.Literal("ack"),
  id: Schema.optional(MessageId),
  ids: Schema.optional(Schema.Array(MessageId).pipe(Schema.minItems(1), Schema.maxItems(maxAckIds))),
  timestamp: Schema.optional(Timestamp),
  channel: Schema.optional(ChannelName),
  action: Schema.optional(Schema.String.pipe(Schema.maxLength(64))),
  data: Schema.optional(Schema.Unknown),
  auth: Schema.optional(MessageAuth)
}).pipe(
  Schema.filter(
    (ack) => ack.id !== undefined || ack.ids !== undefined || { path: ["id"], message: "an ack names an id (or ids)" }
  )
)
export type Ack = typeof Ack.Type

/** The original server's only message; answered with the legacy status object. */
export const LegacyStatus = Schema.Struct({ type: Schema.Literal("status") })
export type LegacyStatus = typeof LegacyStatus.Type

export const Inbound = Schema.Union(Command, Ack, LegacyStatus)
export type Inbound = typeof Inbound.Type

/** Server → client: an event on a channel. Reliable channels add `seq` and `epoch`. */
export const Event = Schema.Struct({
  type: Schema.Literal("event"),
  seq: Schema.optional(Schema.Int.pipe(Schema.positive())),
  epoch: Schema.optional(Schema.String),
  id: MessageId,
  timestamp: Timestamp,
  channel: ChannelName,
  action: ActionName,
  data: Schema.Unknown,
  priority: Schema.optional(Priority),
  ack: Schema.optional(Schema.Literal(true))
})
export type Event = typeof Event.Type

export const ErrorBody = Schema.Struct({
  category: Schema.Literal("protocol", "authentication", "application"),
  code: Schema.String,
  message: Schema.String,
  issues: Schema.optional(
    Schema.Array(
      Schema.Struct({ path: Schema.Array(Schema.Union(Schema.String, Schema.Number)), message: Schema.String })
    )
  )
})

/** Server → client: the reply to a command (or to a message that could not be read). */
export const Response = Schema.Struct({
  type: Schema.Literal("response"),
  id: Schema.optional(MessageId),
  timestamp: Timestamp,
  channel: Schema.optional(Schema.String),
  action: Schema.optional(Schema.String),
  data: Schema.optional(Schema.Unknown),
  error: Schema.optional(ErrorBody)
})
export type Response = typeof Response.Type

export const Outbound = Schema.Union(Event, Response)

const schemaFor = { command: Command, ack: Ack, status: LegacyStatus } as const

/** Most issues an error reply lists. */
const maxIssues = 16

/** The rule an issue broke, without the value that broke it (which is the client's, and may be huge) or schema internals. */
const ruleOf = (issue: ParseResult.ArrayFormatterIssue): string => {
  if (issue._tag === "Missing") return "is missing"
  if (issue._tag === "Unexpected") return "is not allowed"
  const message = issue.message
  if (!message.startsWith("Expected ")) return message.length <= 160 ? message : `${message.slice(0, 160)}…`
  const actual = message.indexOf(", actual ")
  const expected = message.slice("Expected ".length, actual === -1 ? undefined : actual)
  return expected.length <= 80 && !expected.includes("{") ? `expected ${expected}` : "does not have the expected shape"
}

/** Path keys come from the client too: long ones are cut. */
const keyOf = (key: PropertyKey): PropertyKey =>
  typeof key === "string" && key.length > 64 ? `${key.slice(0, 64)}…` : key

/** Schema issues as a short wire-friendly list: each names the field and the rule, never the value. */
export const issuesOf = (error: ParseResult.ParseError): ReadonlyArray<ErrorIssue> => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => ({
    path: issue.path.map(keyOf),
    message: ruleOf(issue)
  }))
  // An optional field given a bad value also fails the "undefined" member of its union: that one says nothing.
  const at = (issue: ErrorIssue) => JSON.stringify(issue.path.map(String))
  const otherwise = new Set(issues.filter((issue) => issue.message !== "expected undefined").map(at))
  return issues
    .filter((issue) => issue.message !== "expected undefined" || !otherwise.has(at(issue)))
    .slice(0, maxIssues)
}

/** The `id` of an object that failed to decode, if it is usable in a reply. */
export const usableId = (value: unknown): string | undefined => {
  if (value === null || typeof value !== "object") return undefined
  const id = (value as { id?: unknown }).id
  return typeof id === "string" && id.length > 0 && id.length <= 128 ? id : undefined
}

export interface DecodeFailure {
  readonly error: HydrogenError
  readonly id: string | undefined
}

/** Text → inbound message. Never throws: every failure is a protocol error with issues. */
export const decodeInbound = (text: string): Either.Either<Inbound, DecodeFailure> => {
  const parsed = parseJson(text)
  if (Either.isLeft(parsed)) return Either.left({ error: parsed.left, id: undefined })
  const value = parsed.right
  const id = usableId(value)
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return Either.left({ error: protocolError(ErrorCodes.invalidEnvelope, "a message is a JSON object"), id })
  }
  const type = (value as { type?: unknown }).type
  const schema =
    typeof type === "string" && Object.hasOwn(schemaFor, type) ? schemaFor[type as keyof typeof schemaFor] : undefined
  if (!schema) {
    return Either.left({
      error: protocolError(ErrorCodes.unknownType, 'type must be "command" or "ack" (or the legacy "status")', [
        { path: ["type"], message: type === undefined ? "is missing" : `got ${preview(type)}` }
      ]),
      id
    })
  }
  // Most commands are plain (events/publish): checked by hand, the Schema only for the rest.
  const plain = type === "command" ? handCommand(value) : undefined
  if (plain) return Either.right(plain)
  const decoded = Schema.decodeUnknownEither(schema as Schema.Schema<Inbound, unknown>, { errors: "all" })(value)
  return Either.isRight(decoded)
    ? Either.right(decoded.right)
    : Either.left({
        error: protocolError(
          ErrorCodes.invalidEnvelope,
          "the message does not match the envelope",
          issuesOf(decoded.left)
        ),
        id
      })
}

const idPrefix = /"id"\s*:\s*"((?:[^"\\]|\\.){1,128})"/

/**
 * The id of a message too large to parse in full, read from its first bytes only, so that the
 * error reply can still name it. `undefined` when the text does not even look like an object.
 */
export const peekId = (text: string): { readonly looksLikeObject: boolean; readonly id: string | undefined } => {
  const head = text.slice(0, 512)
  if (!/^\s*\{/.test(head)) return { looksLikeObject: false, id: undefined }
  const match = idPrefix.exec(head)
  if (!match) return { looksLikeObject: true, id: undefined }
  try {
    return { looksLikeObject: true, id: JSON.parse(`"${match[1]}"`) as string }
  } catch {
    return { looksLikeObject: true, id: undefined }
  }
}

const ackPrefix = '{"type":"ack","id":"'
/** Where the id starts in a plain ack. */
export const plainAckIdStart = ackPrefix.length

/**
 * The event ordinal of a plain ack `{"type":"ack","id":"<id>"}` whose id ends in `-<base 36>`, as
 * every id this server makes does (EventIds), read backwards from the closing quote without slicing
 * the id; -1 for anything else. The caller still compares the whole id with the pending one.
 */
export const plainAckOrdinal = (text: string): number => {
  const end = text.length - 2
  if (end <= ackPrefix.length || text.charCodeAt(end) !== 34 || text.charCodeAt(end + 1) !== 125) return -1
  if (!text.startsWith(ackPrefix)) return -1
  let ordinal = 0
  let scale = 1
  for (let i = end - 1; i >= ackPrefix.length; i--) {
    const c = text.charCodeAt(i)
    if (c === 45) return i === end - 1 ? -1 : ordinal
    const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 122 ? c - 87 : -1
    // At most 10 digits, as eventOrdinal reads (36^10 < 2^53).
    if (digit < 0 || scale > 36 ** 9) return -1
    ordinal += digit * scale
    scale *= 36
  }
  return -1
}

/**
 * The id of an ack in its plain form `{"type":"ack","id":"<id>"}` (no escapes), read without
 * JSON.parse or Schema: acks are the most frequent client message. Anything else returns
 * undefined and takes the full decoder.
 */
export const plainAckId = (text: string): string | undefined => {
  if (!text.startsWith(ackPrefix) || !text.endsWith('"}')) return undefined
  const id = text.slice(ackPrefix.length, -2)
  if (id.length === 0 || id.length > 128) return undefined
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i)
    if (c === 34 || c === 92 || c < 32) return undefined
  }
  return id
}

const batchAckPrefix = '{"type":"ack","ids":["'

/**
 * The ids of a batch ack in its plain form `{"type":"ack","ids":["<id>","<id>",…]}` (no spaces,
 * no escapes, 1 to maxAckIds ids of 1-128 characters), read without JSON.parse or Schema: a client
 * acking what it has just read sends these. Anything else returns undefined and takes the full decoder.
 */
export const plainBatchAckIds = (text: string): Array<string> | undefined => {
  const last = text.length - 3
  if (last < batchAckPrefix.length || !text.startsWith(batchAckPrefix) || !text.endsWith('"]}')) return undefined
  const ids: Array<string> = []
  let start = batchAckPrefix.length
  for (let i = start; i <= last; i++) {
    const c = text.charCodeAt(i)
    if (c === 92 || c < 32) return undefined
    if (c !== 34) continue
    if (i === start || i - start > 128 || ids.length === maxAckIds) return undefined
    ids.push(text.slice(start, i))
    if (i === last) return ids
    // Between two ids: exactly `","`.
    if (text.charCodeAt(i + 1) !== 44 || text.charCodeAt(i + 2) !== 34) return undefined
    i += 2
    start = i + 1
  }
  return undefined
}
