import { Data, Deferred, Effect, Exit, Queue, type Scope } from "effect"
import type { BodyCipher } from "./Cipher.ts"
import { encodeFrame, FrameDecoder } from "./Frame.ts"

/**
 * A client of the Aliya gateway (what the tests and the bench use): builds frames the way the
 * original client does, and reads replies back frame by frame (pipelining works).
 */

export class ClientError extends Data.TaggedError("ClientError")<{ readonly message: string }> {}

/** Bytes to and from a server: a real socket or the in-memory double. */
export interface BytePipe {
  readonly write: (bytes: Uint8Array) => Effect.Effect<void>
  readonly read: Effect.Effect<Uint8Array, unknown>
  readonly close: Effect.Effect<void>
}

export interface AliyaReply {
  readonly status: number
  readonly message: string
  readonly random?: string | number
  readonly data: Record<string, unknown>
}

const encoder = new TextEncoder()

/** The frame carrying `text` (a JSON request) under `cipher`. */
export const requestFrame = (cipher: BodyCipher, text: string) => {
  const frame = encodeFrame(cipher.seal(encoder.encode(text)))
  if (!frame) throw new Error("request too large for one frame")
  return frame
}

export const makeClient = (pipe: BytePipe, cipher: BodyCipher) => {
  const decoder = new FrameDecoder()
  const ready: Array<Uint8Array> = []
  let random = 0

  /** The next reply frame's decrypted text. */
  const nextText: Effect.Effect<string, ClientError> = Effect.gen(function* () {
    while (ready.length === 0) {
      const chunk = yield* pipe.read.pipe(Effect.mapError(() => new ClientError({ message: "connection closed" })))
      const { frames, badHeader } = decoder.push(chunk)
      if (badHeader) return yield* new ClientError({ message: "bad reply header" })
      ready.push(...frames)
    }
    const plaintext = cipher.open(ready.shift()!)
    if (!plaintext) return yield* new ClientError({ message: "reply cannot be decrypted" })
    return new TextDecoder().decode(plaintext)
  })

  const nextReply = Effect.map(nextText, (text) => JSON.parse(text) as AliyaReply)

  const sendText = (text: string) => pipe.write(requestFrame(cipher, text))

  /** Sends one request (without waiting); returns the random it carries. */
  const send = (fn: string, data: Record<string, unknown> = {}) => {
    const tag = String(++random)
    return Effect.as(sendText(JSON.stringify({ function: fn, random: tag, data })), tag)
  }

  const call = (fn: string, data: Record<string, unknown> = {}) => Effect.zipRight(send(fn, data), nextReply)

  return { send, sendText, call, nextReply, nextText, write: pipe.write, read: pipe.read, close: pipe.close }
}
export type AliyaClient = ReturnType<typeof makeClient>

/** A real TCP connection (Bun.connect) as a BytePipe, closed with the Scope. */
export const tcpPipe = (host: string, port: number): Effect.Effect<BytePipe, ClientError, Scope.Scope> =>
  Effect.gen(function* () {
    const chunks = yield* Queue.unbounded<Uint8Array>()
    const closed = yield* Deferred.make<void>()
    // Bytes the socket has not taken yet, written on drain, in order.
    let pending: Uint8Array = new Uint8Array(0)
    const flush = (s: { write: (b: Uint8Array) => number }) => {
      if (pending.byteLength === 0) return
      pending = pending.subarray(Math.max(0, s.write(pending)))
    }
    const socket = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          Bun.connect({
            hostname: host,
            port,
            socket: {
              data: (_s, bytes) => void Queue.unsafeOffer(chunks, Uint8Array.from(bytes)),
              drain: (s) => flush(s),
              close: () => Deferred.unsafeDone(closed, Exit.void),
              error: () => Deferred.unsafeDone(closed, Exit.void)
            }
          }),
        catch: (cause) => new ClientError({ message: `cannot connect to ${host}:${port}: ${String(cause)}` })
      }),
      (s) => Effect.sync(() => s.end())
    )
    const read = Effect.flatMap(Queue.poll(chunks), (head) =>
      head._tag === "Some"
        ? Effect.succeed(head.value)
        : Effect.raceFirst(
            Queue.take(chunks),
            Effect.zipRight(Deferred.await(closed), Effect.fail(new ClientError({ message: "closed" })))
          )
    )
    return {
      write: (bytes: Uint8Array) =>
        Effect.sync(() => {
          if (pending.byteLength > 0) pending = Buffer.concat([pending, bytes])
          else pending = bytes.subarray(Math.max(0, socket.write(bytes)))
        }),
      read,
      close: Effect.sync(() => socket.end())
    }
  })
