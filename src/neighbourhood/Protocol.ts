import { Effect, Either } from "effect"
import type { RoomsService } from "../../layers/Rooms/Rooms.ts"
import { accept, type Connection, type WebSocketProtocol, type WireMessage } from "../../layers/Transport/Transport.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import { ConnectionLimiter } from "../shared/RateLimiter.ts"
import type { NeighbourhoodConfig } from "./Config.ts"
import type { Counters, RecentSet } from "./Counters.ts"
import { fingerprintVariants, importPublicPem, verifyData } from "./Crypto.ts"
import type { Channel, LocalClient, Mesh, NeighbourState } from "./Mesh.ts"
import {
  type ChatData,
  encodeError,
  encodeSignedData,
  type Frame,
  type HelloData,
  type OpenedSignedData,
  openSignedData,
  parseFrame,
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
  /** Signatures of chats already delivered here, so a peer that sends one twice is heard once. */
  readonly relayed: RecentSet
  readonly rooms: RoomsService
  /** The Rooms room of this server's clients (public and private chats fan out through it). */
  readonly room: string
  /** Counts a refusal by reason (the metric). */
  readonly refused: (reason: string) => void
  /** Counts a client message delivered into the mesh or to local clients. */
  readonly routed: (kind: "chat" | "public_chat") => void
}

const decoder = new TextDecoder()
const asText = (message: WireMessage) => (typeof message === "string" ? message : decoder.decode(message))

const replayReason = (counter: number, last: number) =>
  `counter ${counter} is not greater than the last accepted counter ${last} of this key; continue counting from there`

/**
 * Messages a neighbour sends (over its inbound connection or our outbound link): chats for our
 * clients, public chats, its client list. Nothing received from a neighbour is ever sent on into
 * the mesh, so there are no loops; a chat or public chat seen twice is delivered once.
 */
export const handleNeighbourFrame = (ctx: NeighbourhoodContext, n: NeighbourState, channel: Channel, frame: Frame): Effect.Effect<void> | void => {
  switch (frame.type) {
    case "signed_data": {
      const opened = openSignedData(frame)
      if (Either.isLeft(opened)) return Effect.logWarning(`neighbour ${n.address} sent signed_data that is not a v1.2 message: ${opened.left}`)
      const { content } = opened.right
      switch (content.type) {
        case "chat":
          return relayedChat(ctx, n, frame, opened.right, content)
        case "public_chat":
          return relayedPublicChat(ctx, n, frame, opened.right, content)
        case "server_hello":
          return verifyServerHello(ctx, n, frame, opened.right, content, `link:${n.address}`).pipe(
            Effect.flatMap((problem) => (problem ? Effect.logWarning(`neighbour ${n.address}: repeated server_hello refused: ${problem}`) : Effect.void))
          )
        case "hello":
          return Effect.logWarning(`neighbour ${n.address} sent a client hello on a server link; ignored`)
      }
      return
    }
    case "client_update":
      return Effect.promise(() => ctx.mesh.replaceClients(n, frame.clients)).pipe(
        Effect.flatMap(({ rejected }) =>
          rejected > 0 ? Effect.logWarning(`neighbour ${n.address}: ${rejected} client(s) of its client_update were not valid RSA public keys`) : Effect.void
        )
      )
    case "client_update_request":
      return channel.send(ctx.mesh.clientUpdateFrame())
    case "client_list_request":
      return channel.send(ctx.mesh.clientListFrame())
    case "client_list":
    case "error":
      return Effect.logDebug(`neighbour ${n.address} sent ${frame.type}${frame.type === "error" ? `: ${preview(frame.message, 120)}` : ""}`)
  }
}

const relayedChat = (ctx: NeighbourhoodContext, n: NeighbourState, frame: SignedData, opened: OpenedSignedData, content: ChatData) => {
  if (!content.destination_servers.some((d) => ctx.mesh.isOwnAddress(d))) {
    return Effect.logDebug(`neighbour ${n.address} sent a chat not addressed to this server; dropped`)
  }
  if (!ctx.relayed.add(frame.signature)) return
  ctx.rooms.publish(ctx.room, encodeSignedData(opened.dataText, frame.counter, frame.signature))
}

const relayedPublicChat = (ctx: NeighbourhoodContext, n: NeighbourState, frame: SignedData, opened: OpenedSignedData, content: PublicChatData) =>
  Effect.gen(function* () {
    const key = ctx.mesh.senderKey(content.sender)
    if (!key) return yield* Effect.logWarning(`neighbour ${n.address} relayed a public_chat from an unknown sender; dropped`)
    const counterKey = key.fingerprint
    // A repeat (a peer that floods, or two connections) fails here cheaply, before any signature check.
    if (!ctx.counters.fresh(counterKey, frame.counter)) return
    if (!(yield* Effect.promise(() => verifyData(key.verifyKey, opened.dataText, frame.counter, frame.signature)))) {
      ctx.refused("relayed_bad_signature")
      return yield* Effect.logWarning(`neighbour ${n.address} relayed a public_chat with a bad signature; dropped`)
    }
    if (!ctx.counters.commit(counterKey, frame.counter)) return
    ctx.rooms.publish(ctx.room, encodeSignedData(opened.dataText, frame.counter, frame.signature))
  })

/** Checks a server_hello against the configured key of `n`; a reason when refused. */
export const verifyServerHello = (
  ctx: NeighbourhoodContext,
  n: NeighbourState,
  frame: SignedData,
  opened: OpenedSignedData,
  content: ServerHelloData,
  connectionKey: string
): Effect.Effect<string | undefined> =>
  Effect.gen(function* () {
    if (content.sender !== n.address) return `sender ${preview(content.sender)} is not ${preview(n.address)}`
    const valid = yield* Effect.promise(() => verifyData(n.key.verifyKey, opened.dataText, frame.counter, frame.signature))
    if (!valid) {
      if (!ctx.config.compat.unsignedServerHello) return "bad signature"
      yield* Effect.logWarning(`INSECURE: accepting an unsigned server_hello from ${n.address} (neighbourhood.compat.unsignedServerHello)`)
      return undefined
    }
    const counterKey = ctx.config.compat.perConnectionCounters ? `${connectionKey}/server:${n.address}` : `server:${n.address}`
    if (!ctx.counters.commit(counterKey, frame.counter)) return replayReason(frame.counter, ctx.counters.lastOf(counterKey))
    return undefined
  })

type State =
  | { readonly kind: "pending" }
  | { readonly kind: "client"; readonly client: LocalClient }
  | { readonly kind: "server"; readonly neighbour: NeighbourState; readonly channel: Channel }

/**
 * The WebSocket side of one server: every connection starts unidentified; a signed `hello` makes
 * it a client, a `server_hello` signed with a configured neighbour's key makes it that
 * neighbour's link; neither within the handshake timeout closes it (4005).
 */
export const makeNeighbourhoodProtocol = (ctx: NeighbourhoodContext): WebSocketProtocol<undefined> => {
  const { config, mesh, counters, rooms, room } = ctx
  const limits = config.limits
  const rate = { ratePerSecond: limits.messagesPerSecond, burst: limits.messageBurst, strikes: limits.rateStrikes }

  const open = (connection: Connection<undefined>) =>
    Effect.gen(function* () {
      let state: State = { kind: "pending" }
      const limiter = new ConnectionLimiter(rate, Date.now())
      /** Counter keys this connection used, forgotten at close in per-connection compat mode. */
      const connectionKeys = new Set<string>()
      const counterKey = (fingerprint: string) => {
        if (!config.compat.perConnectionCounters) return fingerprint
        const key = `${connection.id}/${fingerprint}`
        connectionKeys.add(key)
        return key
      }

      const refuse = (reason: string, metric: string) => {
        ctx.refused(metric)
        connection.send(encodeError(reason))
      }

      yield* Effect.forkScoped(
        Effect.sleep(limits.handshakeTimeout).pipe(
          Effect.zipRight(
            Effect.sync(() => {
              if (state.kind !== "pending" || !connection.isOpen()) return
              ctx.refused("handshake_timeout")
              connection.close(CloseCodes.handshakeTimeout, "no hello or server_hello in time")
            })
          )
        )
      )

      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          for (const key of connectionKeys) counters.forget(key)
          const current = state as State
          if (current.kind === "client") {
            yield* rooms.leave(room, connection)
            if (mesh.removeLocal(current.client)) mesh.broadcast(mesh.clientUpdateFrame())
          } else if (current.kind === "server") {
            mesh.channelDown(current.neighbour, current.channel)
            yield* Effect.logInfo(`neighbour ${current.neighbour.address} disconnected (inbound)`)
          }
        })
      )

      /** Counter, then signature, then counter again (another message may have won meanwhile). */
      const verifiedFrom = (key: LocalClient["key"], frame: SignedData, opened: OpenedSignedData) =>
        Effect.gen(function* () {
          const ck = counterKey(key.fingerprint)
          if (!counters.fresh(ck, frame.counter)) {
            refuse(replayReason(frame.counter, counters.lastOf(ck)), "replay")
            return false
          }
          if (!(yield* Effect.promise(() => verifyData(key.verifyKey, opened.dataText, frame.counter, frame.signature)))) {
            refuse("signature does not verify with your key", "bad_signature")
            return false
          }
          if (!counters.commit(ck, frame.counter)) {
            refuse(replayReason(frame.counter, counters.lastOf(ck)), "replay")
            return false
          }
          return true
        })

      const hello = (frame: SignedData, opened: OpenedSignedData, content: HelloData) =>
        Effect.gen(function* () {
          const key = yield* Effect.promise(() => importPublicPem(content.public_key))
          if (typeof key === "string") return refuse(`hello refused: ${key}`, "bad_key")
          const current = state
          if (current.kind === "client" && current.client.key.fingerprint !== key.fingerprint) {
            return refuse("this connection already said hello with another key", "second_hello")
          }
          const variants = yield* Effect.promise(() => fingerprintVariants(key.spki, content.public_key))
          if (!(yield* verifiedFrom(key, frame, opened))) return
          // A repeated hello with the same key only advances the counter.
          if (current.kind === "client" || !connection.isOpen()) return
          if (mesh.fingerprintHeldByOther(key.fingerprint, connection)) {
            refuse("this key is already connected to this server", "fingerprint_taken")
            return connection.close(CloseCodes.forbidden, "key already connected")
          }
          const client: LocalClient = { key, variants, connection }
          state = { kind: "client", client }
          mesh.addLocal(client)
          yield* rooms.join(room, connection, { id: key.fingerprint, info: key.pem })
          mesh.broadcast(mesh.clientUpdateFrame())
        })

      const serverHello = (frame: SignedData, opened: OpenedSignedData, content: ServerHelloData) =>
        Effect.gen(function* () {
          const neighbour = mesh.neighbours.get(content.sender)
          if (!neighbour) {
            refuse("server_hello from an address that is not in this server's neighbourhood", "unknown_server")
            return connection.close(CloseCodes.forbidden, "not a neighbour")
          }
          const problem = yield* verifyServerHello(ctx, neighbour, frame, opened, content, `conn:${connection.id}`)
          if (problem) {
            refuse(`server_hello refused: ${problem}`, "bad_server_hello")
            return connection.close(CloseCodes.unauthorized, "server_hello refused")
          }
          const current = state
          if (current.kind === "server") return
          if (!connection.isOpen()) return
          const channel: Channel = {
            send: (frame) => void connection.send(frame),
            close: (code, reason) => connection.close(code, reason),
            direction: "inbound"
          }
          state = { kind: "server", neighbour, channel }
          mesh.channelUp(neighbour, channel)?.close(CloseCodes.replaced, "replaced by a newer connection")
          yield* Effect.logInfo(`neighbour ${neighbour.address} connected (inbound)`)
        })

      const clientChat = (client: LocalClient, frame: SignedData, opened: OpenedSignedData, content: ChatData) =>
        Effect.gen(function* () {
          if (!(yield* verifiedFrom(client.key, frame, opened))) return
          const out = encodeSignedData(opened.dataText, frame.counter, frame.signature)
          const unreachable: Array<string> = []
          let local = false
          for (const destination of new Set(content.destination_servers)) {
            if (mesh.isOwnAddress(destination)) local = true
            else if (!mesh.sendTo(destination, out)) unreachable.push(destination)
          }
          ctx.relayed.add(frame.signature)
          if (local) rooms.publish(room, out, connection)
          ctx.routed("chat")
          if (unreachable.length > 0) {
            refuse(`chat not delivered to ${unreachable.slice(0, 4).map((d) => preview(d)).join(", ")}: unknown or disconnected server`, "unreachable")
          }
        })

      const clientPublicChat = (client: LocalClient, frame: SignedData, opened: OpenedSignedData, content: PublicChatData) =>
        Effect.gen(function* () {
          if (!client.variants.includes(content.sender)) return refuse("public_chat sender must be your own fingerprint", "wrong_sender")
          if (content.message.length > limits.maxPublicMessageChars) {
            return refuse(`public_chat message longer than ${limits.maxPublicMessageChars} characters`, "too_long")
          }
          if (!(yield* verifiedFrom(client.key, frame, opened))) return
          const out = encodeSignedData(opened.dataText, frame.counter, frame.signature)
          rooms.publish(room, out, connection)
          mesh.broadcast(out)
          ctx.routed("public_chat")
        })

      const fromUnidentified = (frame: Frame): Effect.Effect<void> | void => {
        const current = state
        switch (frame.type) {
          case "signed_data": {
            const opened = openSignedData(frame)
            if (Either.isLeft(opened)) return refuse(`data is not a v1.2 message: ${opened.left}`, "bad_data")
            const { content } = opened.right
            if (content.type === "hello") return hello(frame, opened.right, content)
            if (content.type === "server_hello") {
              return current.kind === "pending" ? serverHello(frame, opened.right, content) : refuse("server_hello from a client", "not_allowed")
            }
            if (current.kind !== "client") return refuse(`say hello before sending ${content.type}`, "no_hello")
            return content.type === "chat"
              ? clientChat(current.client, frame, opened.right, content)
              : clientPublicChat(current.client, frame, opened.right, content)
          }
          case "client_list_request":
            return void connection.send(mesh.clientListFrame())
          case "error":
            return
          default:
            return refuse(`${frame.type} is sent by servers only`, "not_allowed")
        }
      }

      const onMessage = (message: WireMessage): Effect.Effect<void> | void => {
        const current = state
        if (current.kind === "server") {
          const parsed = parseFrame(asText(message))
          if (Either.isLeft(parsed)) return Effect.logWarning(`neighbour ${current.neighbour.address} sent an invalid frame: ${parsed.left}`)
          return handleNeighbourFrame(ctx, current.neighbour, current.channel, parsed.right)
        }
        switch (limiter.admit(Date.now())) {
          case "limited":
            return refuse("rate limited: slow down", "rate_limited")
          case "abusive":
            ctx.refused("rate_limited")
            return connection.close(CloseCodes.rateLimited, "too many messages")
        }
        const parsed = parseFrame(asText(message))
        if (Either.isLeft(parsed)) return refuse(`invalid message: ${parsed.left}`, "invalid")
        return fromUnidentified(parsed.right)
      }

      return { onMessage }
    })

  return { upgrade: () => Effect.succeed(accept(undefined)), open }
}
