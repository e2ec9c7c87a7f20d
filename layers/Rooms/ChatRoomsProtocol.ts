import { Deferred, Effect } from "effect"
import type { ChatLimits } from "../../src/tpacket/ChatConfig.ts"
import { encodePacket } from "../../src/tpacket/Packet.ts"
import { errorReasonName, errorReply, ErrorReason, interpret, type Level, okReply } from "../../src/tpacket/Rules.ts"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { Metrics } from "../Observability/Metrics.ts"
import { accept, type Connection, type ServerHandle, type WebSocketProtocol } from "../Transport/Transport.ts"
import type { ChatRoomsApi, Member } from "./ChatRooms.ts"

/**
 * The tPacket protocol on one connection: trust levels (magic packet, then nick), then room
 * commands. `server` resolves once the transport listens; it carries the server-wide publish.
 */
export const makeChatProtocol = (
  rooms: ChatRoomsApi,
  limits: ChatLimits,
  server: Deferred.Deferred<ServerHandle>,
  serverName: string
): Effect.Effect<WebSocketProtocol<undefined>, never, Metrics> =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    const refusals = metrics.counter("switchboard_chat_errors_total", "_RESP_ERROR replies and handshake closes by reason", ["server", "reason"])
    const count = (reason: string) => refusals.labels({ server: serverName, reason }).inc()

    const open = (connection: Connection<undefined>) =>
      Effect.gen(function* () {
        const handle = yield* Deferred.await(server)
        const userId = rooms.nextUserId()
        let level: Level = "awaitMagic"
        let inRoom = false
        let member: Member | undefined

        yield* Effect.forkScoped(
          Effect.sleep(limits.handshakeTimeout).pipe(
            Effect.zipRight(Effect.sync(() => {
              if (level !== "ready") {
                count("handshake_timeout")
                connection.close(CloseCodes.handshakeTimeout)
              }
            }))
          )
        )
        yield* Effect.addFinalizer(() =>
          member === undefined
            ? Effect.void
            : rooms.leave(member).pipe(Effect.ensuring(Effect.sync(() => rooms.releaseNick(member!.nick))))
        )

        const refuse = (uid: number, reason: ErrorReason) => {
          count(errorReasonName[reason])
          connection.send(encodePacket(errorReply(uid, reason)))
        }

        const onMessage = (message: string | Uint8Array): Effect.Effect<void> => {
          const step = interpret({ level, inRoom }, message, limits)
          switch (step._tag) {
            case "Close":
              return Effect.sync(() => {
                if (!connection.isOpen()) return
                count("bad_handshake")
                connection.close(CloseCodes.badRequest, step.reason)
              })
            case "MagicAccepted":
              return Effect.sync(() => void (level = "awaitNick"))
            case "Ignore":
              return Effect.void
            case "Refuse":
              return Effect.sync(() => refuse(step.reply.uid, step.reason))
            case "SetNick":
              return Effect.sync(() => {
                const nick = new Uint8Array(step.nick)
                if (!rooms.claimNick(nick)) return refuse(step.uid, ErrorReason.refused)
                member = {
                  id: userId,
                  nick,
                  send: (frame) => void connection.send(frame),
                  subscribe: connection.subscribe,
                  unsubscribe: connection.unsubscribe,
                  publishToAll: (topic, frame) => void handle.publish(topic, frame)
                }
                level = "ready"
                connection.send(encodePacket(okReply(step.uid)))
              })
            case "SetRoom":
              return rooms.join(member!, new Uint8Array(step.room), step.uid).pipe(
                Effect.map((problem) => {
                  if (problem === undefined) inRoom = true
                  else refuse(step.uid, problem)
                })
              )
            case "Message":
              return rooms.message(member!, step.text)
          }
        }
        return { onMessage }
      })

    return { upgrade: () => Effect.succeed(accept(undefined)), open }
  })
