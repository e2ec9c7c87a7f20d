import { Effect, Either, Option } from "effect"
import { preview } from "../shared/ClientText.ts"
import { lastOrdinary, stampOrdinary } from "./FastEnvelope.ts"
import { type Audience, isTaskMessage, route, validLoginKey, validUnitName } from "./Routing.ts"
import type { Tasks } from "./Tasks.ts"
import type { UdpProxyService } from "./UdpProxy.ts"
import { answerUdpProxy } from "./UdpProxyMessage.ts"
import {
  encodeBinaryFrame,
  encodeBinaryText,
  type Envelope,
  errorReply,
  parseFrame,
  type RelayErrorReason,
  splitBinaryFrame,
  SystemMessage,
  type SystemOutcome,
  welcome
} from "./Wire.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import type { UnitGrant } from "./AuthLink.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import type { LoginKeys } from "./LoginKeys.ts"
import {
  accept,
  type Connection,
  type ConnectionHandler,
  type OpenedNow,
  reject,
  type UpgradeDecision,
  type WebSocketProtocol,
  type WireMessage
} from "../../layers/Transport/Transport.ts"
import { InstanceLimitReached, type Seat, type UnitMember, type UnitRoomsService } from "./UnitRooms.ts"

/** A unit's sd and p as JSON texts, stamped into each message it sends. */
interface Stamp {
  sd: string
  p: string
}

/**
 * A unit's connection state: what the upgrade knows (the unit as its login key and URL define it), then, once
 * open, its seat and stamp. Kept here rather than in closures, so one handler serves every unit.
 */
export interface UnitConnection extends Stamp {
  readonly member: UnitMember
  readonly instanceLimit: number
  /** Set once the unit is in its rooms; undefined before, or when it was refused at open. */
  seat: Seat | undefined
}

/** The state of a unit that is not open yet; every field present from the start (one object shape for all units). */
export const unitConnection = (member: UnitMember, instanceLimit: number): UnitConnection => ({
  member,
  instanceLimit,
  seat: undefined,
  sd: "",
  p: ""
})

/** Marks the unit open in `seat`; its stamp is made at its first message (an idle unit never needs the two strings). */
const seated = (data: UnitConnection, seat: Seat): void => {
  data.seat = seat
}

/** What the unit's messages are stamped with, from its member. */
const stampOf = (data: UnitConnection): Stamp => {
  if (data.sd === "") {
    data.sd = JSON.stringify(data.member.unitName)
    data.p = JSON.stringify(data.member.permission)
  }
  return data
}

/** The handler of a unit refused at open (its connection is closing). */
const ignoring = { onMessage: () => {} }

export interface RelayProtocolOptions {
  readonly serverName: string
  readonly keys: LoginKeys<UnitGrant>
  readonly rooms: UnitRoomsService
  /** Called once a unit's connection is gone (the authenticator is told with LOGOUT). */
  readonly onLeft: (member: UnitMember) => void
  /** 9008 (agents only); absent: answered udp-proxy-unavailable. */
  readonly udpProxy?: UdpProxyService | undefined
  /** 9001-9004; absent: answered tasks-unavailable. */
  readonly tasks?: Tasks | undefined
}

/**
 * The relay's client WebSocket: ws(s)://host:port/?f=<login key>&s=<unit name>. The key is
 * consumed at upgrade; the unit's account, group, actor type and permission come from it, never
 * from the client. Every message is decoded, stamped with sd (the unit's own name) and p (its
 * permission), and routed by the original's rules; anything else gets an error reply.
 */
export const makeRelayProtocol = (options: RelayProtocolOptions) =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    const errors = metrics.counter(
      "switchboard_de_client_errors_total",
      "Client messages answered with an error reply",
      ["server", "reason"]
    )
    const refusals = metrics.counter("switchboard_de_connect_refused_total", "Refused client connects", [
      "server",
      "reason"
    ])
    const { rooms, keys } = options

    const refuse = (status: number, reason: string, label: string) => {
      refusals.labels({ server: options.serverName, reason: label }).inc()
      return reject(status, reason)
    }

    /** The URL's key and unit name, or the refusal when either is malformed. */
    const readUrl = (url: URL): { key: string; unitName: string } | UpgradeDecision<UnitConnection> => {
      const key = url.searchParams.get("f") ?? ""
      const unitName = url.searchParams.get("s") ?? ""
      if (!validLoginKey(key)) return refuse(401, "login key f is missing or malformed", "bad-key")
      if (!validUnitName(unitName)) return refuse(400, "unit name s is missing, reserved or invalid", "bad-unit-name")
      return { key, unitName }
    }

    const admit = (grant: Option.Option<UnitGrant>, unitName: string): UpgradeDecision<UnitConnection> => {
      if (Option.isNone(grant)) return refuse(401, "login key is unknown, already used or expired", "key-refused")
      const { a, b, at, prm, r, il, an } = grant.value
      const member: UnitMember = {
        accountId: a,
        group: b,
        unitName,
        actorType: at,
        permission: prm,
        requestId: r,
        accountName: an
      }
      if (!rooms.admits(member, il)) return refuse(403, "the account's instance limit is reached", "instance-limit")
      return accept(unitConnection(member, il))
    }

    const protocol: WebSocketProtocol<UnitConnection> = {
      upgrade: (_request, { url }) => {
        const asked = readUrl(url)
        if ("_tag" in asked) return Effect.succeed(asked)
        const { key, unitName } = asked
        // A token store in memory answers on the spot: the decision is a plain value and needs no fiber.
        if (keys.consumeNow) return Effect.succeed(admit(keys.consumeNow(key), unitName))
        return keys.consume(key).pipe(
          Effect.map((grant) => admit(grant, unitName)),
          // The unit logs in again once the store is back (whether this key was used up is not known).
          Effect.catchTag("TokenStoreUnavailable", (error) =>
            Effect.as(
              Effect.logWarning("unit connect refused: login key store unavailable", error.reason),
              refuse(503, "login key store unavailable, try again later", "key-store-unavailable")
            )
          )
        )
      },

      open: (connection) =>
        Effect.gen(function* () {
          const { member, instanceLimit } = connection.data
          // Welcome first, so it is always the unit's first frame, before any room traffic.
          connection.send(welcome(connection.remoteAddress))
          const entered = yield* Effect.either(rooms.enter(member, connection, instanceLimit))
          if (Either.isLeft(entered)) {
            // Another connect of this account won the race for the last slot.
            connection.close(CloseCodes.forbidden, "instance limit reached")
            return ignoring
          }
          const seat = entered.right
          seated(connection.data, seat)
          // An agent's UDP proxy pair outlives a dropped connection for the grace period only.
          proxyOf(member)?.unitEntered(member)
          // LOGOUT goes out before the leave reaches the rooms, so it always precedes the INFO the leave causes.
          yield* Effect.addFinalizer(() => Effect.sync(() => left(member)).pipe(Effect.zipRight(rooms.exit(seat))))
          return units
        }),

      // The same as open, on the spot, when the rooms need nothing asynchronous (a single node).
      openNow: (connection) => {
        const { member, instanceLimit } = connection.data
        const entered = rooms.enterNow(member, connection, instanceLimit)
        if (entered === undefined) return undefined
        // Nothing can reach the unit's rooms before this returns, so the welcome is still its first frame.
        connection.send(welcome(connection.remoteAddress))
        if (entered instanceof InstanceLimitReached) {
          connection.close(CloseCodes.forbidden, "instance limit reached")
          return ignoring
        }
        seated(connection.data, entered)
        proxyOf(member)?.unitEntered(member)
        return unitsNow
      }
    }

    /** An agent's UDP proxy pair; other units have none. */
    const proxyOf = (member: UnitMember) => (member.actorType === "d" ? options.udpProxy : undefined)

    const left = (member: UnitMember) => {
      proxyOf(member)?.unitLeft(member)
      options.onLeft(member)
    }

    /** One handler for every open unit: its seat and stamp are in the connection's data. */
    const units: ConnectionHandler<never, UnitConnection> = {
      onMessage: (message, connection) => {
        const { seat } = connection.data
        if (seat !== undefined) return handle(seat, stampOf(connection.data), connection, message)
      }
    }

    /** The same, with the cleanup of a unit opened by openNow. */
    const unitsNow: OpenedNow<never, UnitConnection> = {
      onMessage: units.onMessage,
      onClose: (connection) => {
        const { seat, member } = connection.data
        if (seat === undefined) return
        left(member)
        if (!rooms.exitNow(seat)) return rooms.exit(seat)
      }
    }

    const fail = (
      connection: Connection<unknown>,
      reason: RelayErrorReason,
      text: string,
      type?: number | string
    ): void => {
      errors.labels({ server: options.serverName, reason }).inc()
      connection.send(errorReply(reason, text, type))
    }

    /** The envelope as forwarded: the relay's sd and p replace whatever the client sent. */
    const stamped = (envelope: Envelope, member: UnitMember) => ({
      ...envelope,
      sd: member.unitName,
      p: member.permission
    })

    /** System messages; only leaving the group needs asynchronous work (the rooms). */
    const system = (seat: Seat, connection: Connection<unknown>, envelope: Envelope): Effect.Effect<void> | void => {
      const { member } = seat
      const reply = (s: string) => {
        const ms =
          envelope.ms !== null && typeof envelope.ms === "object" && !Array.isArray(envelope.ms) ? envelope.ms : {}
        connection.send(JSON.stringify({ ...stamped(envelope, member), ms: { ...ms, s } }))
      }
      const type = envelope.mt
      if (type === SystemMessage.ping) return reply("OK:pong")
      if (type === SystemMessage.leaveGroup)
        return Effect.zipRight(
          rooms.leaveGroup(seat),
          Effect.sync(() => reply("OK:dell"))
        )
      const answer = (outcome: SystemOutcome) => {
        if (outcome._tag !== "Replies") return fail(connection, outcome.reason, outcome.text, type)
        for (const frame of outcome.frames) connection.send(frame)
      }
      if (isTaskMessage(type)) {
        return options.tasks
          ? Effect.map(options.tasks.handle(member, envelope), answer)
          : fail(connection, "tasks-unavailable", "this relay does not store tasks", type)
      }
      if (type === SystemMessage.udpProxy) {
        if (member.actorType !== "d")
          return fail(connection, "agents-only", "only agents may request a UDP proxy", type)
        return options.udpProxy
          ? Effect.map(answerUdpProxy(options.udpProxy, member, envelope), answer)
          : fail(connection, "udp-proxy-unavailable", "this relay offers no UDP proxy", type)
      }
      return fail(connection, "unknown-system-message", `unknown system message type ${preview(type)}`, type)
    }

    const deliver = (
      seat: Seat,
      connection: Connection<unknown>,
      audience: Audience,
      out: string | Uint8Array,
      type: number | string
    ) => {
      const result = rooms.deliver(seat, audience, out)
      if (result._tag === "NotInGroup")
        return fail(connection, "not-in-group", "this unit left its group (9006); reconnect to rejoin", type)
      if (result._tag === "TargetNotFound") {
        return fail(connection, "target-not-found", `no unit named ${preview(result.unitName)} in this group`, type)
      }
    }

    /** An ordinary message in its printed form is stamped by splicing (FastEnvelope.ts); the rest is decoded. */
    const handleOrdinary = (
      seat: Seat,
      stamp: Stamp,
      connection: Connection<unknown>,
      message: WireMessage
    ): boolean => {
      let out: string | Uint8Array | undefined
      if (typeof message === "string") out = stampOrdinary(message, stamp.sd, stamp.p)
      else {
        const split = splitBinaryFrame(message)
        const header = split === undefined ? undefined : stampOrdinary(split.header, stamp.sd, stamp.p)
        if (header !== undefined) out = encodeBinaryText(header, split!.body)
      }
      if (out === undefined) return false
      const decision = route(seat.member.actorType, lastOrdinary)
      if (decision._tag === "Deliver") deliver(seat, connection, decision.audience, out, lastOrdinary.mt)
      return true
    }

    /** One client message, handled synchronously except for the rare system message that is not. */
    const handle = (
      seat: Seat,
      stamp: Stamp,
      connection: Connection<unknown>,
      message: WireMessage
    ): Effect.Effect<void> | void => {
      if (handleOrdinary(seat, stamp, connection, message)) return
      const parsed = parseFrame(message)
      if (Either.isLeft(parsed)) return fail(connection, "malformed", parsed.left.reason)
      const frame = parsed.right
      const { envelope } = frame
      const decision = route(seat.member.actorType, envelope)
      if (decision._tag === "System") return system(seat, connection, envelope)
      const header = stamped(envelope, seat.member)
      const out = frame._tag === "Text" ? JSON.stringify(header) : encodeBinaryFrame(header, frame.body)
      return deliver(seat, connection, decision.audience, out, envelope.mt)
    }

    return protocol
  })
