import { Schema } from "effect"

/** Gateway-level status codes (0..9 belong to each function). */
export const Status = {
  ok: 0,
  invalidFormat: 10,
  authorizationRequired: 11,
  replyTooLarge: 12,
  unavailable: 13,
  tooManyAttempts: 14
} as const

export const Messages = {
  invalidFormat: "Invalid message format",
  authorizationRequired: "Authorization required",
  replyTooLarge: "Reply too large for one frame",
  unavailable: "Service unavailable, try again",
  tooManyAttempts: "Too many attempts, try again later"
} as const

/** What every reply carries; `data` is function-specific. */
export interface Reply {
  readonly status: number
  readonly message: string
  readonly random?: string | number
  readonly data: Record<string, unknown>
}

/** The request envelope; `data` is checked per function afterwards. */
export const Request = Schema.Struct({
  function: Schema.String.pipe(Schema.maxLength(64)),
  random: Schema.optional(Schema.Union(Schema.String.pipe(Schema.maxLength(64)), Schema.Number)),
  data: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), { default: () => ({}) })
})
export type Request = typeof Request.Type

/**
 * JSON that Python's eval() also reads: the original client evals replies, so true/false become
 * 1/0 and null becomes "" (JSON has no other token Python lacks).
 */
export const encodeReply = (reply: Reply): string =>
  (evalSafeData.has(reply.data) ? hasPythonlessField(reply) : hasPythonlessValue(reply))
    ? JSON.stringify(reply, pythonSafe)
    : JSON.stringify(reply)

/** Data objects their builder vouches for: nothing but strings, finite numbers and arrays or objects of them. */
const evalSafeData = new WeakSet<object>()

/**
 * Marks `data` as holding only strings, finite numbers and arrays/objects of them (a hot reply's
 * rows, built so), so encodeReply skips walking it; it must not change afterwards.
 */
export const vouchedEvalSafe = <A extends Record<string, unknown>>(data: A): A => {
  evalSafeData.add(data)
  return data
}

/** Whether the reply's own fields other than data hold true, false, null or undefined. */
const hasPythonlessField = (reply: Reply): boolean => {
  for (const key in reply)
    if (key !== "data" && hasPythonlessValue((reply as unknown as Record<string, unknown>)[key])) return true
  return false
}

const pythonSafe = (_key: string, value: unknown) =>
  value === true ? 1 : value === false ? 0 : value === null || value === undefined ? "" : value

/** Whether a value holds true, false, null or undefined anywhere (most replies do not: the replacer is slow). */
const hasPythonlessValue = (value: unknown): boolean => {
  if (value === null || value === undefined || typeof value === "boolean") return true
  if (typeof value !== "object") return false
  if (Array.isArray(value)) {
    for (const item of value) if (hasPythonlessValue(item)) return true
    return false
  }
  for (const key in value) if (hasPythonlessValue((value as Record<string, unknown>)[key])) return true
  return false
}

export const reply = (status: number, message: string, data: Record<string, unknown> = {}): Reply => ({
  status,
  message,
  data
})

/** A short, printable prefix of untrusted input for replies and logs. */
export const shortPrefix = (value: unknown, max = 128): string => {
  const text = typeof value === "string" ? value : (JSON.stringify(value) ?? "")
  return text.length > max ? `${text.slice(0, max)}…` : text
}
