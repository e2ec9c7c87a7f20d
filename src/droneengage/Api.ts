import { Either, ParseResult, Schema } from "effect"
import { exceedsJsonDepth, maxJsonDepth } from "../shared/JsonDepth.ts"
import { describeParseError } from "./SchemaErrors.ts"
import { ErrorCode } from "./Wire.ts"

/** The authenticator's HTTP API: request bodies (JSON or form-encoded) and reply shapes. */

/** Form bodies carry strings, JSON bodies may carry numbers: both become trimmed strings. */
const Text = (max: number) =>
  Schema.Union(Schema.String, Schema.Number.pipe(Schema.finite())).pipe(
    Schema.transform(Schema.Trimmed, {
      strict: true,
      decode: (value) => String(value).trim(),
      encode: (value) => value
    }),
    Schema.maxLength(max)
  )

const NonEmptyText = (max: number) => Text(max).pipe(Schema.minLength(1))

/** POST /w/wl and /agent/al. The route decides the actor type; a body's `at` is ignored. */
export const LoginBody = Schema.Struct({
  acc: NonEmptyText(255),
  pwd: NonEmptyText(128),
  gr: Schema.optionalWith(NonEmptyText(64), { default: () => "1" }),
  app: Schema.optional(Text(64)),
  ver: Schema.optional(Text(64)),
  ex: Schema.optional(Text(255)),
  at: Schema.optional(Text(8))
})
export type LoginBody = typeof LoginBody.Type

const loginFields = [
  ["acc", 255, true],
  ["pwd", 128, true],
  ["gr", 64, true],
  ["app", 64, false],
  ["ver", 64, false],
  ["ex", 255, false],
  ["at", 8, false]
] as const
const decodeLoginBodyBySchema = (body: unknown) => decodeBody(LoginBody, body)

/**
 * decodeBody(LoginBody, body) without Schema for the usual body (every field a string or a finite number within
 * its limits): the same value, in the same key order; anything else is decoded by the Schema, errors included.
 */
export const decodeLoginBody = (body: Record<string, unknown>): Either.Either<LoginBody, string> => {
  const decoded: Record<string, string> = {}
  for (const [key, max, required] of loginFields) {
    const value = body[key]
    if (value === undefined && Object.hasOwn(body, key)) return decodeLoginBodyBySchema(body)
    if (value === undefined) {
      if (key === "gr") decoded.gr = "1"
      else if (required) return decodeLoginBodyBySchema(body)
      continue
    }
    const text =
      typeof value === "string"
        ? value
        : typeof value === "number" && Number.isFinite(value)
          ? String(value)
          : undefined
    const trimmed = text?.trim()
    if (trimmed === undefined || trimmed.length > max || (required && trimmed.length === 0)) {
      return decodeLoginBodyBySchema(body)
    }
    decoded[key] = trimmed
  }
  return Either.right(decoded as unknown as LoginBody)
}

/** POST /w/wo. */
export const LogoutBody = Schema.Struct({ sid: NonEmptyText(200) })

/** POST /agent/ah, scm "vh": is hardware hi of type ht registered to the session's account. */
export const HardwareBody = Schema.Struct({
  scm: Schema.Literal("vh"),
  sid: NonEmptyText(200),
  hi: NonEmptyText(200),
  ht: Text(64)
})

/** Permission given as an integer or a hex/decimal string ("0xffffffff"). */
export const PermissionValue = Schema.Union(Schema.NonNegativeInt, Schema.String).pipe(
  Schema.transformOrFail(Schema.NonNegativeInt, {
    strict: true,
    decode: (value, _, ast) => {
      const n = typeof value === "number" ? value : Number(value.trim())
      return Number.isInteger(n) && n >= 0 && n <= 0xffffffff
        ? ParseResult.succeed(n)
        : ParseResult.fail(new ParseResult.Type(ast, value, "permission must be an integer 0..0xffffffff"))
    },
    encode: (n) => ParseResult.succeed(n)
  })
)

/** POST /w/am and /agent/aam: c create, r regenerate, g look up. Always needs an admin session. */
export const ManagementBody = Schema.Struct({
  scm: Schema.Literal("c", "r", "g"),
  sid: Schema.optional(Text(200)),
  acc: Schema.optional(NonEmptyText(128)),
  pwd: Schema.optional(NonEmptyText(128)),
  prm: Schema.optional(PermissionValue),
  il: Schema.optional(
    Schema.Union(Schema.NonNegativeInt, Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative()))
  )
})
export type ManagementBody = typeof ManagementBody.Type

/** Parses a request body by content type: JSON object or application/x-www-form-urlencoded. */
export const parseBody = (contentType: string, text: string): Either.Either<Record<string, unknown>, string> => {
  const type = contentType.split(";")[0]!.trim().toLowerCase()
  if (type === "application/x-www-form-urlencoded") return Either.right(Object.fromEntries(new URLSearchParams(text)))
  if (type === "application/json" || type === "") {
    if (exceedsJsonDepth(text)) return Either.left(`body nests deeper than ${maxJsonDepth} levels`)
    try {
      const value: unknown = JSON.parse(text)
      return value !== null && typeof value === "object" && !Array.isArray(value)
        ? Either.right(value as Record<string, unknown>)
        : Either.left("body must be a JSON object")
    } catch {
      return Either.left("body is not valid JSON")
    }
  }
  return Either.left("Content-Type must be application/json or application/x-www-form-urlencoded")
}

/** Decodes a body with a schema; the error is one line naming the offending field and its rule, never the value. */
export const decodeBody = <A, I>(schema: Schema.Schema<A, I>, body: unknown): Either.Either<A, string> =>
  Schema.decodeUnknownEither(schema)(body).pipe(Either.mapLeft((error) => describeParseError(error, "body")))

/** The reply body of every API call: {e, em?, ...fields, cm}. */
export type Reply = { readonly e: number; readonly em?: string; readonly cm: string } & Record<string, unknown>

export const failure = (command: string, code: number, message: string): Reply => ({
  e: code,
  em: message,
  cm: command
})
export const success = (command: string, fields: Record<string, unknown> = {}): Reply => ({
  e: ErrorCode.none,
  ...fields,
  cm: command
})

/** The original's permission string, sent verbatim as `per`. */
export const permissionString = "D1G1T3R4V5C6"
