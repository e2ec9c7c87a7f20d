import { Effect } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { accept, type Connection, type WebSocketProtocol } from "../../layers/Transport/Transport.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import type { ChatLimits } from "./Config.ts"
import { encodePacket } from "./Packet.ts"
import type { ChatRoomsApi, Member } from "./Rooms.ts"
import { errorReasonName, errorReply, ErrorReason, interpret, type Level, okReply } from "./Rules.ts"

/** The tPacket protocol on one connection: trust levels (magic packet, then nick), then room commands. */
export const makeChatProtocol = (
  rooms: ChatRoomsApi,
  limits: ChatLimits,
  serverName: string
): Effect.Effect<WebSocketProtocol<undefined>, never, Metrics> =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    const refusals = metrics.counter("switchboard_chat_errors_total", "_RESP_ERROR replies and handshake closes by reason", ["server", "reason"])
    const count = (reason: string) => refusals.labels({ server: serverName, reason }).inc()

    const open = (connection: Connection<undefined>) =>
      Effect.gen(function* () {
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

        const onMessage = (message: string | Uint8Array): Effect.Effect<void> | void => {
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
              if (!rooms.claimNick(nick)) return refuse(step.uid, ErrorReason.refused)
              member = { id: userId, nick, connection }
              level = "ready"
              connection.send(encodePacket(okReply(step.uid)))
              return
            }
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
