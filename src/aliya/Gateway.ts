import { Effect, Either, Runtime } from "effect"
import type { TcpConnection, TcpHandler } from "../../layers/Transport/TcpTransport.ts"
import { makeKeyedLimiter } from "../shared/RateLimiter.ts"
import type { BodyCipher } from "./Cipher.ts"
import { decodeFunctionData, decodeRequest } from "./FastDecode.ts"
import { Dangerous, type FunctionName, isFunctionName, Owner } from "./Functions.ts"
import { InternalHttpError } from "./InternalHttp.ts"
import { type DecodeResult, encodeFrame, FrameDecoder } from "./Frame.ts"
import { type ServiceCalls, type ServiceName, type Soon, then } from "./ServiceCalls.ts"
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
    const post = (service: ServiceName, name: FunctionName, body: object): Soon<Reply> =>
      then(calls.post(service, name, body), (r) => asReply(r.body))

    const accepted = makeValidatedTokens({
      ttlMillis: options.tokenCacheMillis ?? 0,
      maxEntries: MAX_REMEMBERED_TOKENS
    })

    // A co-located token server tells this cache of every token it issues, so a login by any route revokes at once.
    let told = false

    /** The token server's verdict on a token the cache does not hold: its unique_id, or undefined. */
    const askTokenServer = async (token: string): Promise<string | undefined> => {
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

    /** unique_id of a valid token (now when the cache holds it); undefined when the token server rejects it. */
    const validate = (token: string): Soon<string | undefined> =>
      accepted.lookup(token, clock.unsafeCurrentTimeMillis()) ?? askTokenServer(token)

    const needsToken = (token: string) =>
      reply(Status.authorizationRequired, Messages.authorizationRequired, { bad_token: shortPrefix(token, 64) })

    const call = (name: FunctionName, data: Record<string, unknown>, decoded: unknown): Soon<Reply> => {
      const owner = Owner[name]
      if (owner === "tokens") {
        return then(post("tokens", name, decoded as object), (answered) => {
          // A login revokes the player's older tokens: forget them here at once.
          if (typeof answered.data.token === "string") accepted.issued(answered.data.token)
          return answered
        })
      }
      const token = data.token
      if (typeof token !== "string") return invalid
      if (!tokenShaped.test(token)) return needsToken(token)
      return then(validate(token), (uniqueId) =>
        uniqueId === undefined ? needsToken(token) : post(owner, name, { ...(decoded as object), unique_id: uniqueId })
      )
    }

    const failed = (name: FunctionName) => (error: unknown) => {
      const e = error as Partial<InternalHttpError>
      logWarning(`aliya gateway: ${e.url ?? name}: ${e.message ?? String(error)}`)
      return unavailable
    }

    /** One request → its reply; any failure to reach a service is status 13 (logged), never a crash. */
    const dispatch = (name: FunctionName, data: Record<string, unknown>): Soon<Reply> => {
      const decoded = decodeFunctionData(name, data)
      if (Either.isLeft(decoded)) return invalid
      try {
        const answered = call(name, data, decoded.right)
        return answered instanceof Promise ? answered.catch(failed(name)) : answered
      } catch (error) {
        return failed(name)(error)
      }
    }

    /** One frame body → the reply (before encryption): now when every step answers now (a cached token, a synchronous route). */
    const answer = (body: Uint8Array, remoteAddress = ""): Soon<Reply & { random: string | number }> => {
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
      return then(dispatch(name, data), withRandom)
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
        /**
         * Answers the frames of one chunk from `index` on, in order: a Promise only when an answer
         * has to wait (the transport holds later chunks until it settles).
         */
        const answerFrom = (decoded: DecodeResult, index: number): Promise<void> | undefined => {
          for (let i = index; i < decoded.frames.length; i++) {
            const answered = answer(decoded.frames[i]!, connection.remoteAddress)
            if (answered instanceof Promise)
              return answered.then((r) => {
                connection.write(frameOf(r))
                return answerFrom(decoded, i + 1)
              })
            connection.write(frameOf(answered))
          }
          if (decoded.badHeader) connection.close()
          return undefined
        }
        return {
          onData: (bytes) => {
            const decoded = frames.push(bytes)
            if (decoded.frames.length === 0) {
              if (decoded.badHeader) connection.close()
              return
            }
            try {
              return answerFrom(decoded, 0)
            } catch (error) {
              // As a rejected answer: the transport goes on with the connection's next chunk.
              return Promise.reject(error)
            }
          }
        }
      })

    return { open, answer, frameOf }
  })
