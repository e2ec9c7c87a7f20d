import { Data, Deferred, type Duration, Effect, Exit, Mailbox, Option, Schedule, type Scope } from "effect"
import { Metrics } from "../Observability/Metrics.ts"
import type { WireMessage } from "../Transport/Transport.ts"

export class LinkClosed extends Data.TaggedError("LinkClosed")<{ readonly code: number; readonly reason: string }> {}

/** The open end of an outbound link, valid until the link drops. */
export interface Link {
  readonly send: (message: WireMessage) => void
  readonly close: (code: number, reason: string) => void
}

export interface LinkHandler<R> {
  /** Runs in the link's Scope once it opens (authenticate, announce); fibers forked here end with the link. */
  readonly onOpen: (link: Link) => Effect.Effect<void, LinkClosed, R | Scope.Scope>
  readonly onMessage: (message: WireMessage, link: Link) => Effect.Effect<void, LinkClosed, R>
  /**
   * A frame handled on the spot, without the link's fiber, when it needs nothing asynchronous;
   * false hands it to `onMessage`. Called only while no earlier frame is queued or being handled.
   */
  readonly onMessageNow?: (message: WireMessage, link: Link) => boolean
}

export interface DialOptions<R> {
  /** Names the link in logs and the `switchboard_link_up` gauge. */
  readonly name: string
  readonly url: string
  readonly headers?: Record<string, string>
  readonly handler: LinkHandler<R>
  /** First retry delay; doubles per failed attempt. */
  readonly initialDelay?: Duration.DurationInput
  /** Longest delay between attempts. */
  readonly maxDelay?: Duration.DurationInput
  readonly openTimeout?: Duration.DurationInput
}

/** Jittered exponential backoff capped at `maxDelay`, as recommended for reconnect storms. */
export const reconnectSchedule = (initialDelay: Duration.DurationInput, maxDelay: Duration.DurationInput) =>
  Schedule.exponential(initialDelay).pipe(Schedule.union(Schedule.spaced(maxDelay)), Schedule.jittered)

/** An open outbound connection as a dialer hands it over: frames in, and how to answer. */
export interface DialedSocket {
  readonly link: Link
  /** Inbound frames; fails with LinkClosed when the connection ends. */
  readonly inbox: Mailbox.ReadonlyMailbox<WireMessage, LinkClosed>
  /** Present when the dialer hands frames over through `arrive`: then they may be handled on the spot. */
  readonly arrivals?: Arrivals
}

/** Where a dialer hands inbound frames: the inbox, or the handler's `onMessageNow` while the link's loop waits idle. */
export interface Arrivals {
  readonly inbox: Mailbox.Mailbox<WireMessage, LinkClosed>
  /** Set only while the link's loop waits for frames; with an empty inbox, nothing earlier can be overtaken. */
  handleNow: ((message: WireMessage) => boolean) | undefined
}

export const makeArrivals = (inbox: Mailbox.Mailbox<WireMessage, LinkClosed>): Arrivals => ({
  inbox,
  handleNow: undefined
})

/** Hands one inbound frame over: on the spot when allowed and the handler takes it, else in order through the inbox. */
export const arrive = (arrivals: Arrivals, message: WireMessage): void => {
  const handleNow = arrivals.handleNow
  if (handleNow !== undefined && Option.getOrElse(arrivals.inbox.unsafeSize(), () => 1) === 0) {
    try {
      if (handleNow(message)) return
    } catch (defect) {
      // As a defect in `onMessage` would: the link ends and is dialled again.
      arrivals.handleNow = undefined
      arrivals.inbox.unsafeDone(Exit.die(defect))
      return
    }
  }
  arrivals.inbox.unsafeOffer(message)
}

/** How a link reaches its peer: a real WebSocket, or the in-memory network in tests. */
export type Dialer = (
  url: string,
  headers: Record<string, string>,
  openTimeout: Duration.DurationInput
) => Effect.Effect<DialedSocket, LinkClosed, Scope.Scope>

/** Dials with the runtime's WebSocket client; the socket closes with the Scope. */
export const webSocketDialer: Dialer = (url, headers, openTimeout) =>
  Effect.gen(function* () {
    const inbox = yield* Mailbox.make<WireMessage, LinkClosed>()
    const arrivals = makeArrivals(inbox)
    const opened = yield* Deferred.make<void>()
    const socket = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const ws = new WebSocket(url, { headers } as any)
        ws.binaryType = "arraybuffer"
        ws.onopen = () => Deferred.unsafeDone(opened, Exit.void)
        ws.onmessage = (event) =>
          arrive(arrivals, typeof event.data === "string" ? event.data : new Uint8Array(event.data as ArrayBuffer))
        ws.onclose = (event) => inbox.unsafeDone(Exit.fail(new LinkClosed({ code: event.code, reason: event.reason })))
        return ws
      }),
      (ws) => Effect.sync(() => ws.readyState <= WebSocket.OPEN && ws.close(1000, "link closed"))
    )
    yield* Deferred.await(opened).pipe(
      Effect.raceFirst(
        inbox.await.pipe(Effect.zipRight(Effect.fail(new LinkClosed({ code: 1006, reason: "closed before open" }))))
      ),
      Effect.timeoutFail({
        duration: openTimeout,
        onTimeout: () => new LinkClosed({ code: 1006, reason: "open timed out" })
      })
    )
    const link: Link = {
      send: (message) => socket.send(message),
      close: (code, reason) => socket.close(code, reason)
    }
    return { link, inbox, arrivals }
  })

const connectOnce = <R>(options: DialOptions<R>, dial: Dialer, onUp: () => void) =>
  Effect.gen(function* () {
    const { link, inbox, arrivals } = yield* dial(
      options.url,
      options.headers ?? {},
      options.openTimeout ?? "5 seconds"
    )
    onUp()
    yield* options.handler.onOpen(link)
    const onMessageNow = options.handler.onMessageNow
    const handleNow = arrivals && onMessageNow && ((message: WireMessage) => onMessageNow(message, link))
    if (arrivals) yield* Effect.addFinalizer(() => Effect.sync(() => (arrivals.handleNow = undefined)))
    while (true) {
      // Frames may be handled on the spot only while this loop waits with nothing queued or under way.
      if (handleNow) arrivals.handleNow = handleNow
      const [messages, done] = yield* inbox.takeAll
      if (arrivals) arrivals.handleNow = undefined
      for (const message of messages) yield* options.handler.onMessage(message, link)
      if (done) return yield* new LinkClosed({ code: 1000, reason: "closed" })
    }
  }).pipe(Effect.scoped)

/**
 * Keeps an outbound link up for as long as the calling scope lives: dial, run the
 * handler, and after any drop dial again with jittered backoff (reset after a link that opened).
 */
export const keepLinkUp = <R>(
  options: DialOptions<R>,
  dial: Dialer = webSocketDialer
): Effect.Effect<never, never, R | Metrics> =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    const up = metrics
      .gauge("switchboard_link_up", "Whether an outbound server-to-server link is open", ["link"])
      .labels({ link: options.name })
    const attempts = metrics
      .counter("switchboard_link_dials_total", "Outbound link dial attempts", ["link"])
      .labels({ link: options.name })
    const driver = yield* Schedule.driver(
      reconnectSchedule(options.initialDelay ?? "100 millis", options.maxDelay ?? "2 seconds")
    )
    let failedInARow = 0
    while (true) {
      attempts.inc()
      let wasUp = false
      const exit = yield* Effect.exit(
        connectOnce(options, dial, () => {
          wasUp = true
          up.set(1)
        })
      )
      up.set(0)
      const failure = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined
      // A peer that closed with 1013 (try again later) opened only to refuse: back off as for a failed dial.
      const served = wasUp && failure?.code !== tryAgainLater
      if (served) yield* driver.reset
      const why = failure ? `code ${failure.code}${failure.reason ? `: ${failure.reason}` : ""}` : "ended"
      // Warn when an open link drops; repeated failed dials while the peer is away are debug noise.
      const log = served || failedInARow === 0 ? Effect.logWarning : Effect.logDebug
      failedInARow = served ? 0 : failedInARow + 1
      yield* log(`link ${options.name} down (${why}); redialling`).pipe(
        Effect.annotateLogs({ url: redactQuery(options.url) })
      )
      yield* driver.next(undefined).pipe(Effect.ignore)
    }
  })

/** RFC 6455 "Try Again Later". */
const tryAgainLater = 1013

/** URLs may carry credentials in their query; logs get the path only. */
export const redactQuery = (url: string) => url.replace(/\?.*$/, "?…")
