import { Data } from "effect"

/**
 * Error categories of the seed document. Connection errors (network, TLS, limits) are not replies:
 * they are HTTP statuses at upgrade and WebSocket close codes (docs/hydrogen.md).
 */
export type ErrorCategory = "protocol" | "authentication" | "application"

export interface ErrorIssue {
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
}

/** Machine-readable codes carried in `error.code`; every one is listed in docs/hydrogen.md. */
export const ErrorCodes = {
  invalidJson: "invalid_json",
  invalidEnvelope: "invalid_envelope",
  unknownType: "unknown_type",
  binaryNotSupported: "binary_not_supported",
  messageTooLarge: "message_too_large",
  rateLimited: "rate_limited",
  unknownChannel: "unknown_channel",
  unknownAction: "unknown_action",
  invalidData: "invalid_data",
  invalidToken: "invalid_token",
  tokenExpired: "token_expired",
  signatureNotSupported: "signature_not_supported",
  forbidden: "forbidden",
  sessionUnknown: "session_unknown",
  limitExceeded: "limit_exceeded",
  handlerFailed: "handler_failed",
  storageUnavailable: "storage_unavailable"
} as const

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

export class HydrogenError extends Data.TaggedError("HydrogenError")<{
  readonly category: ErrorCategory
  readonly code: ErrorCode
  readonly message: string
  readonly issues?: ReadonlyArray<ErrorIssue>
  /** Seconds before the client may try again (HTTP Retry-After); not part of the body. */
  readonly retryAfter?: number
}> {}

export const protocolError = (code: ErrorCode, message: string, issues?: ReadonlyArray<ErrorIssue>) =>
  new HydrogenError(issues ? { category: "protocol", code, message, issues } : { category: "protocol", code, message })

export const authenticationError = (code: ErrorCode, message: string) =>
  new HydrogenError({ category: "authentication", code, message })

export const applicationError = (code: ErrorCode, message: string, issues?: ReadonlyArray<ErrorIssue>) =>
  new HydrogenError(
    issues ? { category: "application", code, message, issues } : { category: "application", code, message }
  )

/** The `error` object of a response, as sent on the wire. */
export const errorBody = (error: HydrogenError) =>
  error.issues
    ? { category: error.category, code: error.code, message: error.message, issues: error.issues }
    : { category: error.category, code: error.code, message: error.message }
