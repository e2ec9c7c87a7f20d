import { Deferred, Duration, Effect, Queue, type Scope } from "effect"

export interface Closed {
  readonly code: number
  readonly reason: string
}

/** A WebSocket client for tests: every received frame is queued; take them in order. */
export interface WsClient {
  readonly socket: WebSocket
  readonly send: (message: string | Uint8Array) => Effect.Effect<void>
  /** The next frame (text as string, binary as Uint8Array); fails the test after `within`. */
  readonly next: (within?: Duration.DurationInput) => Effect.Effect<string | Uint8Array>
  readonly nextJson: <A = any>(within?: Duration.DurationInput) => Effect.Effect<A>
  /** Waits for the server's next ping (the client has answered it with a pong by then). */
  readonly nextPing: (within?: Duration.DurationInput) => Effect.Effect<void>
  /**
   * Pings the server and waits for its pong: the server has then read everything this client sent
   * before (pongs included), without a message frame that would count as activity.
   */
  readonly serverHasRead: (within?: Duration.DurationInput) => Effect.Effect<void>
  readonly closed: Effect.Effect<Closed>
  readonly close: (code?: number) => Effect.Effect<void>
}

export interface WsClientOptions {
  readonly headers?: Record<string, string>
  readonly protocols?: string | Array<string>
}

/**
 * Opens a WebSocket and waits for it to open (or fails with the close code). Uses the real clock for
 * its own timeouts even inside TestClock tests, because the frames come from a real socket.
 */
export const connectWs = (url: string, options: WsClientOptions = {}): Effect.Effect<WsClient, Closed, Scope.Scope> =>
  Effect.gen(function* () {
    const frames = yield* Queue.unbounded<string | Uint8Array>()
    const pings = yield* Queue.unbounded<void>()
    const pongs = yield* Queue.unbounded<void>()
    const closed = yield* Deferred.make<Closed>()
    const opened = yield* Deferred.make<void, Closed>()
    const socket = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const ws = new WebSocket(url, { headers: options.headers, protocols: options.protocols } as any)
        ws.binaryType = "arraybuffer"
        ws.onopen = () => Deferred.unsafeDone(opened, Effect.void)
        ws.onmessage = (event) =>
          Queue.unsafeOffer(
            frames,
            typeof event.data === "string" ? event.data : new Uint8Array(event.data as ArrayBuffer)
          )
        ws.addEventListener("ping", () => Queue.unsafeOffer(pings, undefined))
        ws.addEventListener("pong", () => Queue.unsafeOffer(pongs, undefined))
        ws.onclose = (event) => {
          const info = { code: event.code, reason: event.reason }
          Deferred.unsafeDone(closed, Effect.succeed(info))
          Deferred.unsafeDone(opened, Effect.fail(info))
        }
        return ws
      }),
      (ws) => Effect.sync(() => ws.close())
    )
    yield* Deferred.await(opened).pipe(timeoutLive("open", "5 seconds"))
    const next = (within: Duration.DurationInput = "3 seconds") =>
      Queue.take(frames).pipe(timeoutLive("a frame", within))
    return {
      socket,
      send: (message) => Effect.sync(() => socket.send(message)),
      next,
      nextJson: (within) =>
        next(within).pipe(
          Effect.map((frame) => JSON.parse(typeof frame === "string" ? frame : new TextDecoder().decode(frame)))
        ),
      nextPing: (within = "3 seconds") => Queue.take(pings).pipe(timeoutLive("a ping", within)),
      serverHasRead: (within = "3 seconds") =>
        Effect.sync(() => (socket as WebSocket & { ping: () => void }).ping()).pipe(
          Effect.zipRight(Queue.take(pongs)),
          timeoutLive("the server's pong", within)
        ),
      closed: Deferred.await(closed).pipe(timeoutLive("close", "5 seconds")),
      close: (code = 1000) => Effect.sync(() => socket.close(code))
    }
  })

/** A timeout on the real event loop (independent of TestClock) that turns into a test failure. */
export const timeoutLive =
  (what: string, within: Duration.DurationInput) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.raceFirst(
      self,
      Effect.promise(
        () => new Promise<void>((resolve) => setTimeout(resolve, Duration.toMillis(Duration.decode(within))))
      ).pipe(
        Effect.zipRight(
          Effect.dieMessage(`timed out after ${Duration.format(Duration.decode(within))} waiting for ${what}`)
        )
      )
    )
