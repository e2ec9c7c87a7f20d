import { Effect, Either, Runtime } from "effect"
import type { TcpConnection, TcpHandler } from "../../layers/Transport/TcpTransport.ts"
import { makeKeyedLimiter } from "../shared/RateLimiter.ts"
import type { BodyCipher } from "./Cipher.ts"
import { decodeFunctionData, decodeRequest } from "./FastDecode.ts"
import { Dangerous, type FunctionName, isFunctionName, Owner } from "./Functions.ts"
import { InternalHttpError } from "./InternalHttp.ts"
import { encodeFrame, FrameDecoder } from "./Frame.ts"
import type { ServiceCalls, ServiceName } from "./ServiceCalls.ts"
import { makeValidatedTokens } from "./ValidatedTokens.ts"
import { encodeReply, Messages, type Reply, reply, shortPrefix, Status } from "./Wire.ts"

export interface GatewayOptions {
  readonly cipher: BodyCipher
  /** How the token server and the managers are asked (over HTTP, or in-process when co-located). */
  readonly calls: ServiceCalls
  readonly dangerousFunctions: boolean
  /** Credential checks (login, login_unique, bind_account) per client address; none when absent. */
  readonly loginRate?: { readonly ratePerSecond: number; readonly burst: number } | undefined
  /** How long a token the token server accepted is trusted without asking again (see ValidatedTokens); 0 = always ask. */
  readonly tokenCacheMillis?: number | undefined
}

/** What a token can look like: it travels in an HTTP header, so anything else is refused here (11), not sent (13). */
const tokenShaped = /^[\x21-\x7e]{1,4096}$/

/** At most this many accepted tokens are remembered (the oldest make room). */
const MAX_REMEMBERED_TOKENS = 50_000

/** Functions that check a credential: rate-limited per client address against guessing. */
const credentialFunctions: ReadonlySet<FunctionName> = new Set(["login", "login_unique", "bind_account"])

const invalid = reply(Status.invalidFormat, Messages.invalidFormat)
const unavailable = reply(Status.unavailable, Messages.unavailable)
const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

/** The answer of an internal service as a Reply (anything else from it means it is unavailable). */
const asReply = (body: unknown): Reply => {
  const b = body as Partial<Reply> | undefined
  return b && typeof b.status === "number" && typeof b.message === "string"
    ? reply(b.status, b.message, b.data && typeof b.data === "object" ? (b.data as Record<string, unknown>) : {})
    : unavailable
}

/**
 * The "lukseun" gateway: frames in, frames out, one connection at a time in order (pipelined
 * frames are answered in sequence). Tokens are checked with the token server; every function is
 * forwarded to the service that owns it through `calls` (internal HTTP, or in-process when co-located).
 */
export const makeGateway = (options: GatewayOptions) =>
  Effect.gen(function* () {
    const { calls } = options
    const runtime = yield* Effect.runtime<never>()
    const clock = yield* Effect.clock
    const limiter = options.loginRate
      ? yield* makeKeyedLimiter("aliya-login", { ...options.loginRate, strikes: 20, blockFor: "60 seconds" })
      : undefined
    const logWarning = (message: string) => Runtime.runFork(runtime)(Effect.logWarning(message))
    const post = async (service: ServiceName, name: FunctionName, body: object) =>
      asReply((await calls.post(service, name, body)).body)

    const accepted = makeValidatedTokens({
      ttlMillis: options.tokenCacheMillis ?? 0,
      maxEntries: MAX_REMEMBERED_TOKENS
    })

    // A co-located token server tells this cache of every token it issues, so a login by any route revokes at once.
    let told = false

    /** unique_id of a valid token; undefined when the token server rejects it. */
    const validate = async (token: string): Promise<string | undefined> => {
      const known = accepted.lookup(token, clock.unsafeCurrentTimeMillis())
      if (known !== undefined) return known
      // Subscribed before anything is remembered: no token can be issued unseen after its entry exists.
      if (!told) told = calls.onIssued(accepted.issued)
      const r = await calls.validate(token)
      const uid = (r.body as { unique_id?: unknown }).unique_id
      if (r.status === 200 && typeof uid === "string") {
        accepted.remember(token, uid, clock.unsafeCurrentTimeMillis())
        return uid
      }
      if (r.status >= 500) throw new InternalHttpError({ url: "tokens/validate", message: `HTTP ${r.status}` })
      return undefined
    }

    const call = async (name: FunctionName, data: Record<string, unknown>, decoded: unknown): Promise<Reply> => {
      const owner = Owner[name]
      if (owner === "tokens") {
        const answered = await post("tokens", name, decoded as object)
        // A login revokes the player's older tokens: forget them here at once.
        if (typeof answered.data.token === "string") accepted.issued(answered.data.token)
        return answered
      }
      const token = data.token
      if (typeof token !== "string") return invalid
      const uniqueId = tokenShaped.test(token) ? await validate(token) : undefined
      if (uniqueId === undefined) {
        return reply(Status.authorizationRequired, Messages.authorizationRequired, {
          bad_token: shortPrefix(token, 64)
        })
      }
      return post(owner, name, { ...(decoded as object), unique_id: uniqueId })
    }

    /** One request → its reply; any failure to reach a service is status 13 (logged), never a crash. */
    const dispatch = async (name: FunctionName, data: Record<string, unknown>): Promise<Reply> => {
      const decoded = decodeFunctionData(name, data)
      if (Either.isLeft(decoded)) return invalid
      try {
        return await call(name, data, decoded.right)
      } catch (error) {
        const e = error as Partial<InternalHttpError>
        logWarning(`aliya gateway: ${e.url ?? name}: ${e.message ?? String(error)}`)
        return unavailable
      }
    }

    /** One frame body → the reply (before encryption). */
    const answer = async (body: Uint8Array, remoteAddress = ""): Promise<Reply & { random: string | number }> => {
      const plaintext = options.cipher.open(body)
      let parsed: unknown
      try {
        parsed = plaintext && JSON.parse(decoder.decode(plaintext))
      } catch {
        parsed = undefined
      }
      const request = decodeRequest(parsed)
      if (Either.isLeft(request)) return { ...invalid, random: "" }
      const { function: name, random = "", data } = request.right
      const withRandom = (r: Reply) => ({ status: r.status, message: r.message, random, data: r.data })
      if (!isFunctionName(name) || (!options.dangerousFunctions && Dangerous.has(name))) return withRandom(invalid)
      if (limiter && credentialFunctions.has(name)) {
        const now = clock.unsafeCurrentTimeMillis()
        if (!limiter.admit(remoteAddress, now)) {
          return withRandom(
            reply(Status.tooManyAttempts, Messages.tooManyAttempts, {
              retry_after: limiter.retryAfter(remoteAddress, now)
            })
          )
        }
      }
      return withRandom(await dispatch(name, data))
    }

    /** Reply → frame; a reply that cannot fit 9999 bytes becomes status 12. */
    const frameOf = (r: Reply & { random: string | number }): Uint8Array => {
      const frame = encodeFrame(options.cipher.seal(encoder.encode(encodeReply(r))))
      if (frame) return frame
      return encodeFrame(
        options.cipher.seal(
          encoder.encode(encodeReply({ ...reply(Status.replyTooLarge, Messages.replyTooLarge), random: r.random }))
        )
      )!
    }

    const open = (connection: TcpConnection): Effect.Effect<TcpHandler> =>
      Effect.sync(() => {
        const frames = new FrameDecoder()
        return {
          onData: (bytes) => {
            const decoded = frames.push(bytes)
            if (decoded.frames.length === 0) {
              if (decoded.badHeader) connection.close()
              return
            }
            // Frames of one chunk are answered in order; the transport holds later chunks until this settles.
            return (async () => {
              for (const frame of decoded.frames)
                connection.write(frameOf(await answer(frame, connection.remoteAddress)))
              if (decoded.badHeader) connection.close()
            })()
          }
        }
      })

    return { open, answer, frameOf }
  })
