import { Effect, Either } from "effect"
import {
  accept,
  type Connection,
  reject,
  type UpgradeInfo,
  type WebSocketProtocol,
  type WireMessage
} from "../../layers/Transport/Transport.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import { ConnectionLimiter } from "../shared/RateLimiter.ts"
import { fingerprintVariants, importPublicPem } from "./Crypto.ts"
import type { Channel, LocalClient, NeighbourState } from "./Mesh.ts"
import { OrderedWork } from "./Ordered.ts"
import { verifySigned } from "./Verify.ts"
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

import {
  asText,
  handleNeighbourFrame,
  linkGreeting,
  type NeighbourhoodContext,
  replayReason,
  throttled,
  verifyServerHello
} from "./NeighbourFrames.ts"

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

      /** Effects and replies in arrival order; signature checks of later messages start meanwhile. */
      const work = new OrderedWork(ctx.defect)
      const reply = (frame: string) => work.after(() => void connection.send(frame))
      const refuse = (reason: string, metric: string) => {
        ctx.refused(metric)
        reply(encodeError(reason))
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
            if (mesh.removeLocal(current.client)) ctx.clientsChanged()
          } else if (current.kind === "server") {
            mesh.channelDown(current.neighbour, current.channel)
            ctx.clientListsChanged()
            yield* Effect.logInfo(`neighbour ${current.neighbour.address} disconnected (inbound)`)
          }
        })
      )

      /**
       * The cluster's check of a verified counter (nodes of one server address), one at a time per
       * connection so its counters reach the shared store in order: the last counter before it.
       */
      let sharedTail: Promise<number> = Promise.resolve(-1)
      const sharedLast = (fingerprint: string, counter: number) => {
        const shared = ctx.sharedCounters
        if (!shared || config.compat.perConnectionCounters) return Promise.resolve(-1)
        sharedTail = sharedTail.then(() => shared(fingerprint, counter))
        return sharedTail
      }

      /** Counter, then signature (synchronous, so nothing can commit in between); for hellos. */
      const verifiedNow = (key: LocalClient["key"], frame: SignedData, opened: OpenedSignedData) => {
        const ck = counterKey(key.fingerprint)
        if (!counters.fresh(ck, frame.counter)) {
          refuse(replayReason(frame.counter, counters.lastOf(ck)), "replay")
          return false
        }
        if (!verifySigned(key, opened.dataText, frame.counter, frame.signature)) {
          refuse("signature does not verify with your key", "bad_signature")
          return false
        }
        return counters.commit(ck, frame.counter)
      }

      /**
       * The same checks for chats: verified now, applied after this connection's earlier work (a hello
       * or a client list still pending); the counter is committed then, so a replay queued behind its
       * original is refused.
       */
      const whenVerified = (
        key: LocalClient["key"],
        frame: SignedData,
        opened: OpenedSignedData,
        accepted: () => void
      ) => {
        const ck = counterKey(key.fingerprint)
        if (!counters.fresh(ck, frame.counter))
          return refuse(replayReason(frame.counter, counters.lastOf(ck)), "replay")
        const valid = verifySigned(key, opened.dataText, frame.counter, frame.signature)
        const apply = (sharedLast: number) => {
          if (!valid) return refuse("signature does not verify with your key", "bad_signature")
          if (!counters.commit(ck, frame.counter))
            return refuse(replayReason(frame.counter, counters.lastOf(ck)), "replay")
          if (frame.counter <= sharedLast) return refuse(replayReason(frame.counter, sharedLast), "replay")
          accepted()
        }
        if (valid && ctx.sharedCounters) work.then(sharedLast(key.fingerprint, frame.counter), apply)
        else work.after(() => apply(-1))
      }

      const hello = (frame: SignedData, opened: OpenedSignedData, content: HelloData) =>
        Effect.gen(function* () {
          const key = yield* Effect.promise(() => importPublicPem(content.public_key))
          if (typeof key === "string") return refuse(`hello refused: ${key}`, "bad_key")
          const current = state
          if (current.kind === "client" && current.client.key.fingerprint !== key.fingerprint) {
            return refuse("this connection already said hello with another key", "second_hello")
          }
          const variants = yield* Effect.promise(() => fingerprintVariants(key.spki, content.public_key))
          if (!verifiedNow(key, frame, opened)) return
          const last = yield* Effect.promise(() => sharedLast(key.fingerprint, frame.counter))
          if (frame.counter <= last) return refuse(replayReason(frame.counter, last), "replay")
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
          ctx.clientsChanged()
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
          // One link per neighbour for the whole server name: another node holds it, so the neighbour re-dials.
          if (ctx.holdsLink && !(yield* ctx.holdsLink(neighbour))) {
            refuse("another node of this server holds its link to you; dial again", "link_elsewhere")
            return connection.close(CloseCodes.tryAgainLater, "link held by another node of this server")
          }
          if (!connection.isOpen() || (state as State).kind === "server") return
          const channel: Channel = {
            send: (frame) => void connection.send(frame),
            close: (code, reason) => connection.close(code, reason),
            direction: "inbound",
            work
          }
          state = { kind: "server", neighbour, channel }
          mesh.channelUp(neighbour, channel)?.close(CloseCodes.replaced, "replaced by a newer connection")
          ctx.linkOpened(neighbour, "inbound")
          for (const greeting of yield* linkGreeting(ctx)) connection.send(greeting)
          yield* Effect.logInfo(`neighbour ${neighbour.address} connected (inbound)`)
        })

      const clientChat = (client: LocalClient, frame: SignedData, opened: OpenedSignedData, content: ChatData) =>
        whenVerified(client.key, frame, opened, () => {
          const out = encodeSignedData(opened.dataText, frame.counter, frame.signature)
          ctx.flushClientUpdate()
          const unreachable: Array<string> = []
          let local = false
          for (const destination of new Set(content.destination_servers)) {
            if (mesh.isOwnAddress(destination)) local = true
            else if (!mesh.sendTo(destination, out, client.key.fingerprint)) unreachable.push(destination)
          }
          ctx.relayed.add(frame.signature)
          if (local) rooms.publish(room, out, connection)
          ctx.routed("chat")
          if (unreachable.length > 0) {
            refuse(
              `chat not delivered to ${unreachable
                .slice(0, 4)
                .map((d) => preview(d))
                .join(", ")}: unknown or disconnected server`,
              "unreachable"
            )
          }
        })

      const clientPublicChat = (
        client: LocalClient,
        frame: SignedData,
        opened: OpenedSignedData,
        content: PublicChatData
      ) => {
        if (!client.variants.includes(content.sender))
          return refuse("public_chat sender must be your own fingerprint", "wrong_sender")
        if (content.message.length > limits.maxPublicMessageChars) {
          return refuse(`public_chat message longer than ${limits.maxPublicMessageChars} characters`, "too_long")
        }
        whenVerified(client.key, frame, opened, () => {
          const out = encodeSignedData(opened.dataText, frame.counter, frame.signature)
          rooms.publish(room, out, connection)
          ctx.flushClientUpdate()
          mesh.broadcast(out, client.key.fingerprint)
          ctx.routed("public_chat")
        })
      }

      /** Hellos change the connection's state: they wait for earlier work and run alone. */
      const afterEarlierWork = (effect: Effect.Effect<void>) =>
        work.busy ? Effect.promise(() => work.idle()).pipe(Effect.zipRight(effect)) : effect

      const fromUnidentified = (frame: Frame): Effect.Effect<void> | void => {
        const current = state
        switch (frame.type) {
          case "signed_data": {
            const opened = openSignedData(frame)
            if (Either.isLeft(opened)) return refuse(`data is not a v1.2 message: ${opened.left}`, "bad_data")
            const { content } = opened.right
            if (content.type === "hello") return afterEarlierWork(hello(frame, opened.right, content))
            if (content.type === "server_hello") {
              return current.kind === "pending"
                ? afterEarlierWork(serverHello(frame, opened.right, content))
                : refuse("server_hello from a client", "not_allowed")
            }
            if (current.kind !== "client") return refuse(`say hello before sending ${content.type}`, "no_hello")
            return content.type === "chat"
              ? clientChat(current.client, frame, opened.right, content)
              : clientPublicChat(current.client, frame, opened.right, content)
          }
          case "client_list_request":
            return work.after(() => void connection.send(mesh.clientListFrame()))
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
          if (Either.isLeft(parsed))
            return ctx.warn(`neighbour ${current.neighbour.address} sent an invalid frame: ${parsed.left}`)
          return throttled(
            current.channel.work,
            handleNeighbourFrame(ctx, current.neighbour, current.channel, parsed.right)
          )
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
        return throttled(work, fromUnidentified(parsed.right))
      }

      return { onMessage }
    })

  const upgrade = (_request: Request, info: UpgradeInfo) =>
    Effect.sync(() => {
      if (ctx.admitConnection(info.remoteAddress, Date.now())) return accept(undefined)
      ctx.refused("connection_rate")
      return reject(429, "too many connections from this address; try again later", { "retry-after": "10" })
    })

  return { upgrade, open }
}
