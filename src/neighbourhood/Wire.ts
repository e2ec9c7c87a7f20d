import { Either, ParseResult, Schema } from "effect"
import { exceedsJsonDepth } from "../shared/JsonDepth.ts"
import { fastContent, fastSignedData } from "./FastDecode.ts"

/**
 * Every OLAF/Neighbourhood v1.2 frame as an Effect Schema, in both directions. Decoding ignores
 * (and drops) fields v1.2 does not define, so peers that add their own (a `hostname` in
 * client_update) still interoperate, and what we forward carries only the defined fields.
 * Sizes are capped here so no decoded value can be unboundedly large.
 */

const bounded = (max: number) => Schema.String.pipe(Schema.maxLength(max))
const Base64Text = (max: number) => Schema.String.pipe(Schema.maxLength(max), Schema.pattern(/^[A-Za-z0-9+/]*={0,2}$/))

/** A server address: any non-empty string ("server0", "10.0.0.27:8001", "my.server.net"). */
export const Address = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255))
/** PEM text as received (whitespace varies between implementations; parsed and checked later). */
export const PemText = bounded(8192)
/** Counters are non-negative integers JSON can carry exactly. */
export const Counter = Schema.Int.pipe(Schema.between(0, Number.MAX_SAFE_INTEGER))

export const HelloData = Schema.Struct({ type: Schema.Literal("hello"), public_key: PemText })
export const ChatData = Schema.Struct({
  type: Schema.Literal("chat"),
  destination_servers: Schema.Array(Address).pipe(Schema.minItems(1), Schema.maxItems(256)),
  iv: Base64Text(64),
  symm_keys: Schema.Array(Base64Text(1024)).pipe(Schema.minItems(1), Schema.maxItems(256)),
  chat: Base64Text(16 * 1024 * 1024)
})
export const PublicChatData = Schema.Struct({
  type: Schema.Literal("public_chat"),
  sender: bounded(128),
  message: Schema.String
})
export const ServerHelloData = Schema.Struct({ type: Schema.Literal("server_hello"), sender: Address })

export const SignedContent = Schema.Union(HelloData, ChatData, PublicChatData, ServerHelloData)
export type SignedContent = typeof SignedContent.Type
export type HelloData = typeof HelloData.Type
export type ChatData = typeof ChatData.Type
export type PublicChatData = typeof PublicChatData.Type
export type ServerHelloData = typeof ServerHelloData.Type

/**
 * The signed wrapper. v1.2 carries `data` as a JSON string (what is signed); earlier drafts sent
 * the object itself, which we still accept on input (signed as its compact JSON text).
 */
export const SignedData = Schema.Struct({
  type: Schema.Literal("signed_data"),
  data: Schema.Union(bounded(16 * 1024 * 1024), Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  counter: Counter,
  signature: Base64Text(1024)
})
export type SignedData = typeof SignedData.Type

export const ClientListRequest = Schema.Struct({ type: Schema.Literal("client_list_request") })
export const ServerClients = Schema.Struct({ address: Address, clients: Schema.Array(PemText) })
export const ClientList = Schema.Struct({ type: Schema.Literal("client_list"), servers: Schema.Array(ServerClients) })
export const ClientUpdate = Schema.Struct({
  type: Schema.Literal("client_update"),
  clients: Schema.Array(PemText).pipe(Schema.maxItems(100_000))
})
export const ClientUpdateRequest = Schema.Struct({ type: Schema.Literal("client_update_request") })
/** Not in v1.2: our answer to a refused message (peers that do not know it ignore an unknown type). */
export const ErrorReply = Schema.Struct({ type: Schema.Literal("error"), message: Schema.String })

export const Frame = Schema.Union(
  SignedData,
  ClientListRequest,
  ClientList,
  ClientUpdate,
  ClientUpdateRequest,
  ErrorReply
)
export type Frame = typeof Frame.Type
export type ClientList = typeof ClientList.Type
export type ClientUpdate = typeof ClientUpdate.Type

/** The decrypted `chat` field: v1.2 shows it wrapped as {"chat": {...}}; some clients send the inner object. */
export const ChatBody = Schema.Struct({
  participants: Schema.Array(bounded(128)).pipe(Schema.minItems(1), Schema.maxItems(257)),
  message: Schema.String
})
export const ChatPlaintext = Schema.Union(Schema.Struct({ chat: ChatBody }), ChatBody)
export type ChatBody = typeof ChatBody.Type

// Decoding dispatches on `type` to one struct's decoder: a tenth of the cost of trying the union.
const decoderOf = <A, I>(schema: Schema.Schema<A, I>) => Schema.decodeUnknownEither(schema, { errors: "first" })
const frameDecoders: Record<string, (input: unknown) => Either.Either<Frame, ParseResult.ParseError>> = {
  signed_data: decoderOf(SignedData),
  client_list_request: decoderOf(ClientListRequest),
  client_list: decoderOf(ClientList),
  client_update: decoderOf(ClientUpdate),
  client_update_request: decoderOf(ClientUpdateRequest),
  error: decoderOf(ErrorReply)
}
const contentDecoders: Record<string, (input: unknown) => Either.Either<SignedContent, ParseResult.ParseError>> = {
  hello: decoderOf(HelloData),
  chat: decoderOf(ChatData),
  public_chat: decoderOf(PublicChatData),
  server_hello: decoderOf(ServerHelloData)
}

/** The decoder for a parsed value's `type`, or why there is none. */
const byType = <A>(
  decoders: Record<string, (input: unknown) => Either.Either<A, ParseResult.ParseError>>,
  value: unknown
) => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return Either.left("not a JSON object")
  const type = (value as { type?: unknown }).type
  if (typeof type !== "string") return Either.left('no "type"')
  const decode = Object.hasOwn(decoders, type) ? decoders[type] : undefined
  if (!decode) return Either.left(`unknown type ${preview(type)}`)
  return Either.mapLeft(decode(value), explain)
}
const decodeChatPlaintext = Schema.decodeUnknownEither(ChatPlaintext)

/** Deepest nesting we parse; every v1.2 frame is at most 4 levels deep. */
export const maxFrameDepth = 16

const parseJson = (text: string): Either.Either<unknown, string> => {
  if (exceedsJsonDepth(text, maxFrameDepth)) return Either.left("JSON nested too deeply")
  try {
    return Either.right(JSON.parse(text))
  } catch {
    return Either.left("not JSON")
  }
}

/** The field and the rule it broke, never the value (the client's, maybe huge) nor the schema's type text. */
const explain = (error: ParseResult.ParseError): string => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  if (!issue) return "does not match the v1.2 schema"
  const field = issue.path.length === 0 ? "message" : issue.path.map((key) => preview(String(key), 24)).join(".")
  if (issue._tag === "Missing") return `${field} is missing`
  const expected = issue.message.startsWith("Expected ") ? issue.message.slice(9).split(", actual ")[0]! : ""
  const rule =
    expected.length > 0 && expected.length <= 60 && !/[{;]|readonly/.test(expected)
      ? `expected ${expected}`
      : "has the wrong type or size"
  return `${field} ${rule}`
}

/** A text frame → a v1.2 frame, or a short reason (never echoing the input). */
export const parseFrame = (text: string): Either.Either<Frame, string> =>
  Either.flatMap(parseJson(text), (json) => {
    // Peers that do not sign (the seed's server_hello) leave the field out: read as "", which never verifies.
    const value = json as { type?: unknown; signature?: unknown }
    if (value !== null && typeof value === "object" && value.type === "signed_data" && value.signature === undefined)
      value.signature = ""
    // Hot frames skip the Schema when the hand check (equal to it, property-tested) accepts them.
    const fast = fastSignedData(json)
    return fast ? Either.right(fast) : byType(frameDecoders, json)
  })

/** The signed text and content of a signed_data frame. */
export interface OpenedSignedData {
  readonly dataText: string
  readonly content: SignedContent
}

export const openSignedData = (frame: SignedData): Either.Either<OpenedSignedData, string> => {
  const dataText = typeof frame.data === "string" ? frame.data : JSON.stringify(frame.data)
  const json = typeof frame.data === "string" ? parseJson(frame.data) : Either.right(frame.data as unknown)
  return Either.flatMap(json, (value) => {
    const fast = fastContent(value)
    if (fast) return Either.right({ dataText, content: fast })
    return Either.map(byType(contentDecoders, value), (content) => ({ dataText, content }))
  })
}

export const parseChatPlaintext = (text: string): ChatBody | undefined => {
  const json = parseJson(text)
  if (Either.isLeft(json)) return undefined
  const decoded = decodeChatPlaintext(json.right)
  if (Either.isLeft(decoded)) return undefined
  return "chat" in decoded.right ? decoded.right.chat : decoded.right
}

// ---- encoders (what we emit: the literal v1.2 shapes) ---------------------------------------------

export const encodeSignedData = (data: string, counter: number, signature: string) =>
  JSON.stringify({ type: "signed_data", data, counter, signature })

export const encodeClientList = (
  servers: ReadonlyArray<{ readonly address: string; readonly clients: ReadonlyArray<string> }>
) => JSON.stringify({ type: "client_list", servers })

export const encodeClientUpdate = (clients: ReadonlyArray<string>) => JSON.stringify({ type: "client_update", clients })
export const clientUpdateRequestFrame = JSON.stringify({ type: "client_update_request" })
export const clientListRequestFrame = JSON.stringify({ type: "client_list_request" })
export const encodeError = (message: string) => JSON.stringify({ type: "error", message })

export const helloContent = (publicKey: string) => JSON.stringify({ type: "hello", public_key: publicKey })
export const serverHelloContent = (sender: string) => JSON.stringify({ type: "server_hello", sender })
export const publicChatContent = (sender: string, message: string) =>
  JSON.stringify({ type: "public_chat", sender, message })
export const chatContent = (
  destinations: ReadonlyArray<string>,
  sealed: { iv: string; symm_keys: ReadonlyArray<string>; chat: string }
) =>
  JSON.stringify({
    type: "chat",
    destination_servers: destinations,
    iv: sealed.iv,
    symm_keys: sealed.symm_keys,
    chat: sealed.chat
  })
export const chatPlaintext = (participants: ReadonlyArray<string>, message: string) =>
  JSON.stringify({ chat: { participants, message } })

/** A short quoted prefix of client text for an error: at most `max` characters once escaped, so escapes cannot inflate it. */
export const preview = (text: string, max = 32): string => {
  const quoted = JSON.stringify(text.length > max ? text.slice(0, max) : text)
  if (quoted.length <= max + 2 && text.length <= max) return quoted
  return `${quoted.slice(0, max + 1).replace(/\\+$/, (run) => (run.length % 2 === 0 ? run : run.slice(1)))}…"`
}
