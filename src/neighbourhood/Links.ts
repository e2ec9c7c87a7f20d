import { Effect, Either } from "effect"
import type { FederationService } from "../../layers/Federation/Federation.ts"
import type { Link } from "../../layers/Federation/Link.ts"
import type { Channel, NeighbourState } from "./Mesh.ts"
import {
  asText,
  handleNeighbourFrame,
  handleNeighbourFrameNow,
  linkGreeting,
  type NeighbourhoodContext,
  throttled
} from "./NeighbourFrames.ts"
import { OrderedWork } from "./Ordered.ts"
import { parseFrame } from "./Wire.ts"

/**
 * Our outbound link to one neighbour, kept up for as long as the caller's Scope lives (Federation.link:
 * jittered re-dial), opening with our server_hello, a client_update_request and our client_update.
 */
export const linkTo = (ctx: NeighbourhoodContext, federation: FederationService, n: NeighbourState) => {
  const { config, mesh } = ctx
  const channels = new Map<Link, Channel>()
  return federation.link({
    name: `${config.address}->${n.address}`,
    url: n.url,
    maxDelay: config.redialMax,
    handler: {
      onOpen: (link) =>
        Effect.gen(function* () {
          const channel: Channel = {
            send: (frame) => link.send(frame),
            close: (code, reason) => link.close(code, reason),
            direction: "outbound",
            work: new OrderedWork(ctx.defect)
          }
          for (const frame of yield* linkGreeting(ctx)) link.send(frame)
          channels.set(link, channel)
          mesh.channelUp(n, channel)
          ctx.linkOpened(n, "outbound")
          yield* Effect.logInfo(`neighbour ${n.address} connected (outbound)`)
          yield* Effect.addFinalizer(() =>
            Effect.sync(() => {
              channels.delete(link)
              mesh.channelDown(n, channel)
              ctx.clientListsChanged()
            })
          )
        }),
      // Most frames are handled on the spot, without waking the link's fiber; the rest take onMessage.
      onMessageNow: (message, link) => {
        const channel = channels.get(link)
        if (!channel) return false
        const parsed = parseFrame(asText(message))
        return Either.isRight(parsed) && handleNeighbourFrameNow(ctx, n, channel, parsed.right)
      },
      onMessage: (message, link) => {
        const channel = channels.get(link)
        if (!channel) return Effect.void
        const parsed = parseFrame(asText(message))
        if (Either.isLeft(parsed))
          return Effect.logWarning(`neighbour ${n.address} sent an invalid frame: ${parsed.left}`)
        return throttled(channel.work, handleNeighbourFrame(ctx, n, channel, parsed.right)) ?? Effect.void
      }
    }
  })
}
