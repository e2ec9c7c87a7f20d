import { Effect, Either } from "effect"
import type { RoomsService } from "../../layers/Rooms/Rooms.ts"
import type { WireMessage } from "../../layers/Transport/Transport.ts"
import type { NeighbourhoodConfig } from "./Config.ts"
import type { Counters, RecentSet } from "./Counters.ts"
import type { PublicKeyInfo } from "./Crypto.ts"
import type { Channel, Mesh, NeighbourState } from "./Mesh.ts"
import type { OrderedWork } from "./Ordered.ts"
import { verifySigned } from "./Verify.ts"
import {
  type ChatData,
  clientUpdateRequestFrame,
  encodeSignedData,
  type Frame,
  type OpenedSignedData,
  openSignedData,
  preview,
  type PublicChatData,
  type ServerHelloData,
  type SignedData
} from "./Wire.ts"

/** What the protocol handlers share within one server. */
export interface NeighbourhoodContext {
  readonly config: NeighbourhoodConfig
  readonly mesh: Mesh
  readonly counters: Counters
  /**
   * On nodes sharing one server address: the cluster's last counter per key, raised to `counter` when
   * greater; resolves to the last before it (a replay when `counter` is not greater).
   */
  readonly sharedCounters?: ((key: string, counter: number) => Promise<number>) | undefined
  /** Signatures of chats already delivered here, so a peer that sends one twice is heard once. */
  readonly relayed: RecentSet
  readonly rooms: RoomsService
  /** The Rooms room of this server's clients (public and private chats fan out through it). */
  readonly room: string
  /** Counts a refusal by reason (the metric). */
  readonly refused: (reason: string) => void
  /** Counts a link to a neighbour that opened (ours dialled, or its server_hello accepted). */
  readonly linkOpened: (n: NeighbourState, direction: "outbound" | "inbound") => void
  /** Counts a client message delivered into the mesh or to local clients. */
  readonly routed: (kind: "chat" | "public_chat") => void
  /** Our client list changed: a client_update goes to every neighbour (coalesced, see Server). */
  readonly clientsChanged: () => void
  /** A client list changed (ours or a neighbour's): pushed to our clients with `compat.pushClientList`. */
  readonly clientListsChanged: () => void
  /** Sends a coalesced client_update that is still waiting, before a client's message goes into the mesh. */
  readonly flushClientUpdate: () => void
  /** Our server_hello, signed, with a counter above every one before it (it starts at the clock). */
  readonly signedServerHello: Effect.Effect<string>
  /**
   * On nodes sharing one server name: whether this node holds (or could take now) the link to a
   * neighbour whose server_hello arrived here; absent on one node (every link is its own).
   */
  readonly holdsLink?: ((n: NeighbourState) => Effect.Effect<boolean>) | undefined
  /** Whether `address` may open another connection now (per-address rate limit). */
  readonly admitConnection: (address: string, now: number) => boolean
  /** Logs a warning from plain (non-Effect) code, such as ordered work callbacks. */
  readonly warn: (message: string) => void
  /** Logs a bug in ordered work; the connection carries on. */
  readonly defect: (error: unknown) => void
}

const decoder = new TextDecoder()
export const asText = (message: WireMessage) => (typeof message === "string" ? message : decoder.decode(message))

export const replayReason = (counter: number, last: number) =>
  `counter ${counter} is not greater than the last accepted counter ${last} of this key; continue counting from there`

/**
 * Messages a neighbour sends (over its inbound connection or our outbound link): chats for our
 * clients, public chats, its client list. Nothing received from a neighbour is ever sent on into
 * the mesh, so there are no loops; a chat or public chat seen twice is delivered once. Effects
 * happen in arrival order (`channel.work`), while signature checks run in parallel. An Effect is
 * returned only for work that has not started (see `handleNeighbourFrameNow`).
 */
export const handleNeighbourFrame = (
  ctx: NeighbourhoodContext,
  n: NeighbourState,
  channel: Channel,
  frame: Frame
): Effect.Effect<void> | void => {
  const work = channel.work
  switch (frame.type) {
    case "signed_data": {
      const opened = openSignedData(frame)
      if (Either.isLeft(opened))
        return ctx.warn(`neighbour ${n.address} sent signed_data that is not a v1.2 message: ${opened.left}`)
      const { content } = opened.right
      switch (content.type) {
        case "chat":
          return work.after(() => relayedChat(ctx, n, frame, opened.right, content))
        case "public_chat":
          return relayedPublicChat(ctx, n, channel, frame, opened.right, content)
        case "server_hello":
          return Effect.promise(() => work.idle()).pipe(
            Effect.zipRight(
              verifyServerHello(ctx, n, frame, opened.right, content, `link:${n.address}`, channel.direction)
            ),
            Effect.flatMap((problem) =>
              problem
                ? Effect.logWarning(`neighbour ${n.address}: repeated server_hello refused: ${problem}`)
                : Effect.void
            )
          )
        case "hello":
          return ctx.warn(`neighbour ${n.address} sent a client hello on a server link; ignored`)
      }
      return
    }
    case "client_update":
      // Lists come on every connection; only the chosen one's count, so two queues cannot reorder them.
      if (channel !== ctx.mesh.channelTo(n)) return
      return work.then(ctx.mesh.importClients(n, frame.clients), (imported) => {
        ctx.mesh.setClients(n, imported)
        ctx.clientListsChanged()
        if (imported.rejected > 0)
          ctx.warn(
            `neighbour ${n.address}: ${imported.rejected} client(s) of its client_update were not valid RSA public keys`
          )
      })
    case "client_update_request":
      return work.after(() => channel.send(ctx.mesh.clientUpdateFrame()))
    case "client_list_request":
      return work.after(() => channel.send(ctx.mesh.clientListFrame()))
    case "client_list":
    case "error":
      return
  }
}

const relayedChat = (
  ctx: NeighbourhoodContext,
  n: NeighbourState,
  frame: SignedData,
  opened: OpenedSignedData,
  content: ChatData
) => {
  if (!content.destination_servers.some((d) => ctx.mesh.isOwnAddress(d))) {
    return ctx.warn(`neighbour ${n.address} sent a chat not addressed to this server; dropped`)
  }
  if (!ctx.relayed.add(frame.signature)) return
  ctx.rooms.publish(ctx.room, encodeSignedData(opened.dataText, frame.counter, frame.signature))
}

const relayedPublicChat = (
  ctx: NeighbourhoodContext,
  n: NeighbourState,
  channel: Channel,
  frame: SignedData,
  opened: OpenedSignedData,
  content: PublicChatData
) => {
  // A repeat (a peer that floods, or two connections) fails the counter check cheaply, before any signature check.
  const check = (key: PublicKeyInfo) =>
    ctx.counters.fresh(key.fingerprint, frame.counter)
      ? { key, valid: verifySigned(key, opened.dataText, frame.counter, frame.signature) }
      : undefined
  const apply = (checked: ReturnType<typeof check>) => {
    if (!checked) return
    if (!checked.valid) {
      ctx.refused("relayed_bad_signature")
      return ctx.warn(`neighbour ${n.address} relayed a public_chat with a bad signature; dropped`)
    }
    if (!ctx.counters.commit(checked.key.fingerprint, frame.counter)) return
    ctx.rooms.publish(ctx.room, encodeSignedData(opened.dataText, frame.counter, frame.signature))
  }
  const known = ctx.mesh.senderKey(content.sender)
  if (known) {
    const checked = check(known)
    return channel.work.after(() => apply(checked))
  }
  // An unknown sender may be in a client_update still being applied: look again once earlier work is done.
  const later = channel.work.idle().then(() => {
    const key = ctx.mesh.senderKey(content.sender)
    if (!key) ctx.warn(`neighbour ${n.address} relayed a public_chat from an unknown sender; dropped`)
    return key ? check(key) : undefined
  })
  channel.work.then(later, apply)
}

/**
 * What we send first on a new link, whichever side dialled: our server_hello (peers that dial wait
 * for one before they use the connection), a client_update_request and our client_update.
 */
export const linkGreeting = (ctx: NeighbourhoodContext) =>
  Effect.map(ctx.signedServerHello, (hello) => [hello, clientUpdateRequestFrame, ctx.mesh.clientUpdateFrame()])

/** Checks a server_hello against the configured key of `n`; a reason when refused. */
export const verifyServerHello = (
  ctx: NeighbourhoodContext,
  n: NeighbourState,
  frame: SignedData,
  opened: OpenedSignedData,
  content: ServerHelloData,
  connectionKey: string,
  direction: Channel["direction"] = "inbound"
): Effect.Effect<string | undefined> =>
  Effect.gen(function* () {
    if (content.sender !== n.address) return `sender ${preview(content.sender)} is not ${preview(n.address)}`
    const valid = verifySigned(n.key, opened.dataText, frame.counter, frame.signature)
    if (!valid) {
      if (!ctx.config.compat.unsignedServerHello) return "bad signature"
      yield* Effect.logWarning(
        `INSECURE: accepting an unsigned server_hello from ${n.address} (neighbourhood.compat.unsignedServerHello)`
      )
      return undefined
    }
    // On a link we dialled, a server_hello proves nothing we rely on: its counter is not checked, so it cannot
    // refuse the peer's hellos on its own connection (any order), nor warn after the peer restarts at 0.
    if (direction === "outbound") return undefined
    const counterKey = ctx.config.compat.perConnectionCounters
      ? `${connectionKey}/server:${n.address}`
      : `server:${n.address}`
    if (!ctx.counters.commit(counterKey, frame.counter))
      return replayReason(frame.counter, ctx.counters.lastOf(counterKey))
    return undefined
  })

/**
 * A neighbour's frame handled on the spot (the link's `onMessageNow`): the same handling, taken only
 * when it needs no Effect and the channel's work is below the reading bound; false leaves it to the
 * Effect path, which handles it alike and pauses reading when too much is queued.
 */
export const handleNeighbourFrameNow = (
  ctx: NeighbourhoodContext,
  n: NeighbourState,
  channel: Channel,
  frame: Frame
): boolean => {
  if (channel.work.pending >= maxInFlight - 1) return false
  // An Effect (a repeated server_hello) has started nothing yet: dropped here, the Effect path makes it again.
  return handleNeighbourFrame(ctx, n, channel, frame) === undefined
}

/** Frames a connection may have in flight before the server stops reading it until they are done. */
export const maxInFlight = 256

/** The handler's own result, or, when too much is queued, a wait that pauses reading (transport backpressure). */
export const throttled = (work: OrderedWork, result: Effect.Effect<void> | void): Effect.Effect<void> | void => {
  const wait = work.throttle(maxInFlight)
  if (!wait) return result
  return result
    ? Effect.zipRight(
        result,
        Effect.promise(() => wait)
      )
    : Effect.promise(() => wait)
}
