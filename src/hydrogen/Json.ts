import { Either } from "effect"
import { ErrorCodes, type HydrogenError, protocolError } from "./Errors.ts"

/** Deepest nesting of objects and arrays accepted in any Hydrogen JSON input (WebSocket messages, HTTP bodies). */
export const maxJsonDepth = 64

/** Whether `text` nests objects or arrays deeper than `max`: one pass that skips strings, before any parse. */
export const nestsDeeperThan = (text: string, max: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92) i++
      else if (c === 34) inString = false
    } else if (c === 34) inString = true
    else if (c === 123 || c === 91) {
      if (++depth > max) return true
    } else if (c === 125 || c === 93) depth--
  }
  return false
}

/**
 * Text → JSON value with bounded depth. The errors never quote the input (the parser's own
 * message names the offending token, which can be as long as the input).
 */
export const parseJson = (text: string): Either.Either<unknown, HydrogenError> => {
  if (nestsDeeperThan(text, maxJsonDepth)) {
    return Either.left(protocolError(ErrorCodes.invalidJson, `JSON is nested deeper than ${maxJsonDepth} levels`))
  }
  try {
    return Either.right(JSON.parse(text))
  } catch {
    return Either.left(protocolError(ErrorCodes.invalidJson, "not valid JSON"))
  }
}
