import { Either, Schema } from "effect"
import { ActorType } from "./Wire.ts"
import {
  type AuthToRelay,
  decodeAuthToRelay,
  decodeRelayToAuth,
  encodeAuthToRelay,
  encodeRelayToAuth,
  type LoginReplyData,
  LoginRequestData,
  type LogoutData,
  type RelayToAuth
} from "./S2S.ts"

/**
 * Hand-written codecs for the frames of the S2S link that every login pays for (LOGIN, its reply, LOGOUT).
 * S2S.ts's Schemas are the reference: each function gives what they give (same bytes, same decoded value) and
 * hands anything it is not sure of to them; test/droneengage/S2SFast.test.ts checks both agree on any input.
 */

const actorTypes: ReadonlyArray<unknown> = ActorType.literals
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0
const isString = (value: unknown): value is string => typeof value === "string"
const quoted = JSON.stringify

const isPlainLogin = (d: LoginRequestData) => isCount(d.il) && isCount(d.prm) && actorTypes.includes(d.at)

/** A plain LOGIN's data as JSON, in the Schema's key order. */
const printLoginRequest = (d: LoginRequestData): string => {
  const name = d.an === undefined ? "" : `,"an":${quoted(d.an)}`
  return `{"r":${quoted(d.r)},"a":${quoted(d.a)},"b":${quoted(d.b)},"at":${quoted(d.at)},"il":${d.il},"prm":${d.prm}${name}}`
}

/** LOGIN auth→relay, as encodeAuthToRelay prints it. */
export const encodeLogin = (d: LoginRequestData): string =>
  isPlainLogin(d) ? `{"c":"b","d":${printLoginRequest(d)}}` : encodeAuthToRelay({ c: "b", d })

const encodeLoginRequestBySchema = Schema.encodeSync(Schema.parseJson(LoginRequestData))

/** A LOGIN's data as Schema.parseJson(LoginRequestData) encodes it (how a relay stores a login key's grant). */
export const encodeLoginRequest = (d: LoginRequestData): string =>
  isPlainLogin(d) ? printLoginRequest(d) : encodeLoginRequestBySchema(d)

/** LOGIN reply relay→auth, as encodeRelayToAuth prints it. */
export const encodeLoginReply = (d: LoginReplyData): string => {
  if (!Number.isSafeInteger(d.e) || (d.h !== undefined && !Number.isSafeInteger(d.h))) {
    return encodeRelayToAuth({ c: "b", d })
  }
  const host = d.g === undefined ? "" : `,"g":${quoted(d.g)}`
  const port = d.h === undefined ? "" : `,"h":${d.h}`
  const key = d.f === undefined ? "" : `,"f":${quoted(d.f)}`
  return `{"c":"b","d":{"r":${quoted(d.r)},"e":${d.e}${host}${port}${key}}}`
}

/** LOGOUT relay→auth, as encodeRelayToAuth prints it. */
export const encodeLogout = (d: LogoutData): string =>
  `{"c":"c","d":{"s":${quoted(d.s)},"a":${quoted(d.a)},"r":${quoted(d.r)}}}`

/** The `d` object of a frame whose `c` is `command`; undefined for anything else (or unparsable). */
const bodyOf = (text: string, command: string): Record<string, unknown> | undefined => {
  // Only frames that open like ours are parsed here: the rest (and deep nesting) go to the guarded Schema path.
  if (!text.startsWith(`{"c":"${command}","d":{`)) return undefined
  let frame: unknown
  try {
    frame = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof frame !== "object" || frame === null || (frame as { c?: unknown }).c !== command) return undefined
  const d = (frame as { d?: unknown }).d
  return typeof d === "object" && d !== null && !Array.isArray(d) ? (d as Record<string, unknown>) : undefined
}

/** LOGIN on the relay: the value decodeAuthToRelay gives, without Schema for a plain LOGIN. */
export const decodeAuthToRelayFast = (text: string): Either.Either<AuthToRelay, string> => {
  const d = bodyOf(text, "b")
  if (
    d === undefined ||
    !isString(d.r) ||
    !isString(d.a) ||
    !isString(d.b) ||
    !actorTypes.includes(d.at) ||
    !isCount(d.il) ||
    !isCount(d.prm) ||
    (d.an !== undefined && !isString(d.an))
  ) {
    return decodeAuthToRelay(text)
  }
  const request = { r: d.r, a: d.a, b: d.b, at: d.at as ActorType, il: d.il, prm: d.prm }
  return Either.right({ c: "b" as const, d: d.an === undefined ? request : { ...request, an: d.an } })
}

/** LOGIN replies and LOGOUTs on the authenticator: the value decodeRelayToAuth gives, without Schema for those two. */
export const decodeRelayToAuthFast = (text: string): Either.Either<RelayToAuth, string> => {
  const logout = bodyOf(text, "c")
  if (logout !== undefined && isString(logout.s) && isString(logout.a) && isString(logout.r)) {
    return Either.right({ c: "c" as const, d: { s: logout.s, a: logout.a, r: logout.r } })
  }
  const reply = logout === undefined ? bodyOf(text, "b") : undefined
  if (
    reply === undefined ||
    !isString(reply.r) ||
    !Number.isSafeInteger(reply.e) ||
    (reply.g !== undefined && !isString(reply.g)) ||
    (reply.h !== undefined && !Number.isSafeInteger(reply.h)) ||
    (reply.f !== undefined && !isString(reply.f))
  ) {
    return decodeRelayToAuth(text)
  }
  const d: { r: string; e: number; g?: string; h?: number; f?: string } = { r: reply.r, e: reply.e as number }
  if (reply.g !== undefined) d.g = reply.g
  if (reply.h !== undefined) d.h = reply.h as number
  if (reply.f !== undefined) d.f = reply.f
  return Either.right({ c: "b" as const, d })
}
