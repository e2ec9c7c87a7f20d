import { Context, Data, Effect, Layer, PubSub, type Queue, type Scope } from "effect"
import { type Audience, type RoomKey, topicFor, topicsOf } from "./Routing.ts"
import type { ActorType } from "./Wire.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import type { Connection, WireMessage } from "../../layers/Transport/Transport.ts"

/** A connected DroneEngage unit as the login grant and the connect URL define it. */
export interface UnitMember extends RoomKey {
  readonly unitName: string
  readonly actorType: ActorType
  readonly permission: number
  /** The authenticator's login request that admitted this unit (sent back on LOGOUT). */
  readonly requestId: string
  /** The account's name when the authenticator sent it (LOGIN `an`). */
  readonly accountName?: string | undefined
}

/** A unit's place: held from connect to disconnect; `inGroup` turns false after 9006 (leave group). */
export interface Seat {
  readonly member: UnitMember
  readonly connection: Connection<unknown>
  inGroup: boolean
}

export class InstanceLimitReached extends Data.TaggedError("InstanceLimitReached")<{
  readonly accountId: string
  readonly limit: number
}> {}

export type DeliveryResult =
  | { readonly _tag: "Delivered"; readonly recipients: number }
  | { readonly _tag: "NotInGroup" }
  | { readonly _tag: "TargetNotFound"; readonly unitName: string }

export type RoomChange = { readonly _tag: "Entered" | "Left"; readonly member: UnitMember }

const entered = (member: UnitMember): RoomChange => ({ _tag: "Entered", member })
const left = (member: UnitMember): RoomChange => ({ _tag: "Left", member })

export interface UnitPresence {
  readonly unitName: string
  readonly actorType: ActorType
}

/** What the relay reports to the authenticator in INFO. */
export interface RoomsSnapshot {
  readonly accounts: ReadonlyArray<string>
  readonly accountDetails: Record<string, ReadonlyArray<UnitPresence>>
}

/**
 * DroneEngage rooms: account → group → units. Delivery goes through native topics named by
 * account and group (src/droneengage/Routing.ts), so accounts never see each other and fan-out
 * is one publish per message. A federated implementation (Redis, NATS) keeps this interface:
 * it wraps the in-process one, forwards `deliver` to the bus with the room key and audience,
 * and republishes what other nodes send on the same local topics.
 */
export interface UnitRoomsService {
  /** True when the account may open one more unit (a same-name replacement does not count). */
  readonly admits: (member: UnitMember, instanceLimit: number) => boolean
  /**
   * Seats a unit: subscribes its topics. A unit of the same name in the same account is
   * replaced (its socket closes with 4004).
   */
  readonly enter: (member: UnitMember, connection: Connection<unknown>, instanceLimit: number) => Effect.Effect<Seat, InstanceLimitReached>
  /** 9006: the unit stays connected but leaves its group (no more deliveries either way). */
  readonly leaveGroup: (seat: Seat) => Effect.Effect<void>
  /** The unit disconnected; a no-op for a seat that was already replaced. */
  readonly exit: (seat: Seat) => Effect.Effect<void>
  /** Hot path: fan-out of one frame to an audience of the sender's room, never to the sender. */
  readonly deliver: (seat: Seat, audience: Audience, frame: WireMessage) => DeliveryResult
  readonly presence: (room: RoomKey) => Effect.Effect<ReadonlyArray<UnitPresence>>
  readonly snapshot: Effect.Effect<RoomsSnapshot>
  /** Joins and leaves, for as long as the caller's Scope lives. */
  readonly changes: Effect.Effect<Queue.Dequeue<RoomChange>, never, Scope.Scope>
}

export class UnitRooms extends Context.Tag("switchboard/droneengage/UnitRooms")<UnitRooms, UnitRoomsService>() {}

interface Room {
  readonly units: Map<string, Seat>
  gcs: number
  agents: number
}

const roomId = (key: RoomKey) => JSON.stringify([key.accountId, key.group])

/** Rooms of one process. `serverName` labels the metrics. */
export const makeInProcessUnitRooms = (serverName: string) =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    const deliveries = metrics
      .counter("switchboard_de_deliveries_total", "Messages handed to a recipient unit by room fan-out", ["server"])
      .labels({ server: serverName })
    const routed = metrics.counter("switchboard_de_routed_total", "Messages routed by audience", ["server", "audience"])
    const routedBy = {
      Everyone: routed.labels({ server: serverName, audience: "everyone" }),
      Gcs: routed.labels({ server: serverName, audience: "gcs" }),
      Agents: routed.labels({ server: serverName, audience: "agents" }),
      Unit: routed.labels({ server: serverName, audience: "unit" })
    }
    const unitsGauge = metrics.gauge("switchboard_de_units", "Units seated in rooms", ["server"]).labels({ server: serverName })
    const changes = yield* PubSub.unbounded<RoomChange>()

    /** accountId → unitName → seat: unit names are unique per account. */
    const accounts = new Map<string, Map<string, Seat>>()
    const rooms = new Map<string, Room>()

    const addToRoom = (seat: Seat) => {
      const id = roomId(seat.member)
      let room = rooms.get(id)
      if (!room) rooms.set(id, (room = { units: new Map(), gcs: 0, agents: 0 }))
      room.units.set(seat.member.unitName, seat)
      if (seat.member.actorType === "g") room.gcs++
      else room.agents++
      for (const topic of topicsOf(seat.member, seat.member.actorType, seat.member.unitName)) seat.connection.subscribe(topic)
    }

    const removeFromRoom = (seat: Seat) => {
      if (!seat.inGroup) return
      seat.inGroup = false
      for (const topic of topicsOf(seat.member, seat.member.actorType, seat.member.unitName)) seat.connection.unsubscribe(topic)
      const id = roomId(seat.member)
      const room = rooms.get(id)
      if (!room || room.units.get(seat.member.unitName) !== seat) return
      room.units.delete(seat.member.unitName)
      if (seat.member.actorType === "g") room.gcs--
      else room.agents--
      if (room.units.size === 0) rooms.delete(id)
    }

    const removeSeat = (seat: Seat) => {
      const units = accounts.get(seat.member.accountId)
      if (!units || units.get(seat.member.unitName) !== seat) return false
      removeFromRoom(seat)
      units.delete(seat.member.unitName)
      if (units.size === 0) accounts.delete(seat.member.accountId)
      unitsGauge.dec()
      return true
    }

    const admits = (member: UnitMember, instanceLimit: number) => {
      if (instanceLimit <= 0) return true
      const units = accounts.get(member.accountId)
      if (!units) return true
      return units.size - (units.has(member.unitName) ? 1 : 0) < instanceLimit
    }

    const recipients = (seat: Seat, room: Room, audience: Audience): DeliveryResult => {
      const self = seat.member.actorType
      switch (audience._tag) {
        case "Everyone":
          return { _tag: "Delivered", recipients: room.gcs + room.agents - 1 }
        case "Gcs":
          return { _tag: "Delivered", recipients: room.gcs - (self === "g" ? 1 : 0) }
        case "Agents":
          return { _tag: "Delivered", recipients: room.agents - (self === "d" ? 1 : 0) }
        case "Unit":
          if (!room.units.has(audience.unitName)) return { _tag: "TargetNotFound", unitName: audience.unitName }
          return { _tag: "Delivered", recipients: audience.unitName === seat.member.unitName ? 0 : 1 }
      }
    }

    const service: UnitRoomsService = {
      admits,
      enter: (member, connection, instanceLimit) =>
        Effect.gen(function* () {
          if (!admits(member, instanceLimit)) return yield* new InstanceLimitReached({ accountId: member.accountId, limit: instanceLimit })
          let units = accounts.get(member.accountId)
          if (!units) accounts.set(member.accountId, (units = new Map()))
          const previous = units.get(member.unitName)
          if (previous) {
            removeSeat(previous)
            previous.connection.close(CloseCodes.replaced)
            yield* PubSub.publish(changes, left(previous.member))
          }
          const seat: Seat = { member, connection, inGroup: true }
          // removeSeat may have dropped the account's map when it held only the replaced unit.
          if (!accounts.has(member.accountId)) accounts.set(member.accountId, units)
          units.set(member.unitName, seat)
          unitsGauge.inc()
          addToRoom(seat)
          yield* PubSub.publish(changes, entered(member))
          return seat
        }),
      leaveGroup: (seat) => Effect.sync(() => removeFromRoom(seat)),
      exit: (seat) =>
        Effect.suspend(() => (removeSeat(seat) ? PubSub.publish(changes, left(seat.member)) : Effect.void)).pipe(
          Effect.asVoid
        ),
      deliver: (seat, audience, frame) => {
        if (!seat.inGroup) return { _tag: "NotInGroup" }
        const room = rooms.get(roomId(seat.member))
        if (!room) return { _tag: "NotInGroup" }
        const result = recipients(seat, room, audience)
        if (result._tag !== "Delivered") return result
        routedBy[audience._tag].inc()
        if (result.recipients > 0) {
          seat.connection.publish(topicFor(seat.member, audience), frame)
          deliveries.inc(result.recipients)
        }
        return result
      },
      presence: (room) =>
        Effect.sync(() =>
          [...(rooms.get(roomId(room))?.units.values() ?? [])].map((seat) => ({
            unitName: seat.member.unitName,
            actorType: seat.member.actorType
          }))
        ),
      snapshot: Effect.sync(() => {
        const accountDetails: Record<string, Array<UnitPresence>> = {}
        for (const [accountId, units] of accounts) {
          accountDetails[accountId] = [...units.values()].map((seat) => ({ unitName: seat.member.unitName, actorType: seat.member.actorType }))
        }
        return { accounts: [...accounts.keys()], accountDetails }
      }),
      changes: PubSub.subscribe(changes)
    }
    return service
  })

export const InProcessUnitRooms = (serverName: string) => Layer.effect(UnitRooms, makeInProcessUnitRooms(serverName))

