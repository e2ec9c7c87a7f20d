import { Deferred, Effect, Fiber } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { accept, type Connection, type WebSocketProtocol } from "../../layers/Transport/Transport.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import { ConnectionLimiter } from "../shared/RateLimiter.ts"
import type { ChatLimits } from "./Config.ts"
import { storedLinePrefix } from "./HistoryText.ts"
import type { ChatIdentity } from "./Identity.ts"
import { encodePacket, frameUid, newMessageText, SERVER_PUSH_UID } from "./Packet.ts"
import type { ChatRoomsApi, Member } from "./Rooms.ts"
import { errorReasonName, errorReply, ErrorReason, interpret, type Level, okReply } from "./Rules.ts"

/** Close reasons the client sees with 4005 and 4006 (documented in docs/chat.md). */
export const chatCloseReason = {
  noNick: "handshake timeout: no nick accepted in time",
  noRoom: "handshake timeout: no room joined in time",
  flooding: "rate limited: too many packets",
  nickLost: "nick taken on another node while this one was cut off"
} as const

/**
 * The tPacket protocol on one connection: trust levels (magic packet, then nick, then a room
 * within the join timeout), a per-connection packet budget, then room commands.
 */
export const makeChatProtocol = (
  rooms: ChatRoomsApi,
  identity: ChatIdentity,
  limits: ChatLimits,
  serverName: string
): Effect.Effect<WebSocketProtocol<undefined>, never, Metrics> =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    const refusals = metrics.counter(
      "switchboard_chat_errors_total",
      "_RESP_ERROR replies and protocol closes by reason",
      ["server", "reason"]
    )
    const count = (reason: string) => refusals.labels({ server: serverName, reason }).inc()
    const rate = {
      ratePerSecond: limits.messagesPerSecond,
      burst: limits.messageBurst,
      strikes: limits.rateLimitStrikes
    }

    const open = (connection: Connection<undefined>) =>
      Effect.gen(function* () {
        const clock = yield* Effect.clock
        const userId = yield* identity.nextUserId
        const limiter = new ConnectionLimiter(rate, clock.unsafeCurrentTimeMillis())
        let level: Level = "awaitMagic"
        let inRoom = false
        let member: Member | undefined

        // One timer per connection, only until it is in a room: a nick in time, then a room in time.
        const nickAccepted = yield* Deferred.make<void>()
        const timer = yield* Effect.forkScoped(
          Effect.gen(function* () {
            const nick = yield* Deferred.await(nickAccepted).pipe(
              Effect.timeoutTo({ duration: limits.handshakeTimeout, onSuccess: () => true, onTimeout: () => false })
            )
            if (!nick) {
              count("handshake_timeout")
              return connection.close(CloseCodes.handshakeTimeout, chatCloseReason.noNick)
            }
            yield* Effect.sleep(limits.joinTimeout)
            if (inRoom) return
            count("join_timeout")
            connection.close(CloseCodes.handshakeTimeout, chatCloseReason.noRoom)
          })
        )
        yield* Effect.addFinalizer(() =>
          member === undefined
            ? Effect.void
            : rooms.leave(member).pipe(Effect.ensuring(identity.releaseNick(member.nick)))
        )

        const refuse = (uid: number, reason: ErrorReason) => {
          count(errorReasonName[reason])
          connection.send(encodePacket(errorReply(uid, reason)))
        }

        const onMessage = (message: string | Uint8Array): Effect.Effect<void> | void => {
          const admission = limiter.admit(clock.unsafeCurrentTimeMillis())
          if (admission !== "ok") {
            if (admission === "abusive") {
              count("rate_limit_close")
              return connection.close(CloseCodes.rateLimited, chatCloseReason.flooding)
            }
            return refuse(typeof message === "string" ? SERVER_PUSH_UID : frameUid(message), ErrorReason.rateLimited)
          }
          if (inRoom && typeof message !== "string") {
            // The hot path: a chat message is read from the frame's header; anything else is interpreted in full.
            const text = newMessageText(message, limits.maxMessageBytes)
            if (text !== undefined) return rooms.message(member!, text)
          }
          const step = interpret({ level, inRoom }, message, limits)
          switch (step._tag) {
            case "Close":
              if (!connection.isOpen()) return
              count("bad_handshake")
              return connection.close(CloseCodes.badRequest, step.reason)
            case "MagicAccepted":
              level = "awaitNick"
              return
            case "Ignore":
              return
            case "Refuse":
              return refuse(step.reply.uid, step.reason)
            case "SetNick": {
              const nick = new Uint8Array(step.nick)
              const lost = Effect.sync(() => connection.close(CloseCodes.replaced, chatCloseReason.nickLost))
              // Not interrupted halfway: a nick the broker granted is either this connection's or released.
              return Effect.uninterruptible(
                Effect.flatMap(identity.claimNick(nick, lost), (claimed) => {
                  if (!claimed) return Effect.sync(() => refuse(step.uid, ErrorReason.refused))
                  if (!connection.isOpen()) return identity.releaseNick(nick)
                  return Effect.sync(() => {
                    member = { id: userId, nick, connection, linePrefix: storedLinePrefix(nick) }
                    level = "ready"
                    Deferred.unsafeDone(nickAccepted, Effect.void)
                    connection.send(encodePacket(okReply(step.uid)))
                  })
                })
              )
            }
            case "SetRoom":
              return rooms.join(member!, new Uint8Array(step.room), step.uid).pipe(
                Effect.flatMap((problem) => {
                  if (problem !== undefined) return Effect.sync(() => refuse(step.uid, problem))
                  inRoom = true
                  // In a room: nothing left to time out, and no fiber kept for it.
                  return Fiber.interrupt(timer)
                }),
                Effect.asVoid
              )
            case "Message":
              return rooms.message(member!, step.text)
          }
        }
        return { onMessage }
      })

    return { upgrade: () => Effect.succeed(accept(undefined)), open }
  })
