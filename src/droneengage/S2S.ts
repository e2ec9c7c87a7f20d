import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from "node:crypto"
import { Arbitrary, Either, Schema } from "effect"
import { exceedsJsonDepth, maxJsonDepth } from "../shared/JsonDepth.ts"
import { describeParseError } from "./SchemaErrors.ts"
import { ActorType } from "./Wire.ts"

/**
 * Frames of the authenticator ↔ relay link: JSON text {c, d}, plus the challenge handshake
 * {"s2s_auth": "challenge" | "response" | "ok"} that runs before anything else.
 */

const UnitDetail = Schema.Struct({ unitName: Schema.String, actorType: ActorType })

const isString = (input: unknown): input is string => typeof input === "string"
const actorTypes: ReadonlyArray<unknown> = ActorType.literals
const isActorType = (input: unknown) => actorTypes.includes(input)
const isUnitDetail = (input: unknown): input is typeof UnitDetail.Type =>
  typeof input === "object" &&
  input !== null &&
  isString((input as { unitName?: unknown }).unitName) &&
  isActorType((input as { actorType?: unknown }).actorType)

/**
 * Plain JSON (no transformation) checked by one guard pass, for the big parts of INFO.
 * Schema.Array decodes into [index, value] pairs and sorts them by index before returning
 * (effect's ParseResult): for an INFO listing thousands of units that sort, and the per-element
 * parser calls, dominated the authenticator's profile. Values pass through as they are (extra
 * fields of a unit are not stripped).
 */
const checked = <A>(is: (input: unknown) => input is A, arbitrary: Schema.Schema<A>, description: string) =>
  Schema.declare(is, { description, arbitrary: () => () => Arbitrary.make(arbitrary) })

const everyIn = <A>(input: unknown, is: (value: unknown) => value is A): input is ReadonlyArray<A> =>
  Array.isArray(input) && input.every(is)

const AccountIds = checked((input) => everyIn(input, isString), Schema.Array(Schema.String), "an array of account ids")

const AccountDetails = checked(
  (input): input is { readonly [account: string]: ReadonlyArray<typeof UnitDetail.Type> } => {
    if (typeof input !== "object" || input === null || Array.isArray(input)) return false
    for (const units of Object.values(input)) if (!everyIn(units, isUnitDetail)) return false
    return true
  },
  Schema.Record({ key: Schema.String, value: Schema.Array(UnitDetail) }),
  "{account id: [{unitName, actorType}]}"
)

/** c:"a" INFO relay→auth: what the relay hosts; sent on connect and after joins/leaves. */
export const InfoData = Schema.Struct({
  isOnline: Schema.Boolean,
  version: Schema.String,
  serverId: Schema.String,
  public_host: Schema.String,
  serverPort: Schema.Int,
  accounts: AccountIds,
  accountDetails: AccountDetails
})
export type InfoData = typeof InfoData.Type

/** c:"b" LOGIN auth→relay: reserve a login key for this account/group/actor. */
export const LoginRequestData = Schema.Struct({
  r: Schema.String,
  a: Schema.String,
  b: Schema.String,
  at: ActorType,
  il: Schema.NonNegativeInt,
  prm: Schema.NonNegativeInt,
  /** Ours: the account's name, which clients write as `ai` in task messages (the original never sends it). */
  an: Schema.optional(Schema.String)
})
export type LoginRequestData = typeof LoginRequestData.Type

/** c:"b" LOGIN reply relay→auth. e 0 carries host g, port h and the key f. */
export const LoginReplyData = Schema.Struct({
  r: Schema.String,
  e: Schema.Int,
  g: Schema.optional(Schema.String),
  h: Schema.optional(Schema.Int),
  f: Schema.optional(Schema.String)
})
export type LoginReplyData = typeof LoginReplyData.Type

/** c:"c" LOGOUT relay→auth: unit s of account a, admitted by login request r, has left. */
export const LogoutData = Schema.Struct({ s: Schema.String, a: Schema.String, r: Schema.String })
export type LogoutData = typeof LogoutData.Type

export const Info = Schema.Struct({ c: Schema.Literal("a"), d: InfoData })
export const Login = Schema.Struct({ c: Schema.Literal("b"), d: LoginRequestData })
export const LoginReply = Schema.Struct({ c: Schema.Literal("b"), d: LoginReplyData })
export const Logout = Schema.Struct({ c: Schema.Literal("c"), d: LogoutData })

export const Challenge = Schema.Struct({ s2s_auth: Schema.Literal("challenge"), nonce: Schema.String })
export const ChallengeResponse = Schema.Struct({
  s2s_auth: Schema.Literal("response"),
  id: Schema.String,
  sig: Schema.String
})
export const Accepted = Schema.Struct({ s2s_auth: Schema.Literal("ok") })

/** Everything a relay may send to the authenticator. */
export const RelayToAuth = Schema.parseJson(Schema.Union(ChallengeResponse, Info, LoginReply, Logout))
export type RelayToAuth = typeof RelayToAuth.Type

/** Everything the authenticator may send to a relay. */
export const AuthToRelay = Schema.parseJson(Schema.Union(Challenge, Accepted, Login))
export type AuthToRelay = typeof AuthToRelay.Type

export const encodeRelayToAuth = Schema.encodeSync(RelayToAuth)
export const encodeAuthToRelay = Schema.encodeSync(AuthToRelay)
/** Decodes frame text: depth-checked before parsing; the error names the field and rule only. */
const boundedDecoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(schema)
  return (text: string): Either.Either<A, string> =>
    exceedsJsonDepth(text)
      ? Either.left(`frame nests deeper than ${maxJsonDepth} levels`)
      : Either.mapLeft(decode(text), (error) => describeParseError(error, "frame"))
}

export const decodeRelayToAuth = boundedDecoder(RelayToAuth)
export const decodeAuthToRelay = boundedDecoder(AuthToRelay)

const encoder = new TextEncoder()

/** HMAC-SHA256(secret, "switchboard-s2s:" + serverId + ":" + nonce), base64: proves the shared secret. */
export const signChallenge = async (secret: string, serverId: string, nonce: string): Promise<string> => {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign"
  ])
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`switchboard-s2s:${serverId}:${nonce}`))
  return Buffer.from(mac).toString("base64")
}

/** Constant-time check of a challenge signature. */
export const verifyChallenge = async (
  secret: string,
  serverId: string,
  nonce: string,
  signature: string
): Promise<boolean> => {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "verify"
  ])
  const given = Buffer.from(signature, "base64")
  // subtle.verify compares in constant time.
  return crypto.subtle.verify("HMAC", key, given, encoder.encode(`switchboard-s2s:${serverId}:${nonce}`))
}

/** A PEM public key (for Ed25519 challenge checks); throws on a malformed key. */
export const publicKeyFromPem = (pem: string): KeyObject => createPublicKey(pem)
export const privateKeyFromPem = (pem: string): KeyObject => createPrivateKey(pem)

/** The newer originals' challenge proof: base64 Ed25519 signature of the nonce's UTF-8 bytes. */
export const signChallengeEd25519 = (privateKey: KeyObject, nonce: string): string =>
  sign(null, Buffer.from(nonce), privateKey).toString("base64")

export const verifyChallengeEd25519 = (publicKey: KeyObject, nonce: string, signature: string): boolean => {
  try {
    return verify(null, Buffer.from(nonce), publicKey, Buffer.from(signature, "base64"))
  } catch {
    return false
  }
}

/** 32 random bytes as 64 hex chars, as the original's challenge nonce. */
export const newNonce = () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex")
