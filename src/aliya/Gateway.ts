import { Effect, Either, Redacted, Schema } from "effect"
import type { TcpConnection, TcpHandler } from "../../layers/Transport/TcpTransport.ts"
import type { BodyCipher } from "./Cipher.ts"
import { decodeData, Dangerous, type FunctionName, isFunctionName, type ManagerName, Owner } from "./Functions.ts"
import { InternalHttp, type InternalHttpError } from "./InternalHttp.ts"
import { encodeFrame, FrameDecoder } from "./Frame.ts"
import { SERVICE_HEADER } from "./ServiceHttp.ts"
import { encodeReply, Messages, type Reply, reply, Request, shortPrefix, Status } from "./Wire.ts"

export interface GatewayOptions {
  readonly cipher: BodyCipher
  readonly tokenServerUrl: string
  readonly managerUrls: Record<ManagerName, string>
  readonly serviceToken: Redacted.Redacted<string>
  readonly dangerousFunctions: boolean
}

const decodeRequest = Schema.decodeUnknownEither(Request)
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
 * forwarded to the service that owns it over internal HTTP with the service token.
 */
export const makeGateway = (options: GatewayOptions) =>
  Effect.gen(function* () {
    const http = yield* InternalHttp
    const serviceHeaders = { [SERVICE_HEADER]: Redacted.value(options.serviceToken), "content-type": "application/json" }

    const post = (url: string, body: unknown) =>
      http.request(url, { method: "POST", headers: serviceHeaders, body: JSON.stringify(body) }).pipe(Effect.map((r) => asReply(r.body)))

    /** unique_id of a valid token; undefined when the token server rejects it. */
    const validate = (token: string): Effect.Effect<string | undefined, InternalHttpError> =>
      http.request(`${options.tokenServerUrl}/validate`, { method: "GET", headers: { authorization: token } }).pipe(
        Effect.flatMap((r) => {
          const uid = (r.body as { unique_id?: unknown }).unique_id
          if (r.status === 200 && typeof uid === "string") return Effect.succeed(uid)
          return r.status >= 500 ? Effect.fail({ _tag: "InternalHttpError", url: "/validate", message: `HTTP ${r.status}` } as InternalHttpError) : Effect.succeed(undefined)
        })
      )

    const dispatch = (name: FunctionName, data: Record<string, unknown>): Effect.Effect<Reply> => {
      const decoded = decodeData[name](data)
      if (Either.isLeft(decoded)) return Effect.succeed(invalid)
      const owner = Owner[name]
      const work: Effect.Effect<Reply, InternalHttpError> =
        owner === "tokens"
          ? post(`${options.tokenServerUrl}/${name}`, decoded.right)
          : Effect.gen(function* () {
              const token = data.token
              if (typeof token !== "string") return invalid
              const uniqueId = yield* validate(token)
              if (uniqueId === undefined) {
                return reply(Status.authorizationRequired, Messages.authorizationRequired, { bad_token: shortPrefix(token, 512) })
              }
              return yield* post(`${options.managerUrls[owner]}/${name}`, { ...decoded.right, unique_id: uniqueId })
            })
      return work.pipe(
        Effect.catchAll((error) => Effect.logWarning(`aliya gateway: ${error.url}: ${error.message}`).pipe(Effect.as(unavailable)))
      )
    }

    /** One frame body → the reply (before encryption). */
    const answer = (body: Uint8Array): Effect.Effect<Reply & { random: string | number }> => {
      const plaintext = options.cipher.open(body)
      let parsed: unknown
      try {
        parsed = plaintext && JSON.parse(decoder.decode(plaintext))
      } catch {
        parsed = undefined
      }
      const request = decodeRequest(parsed)
      if (Either.isLeft(request)) return Effect.succeed({ ...invalid, random: "" })
      const { function: name, random = "", data } = request.right
      const withRandom = (r: Reply) => ({ status: r.status, message: r.message, random, data: r.data })
      if (!isFunctionName(name) || (!options.dangerousFunctions && Dangerous.has(name))) return Effect.succeed(withRandom(invalid))
      return Effect.map(dispatch(name, data), withRandom)
    }

    /** Reply → frame; a reply that cannot fit 9999 bytes becomes status 12. */
    const frameOf = (r: Reply & { random: string | number }): Uint8Array => {
      const frame = encodeFrame(options.cipher.seal(encoder.encode(encodeReply(r))))
      if (frame) return frame
      return encodeFrame(options.cipher.seal(encoder.encode(encodeReply({ ...reply(Status.replyTooLarge, Messages.replyTooLarge), random: r.random }))))!
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
            return Effect.forEach(decoded.frames, (frame) => Effect.map(answer(frame), (r) => void connection.write(frameOf(r))), {
              discard: true
            }).pipe(Effect.ensuring(Effect.sync(() => decoded.badHeader && connection.close())))
          }
        }
      })

    return { open, answer, frameOf }
  })
