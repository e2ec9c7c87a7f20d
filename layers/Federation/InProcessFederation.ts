import { Effect, Exit, Layer, Mailbox, PubSub, Queue } from "effect"
import { MemoryNetwork } from "../Transport/MemoryTransport.ts"
import type { WireMessage } from "../Transport/Transport.ts"
import { Federation, type FederationService } from "./Federation.ts"
import { arrive, type Dialer, keepLinkUp, type Link, LinkClosed, makeArrivals, webSocketDialer } from "./Link.ts"

/** Federation of one node: the bus stays in this process; links dial with `dial`. */
export const makeInProcessFederation = (dial: Dialer) =>
  Effect.gen(function* () {
    const subjects = new Map<string, PubSub.PubSub<string>>()
    const pubsubOf = (subject: string) => {
      let pubsub = subjects.get(subject)
      if (!pubsub) subjects.set(subject, (pubsub = Effect.runSync(PubSub.unbounded<string>())))
      return pubsub
    }
    const service: FederationService = {
      publish: (subject, payload) => Effect.asVoid(Effect.suspend(() => PubSub.publish(pubsubOf(subject), payload))),
      subscribe: (subject) => Effect.suspend(() => PubSub.subscribe(pubsubOf(subject))),
      link: (options) =>
        Effect.gen(function* () {
          let up = false
          const tracked: Dialer = (url, headers, timeout) =>
            dial(url, headers, timeout).pipe(
              Effect.tap(() =>
                Effect.acquireRelease(
                  Effect.sync(() => void (up = true)),
                  () => Effect.sync(() => void (up = false))
                )
              )
            )
          yield* Effect.forkScoped(keepLinkUp(options, tracked))
          return { isUp: () => up }
        })
    }
    return service
  })

/** Links over real WebSockets: what every program runs. */
export const InProcessFederationLive = Layer.effect(Federation, makeInProcessFederation(webSocketDialer))

/** `ws://memory:<port>/path?query` → the port and path of a MemoryNetwork server. */
const memoryTarget = (url: string) => {
  const parsed = new URL(url)
  return { port: Number(parsed.port), path: `${parsed.pathname}${parsed.search}` }
}

/** Dials servers of a MemoryNetwork (their url is `http://memory:<port>`, any scheme works). */
export const memoryDialer =
  (network: MemoryNetwork): Dialer =>
  (url, headers) =>
    Effect.gen(function* () {
      const { port, path } = memoryTarget(url)
      const client = yield* network
        .connect(port, path, headers)
        .pipe(Effect.mapError((closed) => new LinkClosed({ code: 1006, reason: `refused (${closed.code})` })))
      const inbox = yield* Mailbox.make<WireMessage, LinkClosed>()
      const arrivals = makeArrivals(inbox)
      // One pump keeps frame order; once the peer has closed, frames already queued still go first.
      yield* Effect.forkScoped(
        Effect.gen(function* () {
          while (true) {
            const next = yield* Effect.raceFirst(
              Effect.map(Queue.take(client.frames), (frame) => ({ frame })),
              Effect.map(client.closed, (closed) => ({ closed }))
            )
            if ("frame" in next) {
              arrive(arrivals, next.frame)
              continue
            }
            for (const frame of yield* Queue.takeAll(client.frames)) arrive(arrivals, frame)
            inbox.unsafeDone(Exit.fail(new LinkClosed({ code: next.closed.code, reason: next.closed.reason })))
            return
          }
        })
      )
      const link: Link = {
        send: (message) => Effect.runSync(client.send(message)),
        close: (code) => Effect.runSync(client.close(code))
      }
      return { link, inbox, arrivals }
    })

/** The test double: links dial servers on the MemoryNetwork; the bus stays in this process. */
export const MemoryFederationLive = Layer.effect(
  Federation,
  Effect.flatMap(MemoryNetwork, (network) => makeInProcessFederation(memoryDialer(network)))
)
