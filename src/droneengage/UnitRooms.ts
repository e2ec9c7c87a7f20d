import { Context, Data, Effect, Layer, Option, Queue, type Scope } from "effect"
import { type Claim, Claims } from "../../layers/Cluster/Claims.ts"
import { Rooms, type RoomsService } from "../../layers/Rooms/Rooms.ts"
import { type Audience, type RoomKey, roomPrefix, unitRoom } from "./Routing.ts"
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
  /** Its group's room names, so delivery builds no string except for a unit target. */
  readonly rooms: GroupRooms
}

/** The room names of one group, shared by its seats: four strings per unit were ~220 bytes of an idle connection. */
export interface GroupRooms {
  readonly prefix: string
  readonly everyone: string
  readonly gcs: string
  readonly agents: string
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
 * DroneEngage rooms: account → group → units, on the generic Rooms Tag. A unit joins the rooms of
 * everyone in its group and of its actor type (and, in a cluster, its own) named by account and group
 * (Routing.ts), so accounts never see each other and fan-out is one Rooms publish per message. The audience
 * matrix, instance limits and same-name replacement are DroneEngage's and stay here; a
 * multi-node Rooms implementation carries the same rooms across nodes.
 */
export interface UnitRoomsService {
  /** True when the account may open one more unit (a same-name replacement does not count). */
  readonly admits: (member: UnitMember, instanceLimit: number) => boolean
  /**
   * Seats a unit: subscribes its topics. A unit of the same name in the same account is
   * replaced (its socket closes with 4004).
   */
  readonly enter: (
    member: UnitMember,
    connection: Connection<unknown>,
    instanceLimit: number
  ) => Effect.Effect<Seat, InstanceLimitReached>
  /** 9006: the unit stays connected but leaves its group (no more deliveries either way). */
  readonly leaveGroup: (seat: Seat) => Effect.Effect<void>
  /** The unit disconnected; a no-op for a seat that was already replaced. */
  readonly exit: (seat: Seat) => Effect.Effect<void>
  /**
   * `enter` done on the spot, without a fiber, when the rooms need nothing asynchronous (single node, no
   * listener on the generic rooms); undefined when they do, decided before anything is done: use `enter`.
   */
  readonly enterNow: (
    member: UnitMember,
    connection: Connection<unknown>,
    instanceLimit: number
  ) => Seat | InstanceLimitReached | undefined
  /** `exit` done on the spot when nothing asynchronous is needed (true); false: nothing was done, use `exit`. */
  readonly exitNow: (seat: Seat) => boolean
  /** Hot path: fan-out of one frame to an audience of the sender's room, never to the sender. */
  readonly deliver: (seat: Seat, audience: Audience, frame: WireMessage) => DeliveryResult
  readonly presence: (room: RoomKey) => Effect.Effect<ReadonlyArray<UnitPresence>>
  readonly snapshot: Effect.Effect<RoomsSnapshot>
  /** Joins and leaves, for as long as the caller's Scope lives. */
  readonly changes: Effect.Effect<Queue.Dequeue<RoomChange>, never, Scope.Scope>
  /**
   * Calls `changed` on the spot after every join or leave, for as long as the caller's Scope lives: for a
   * listener that only needs to know that something changed (INFO sends the whole state), without a queue.
   */
  readonly onChange: (changed: () => void) => Effect.Effect<void, never, Scope.Scope>
}

export class UnitRooms extends Context.Tag("switchboard/droneengage/UnitRooms")<UnitRooms, UnitRoomsService>() {}

/** Each group's names while any seat holds them; a group nobody holds any more is forgotten after a GC. */
const groupRooms = new Map<string, WeakRef<GroupRooms>>()
const forgetGroup = new FinalizationRegistry<string>((prefix) => {
  if (groupRooms.get(prefix)?.deref() === undefined) groupRooms.delete(prefix)
})

const groupRoomsOf = (prefix: string): GroupRooms => {
  let names = groupRooms.get(prefix)?.deref()
  if (names === undefined) {
    names = { prefix, everyone: `${prefix}all`, gcs: `${prefix}gcs`, agents: `${prefix}agents` }
    groupRooms.set(prefix, new WeakRef(names))
    forgetGroup.register(names, prefix)
  }
  return names
}

const seatOf = (member: UnitMember, connection: Connection<unknown>): Seat => ({
  member,
  connection,
  inGroup: true,
  rooms: groupRoomsOf(roomPrefix(member))
})

/** Unit rooms over the Rooms Tag. `serverName` labels the metrics. */
export const makeUnitRooms = (serverName: string) =>
  Effect.gen(function* () {
    const rooms: RoomsService = yield* Rooms
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
    const unitsGauge = metrics
      .gauge("switchboard_de_units", "Units seated in rooms", ["server"])
      .labels({ server: serverName })
    // One queue per listener, offered to synchronously, so a join or leave needs no fiber to announce itself.
    const listeners = new Set<Queue.Queue<RoomChange>>()
    // Listeners that only need to know that something changed: no change object, no queue.
    const changedListeners = new Set<() => void>()
    const announce = (tag: RoomChange["_tag"], member: UnitMember) => {
      for (const changed of changedListeners) changed()
      if (listeners.size === 0) return
      const change: RoomChange = { _tag: tag, member }
      for (const queue of listeners) Queue.unsafeOffer(queue, change)
    }
    // Rooms that span nodes: unit names are claimed cluster-wide, so a second connect anywhere replaces the first.
    const claims = rooms.spansNodes ? Option.getOrUndefined(yield* Effect.serviceOption(Claims)) : undefined
    const claimOf = new Map<Seat, Claim>()
    const claimScope = (member: UnitMember) => `droneengage/${member.accountId}`

    /** accountId → unitName → seat: unit names are unique per account. */
    const accounts = new Map<string, Map<string, Seat>>()

    /**
     * A unit's rooms. Its own room (for messages to it by name) only where it may sit on another node: on one
     * node it is found in `accounts` and sent to directly, since a native topic per unit cost ~1 KB per idle unit.
     */
    const roomsOf = (seat: Seat): ReadonlyArray<string> => {
      const { everyone, gcs, agents } = seat.rooms
      const group = seat.member.actorType === "g" ? gcs : agents
      return rooms.spansNodes ? [everyone, group, unitRoom(seat.rooms.prefix, seat.member.unitName)] : [everyone, group]
    }

    /** A unit of the sender's group on this node, by name (single node: there are no unit rooms). */
    const localUnit = (seat: Seat, unitName: string): Seat | undefined => {
      const target = accounts.get(seat.member.accountId)?.get(unitName)
      return target?.inGroup && target.member.group === seat.member.group ? target : undefined
    }

    const joinRooms = (seat: Seat) => {
      const member = { id: seat.member.unitName, info: seat.member.actorType }
      return Effect.forEach(roomsOf(seat), (room) => rooms.join(room, seat.connection, member), { discard: true })
    }

    /** The generic rooms can join and leave on the spot right now (see RoomsService.joinNow). */
    const syncRooms = claims === undefined && rooms.joinNow !== undefined && rooms.leaveNow !== undefined
    const joinRoomsNow = (seat: Seat): boolean => {
      const member = { id: seat.member.unitName, info: seat.member.actorType }
      for (const room of roomsOf(seat)) if (!rooms.joinNow!(room, seat.connection, member)) return false
      return true
    }
    const leaveRoomsNow = (seat: Seat): boolean => {
      if (!seat.inGroup) return true
      for (const room of roomsOf(seat)) if (!rooms.leaveNow!(room, seat.connection)) return false
      seat.inGroup = false
      return true
    }

    const leaveRooms = (seat: Seat) =>
      Effect.suspend(() => {
        if (!seat.inGroup) return Effect.void
        seat.inGroup = false
        return Effect.forEach(roomsOf(seat), (room) => rooms.leave(room, seat.connection), { discard: true })
      })

    /** Takes a seat out of its account; false when it was already replaced or gone. */
    const removeSeat = (seat: Seat) =>
      Effect.suspend(() => {
        const units = accounts.get(seat.member.accountId)
        if (!units || units.get(seat.member.unitName) !== seat) return Effect.succeed(false)
        units.delete(seat.member.unitName)
        if (units.size === 0) accounts.delete(seat.member.accountId)
        unitsGauge.dec()
        const claim = claimOf.get(seat)
        claimOf.delete(seat)
        return Effect.as(Effect.zipRight(claim ? claims!.release(claim) : Effect.void, leaveRooms(seat)), true)
      })

    /** Out of the rooms first, so the replaced socket hears nothing more, then closed with 4004. */
    const replace = (previous: Seat) =>
      Effect.flatMap(removeSeat(previous), (removed) => {
        if (!removed) return Effect.void
        previous.connection.close(CloseCodes.replaced)
        return Effect.sync(() => announce("Left", previous.member))
      })

    const admits = (member: UnitMember, instanceLimit: number) => {
      if (instanceLimit <= 0) return true
      const units = accounts.get(member.accountId)
      if (!units) return true
      return units.size - (units.has(member.unitName) ? 1 : 0) < instanceLimit
    }

    /** The room an audience names and how many of this node's units hear it (the sender never does). */
    const deliver = (seat: Seat, audience: Audience, frame: WireMessage): DeliveryResult => {
      if (!seat.inGroup) return { _tag: "NotInGroup" }
      const self = seat.member.actorType
      let room: string
      let recipients: number
      switch (audience._tag) {
        case "Everyone":
          room = seat.rooms.everyone
          recipients = rooms.localCount(room) - 1
          break
        case "Gcs":
          room = seat.rooms.gcs
          recipients = rooms.localCount(room) - (self === "g" ? 1 : 0)
          break
        case "Agents":
          room = seat.rooms.agents
          recipients = rooms.localCount(room) - (self === "d" ? 1 : 0)
          break
        case "Unit": {
          if (!rooms.spansNodes) {
            const target = localUnit(seat, audience.unitName)
            if (target === undefined) return { _tag: "TargetNotFound", unitName: audience.unitName }
            routedBy.Unit.inc()
            if (target === seat) return { _tag: "Delivered", recipients: 0 }
            target.connection.send(frame)
            deliveries.inc(1)
            return { _tag: "Delivered", recipients: 1 }
          }
          // In a cluster the unit may sit on another node: its room reaches it wherever it is.
          room = unitRoom(seat.rooms.prefix, audience.unitName)
          recipients = audience.unitName === seat.member.unitName ? 0 : 1
        }
      }
      routedBy[audience._tag].inc()
      const toItself = audience._tag === "Unit" && audience.unitName === seat.member.unitName
      if (recipients > 0 || (rooms.spansNodes && !toItself)) {
        rooms.publish(room, frame, seat.connection)
        deliveries.inc(recipients)
      }
      return { _tag: "Delivered", recipients }
    }

    const service: UnitRoomsService = {
      admits,
      enter: (member, connection, instanceLimit) =>
        Effect.gen(function* () {
          const refused = new InstanceLimitReached({ accountId: member.accountId, limit: instanceLimit })
          if (!admits(member, instanceLimit)) return yield* refused
          const seat = seatOf(member, connection)
          // A connect of this name elsewhere may replace this one before it is seated: then it is never seated.
          let displaced = false
          const onReplaced = Effect.suspend(() => {
            displaced = true
            return replace(seat)
          })
          // Across nodes the account's units are counted and this one claimed in one atomic step.
          const claim = claims
            ? instanceLimit > 0
              ? yield* claims.claimWithin(claimScope(member), member.unitName, instanceLimit, onReplaced)
              : Option.some(yield* claims.claim(claimScope(member), member.unitName, onReplaced))
            : Option.none()
          if (claims && Option.isNone(claim)) return yield* refused
          const previous = accounts.get(member.accountId)?.get(member.unitName)
          if (previous) yield* replace(previous)
          if (displaced) {
            connection.close(CloseCodes.replaced)
            return yield* refused
          }
          let units = accounts.get(member.accountId)
          if (!units) accounts.set(member.accountId, (units = new Map()))
          // Another connect of this name on this node may have taken the seat while the broker answered.
          if (units.has(member.unitName) && Option.isSome(claim)) {
            yield* claims!.release(claim.value)
            return yield* refused
          }
          units.set(member.unitName, seat)
          unitsGauge.inc()
          if (Option.isSome(claim)) claimOf.set(seat, claim.value)
          yield* joinRooms(seat)
          announce("Entered", member)
          return seat
        }),
      enterNow: (member, connection, instanceLimit) => {
        if (!syncRooms) return undefined
        if (!admits(member, instanceLimit))
          return new InstanceLimitReached({ accountId: member.accountId, limit: instanceLimit })
        const seat = seatOf(member, connection)
        // Joins and leaves of the generic rooms are all on the spot or none (they depend on its listeners only).
        if (!joinRoomsNow(seat)) return undefined
        const units = accounts.get(member.accountId)
        const previous = units?.get(member.unitName)
        if (previous) {
          units!.delete(member.unitName)
          if (units!.size === 0) accounts.delete(member.accountId)
          unitsGauge.dec()
          leaveRoomsNow(previous)
          previous.connection.close(CloseCodes.replaced)
          announce("Left", previous.member)
        }
        let seats = accounts.get(member.accountId)
        if (!seats) accounts.set(member.accountId, (seats = new Map()))
        seats.set(member.unitName, seat)
        unitsGauge.inc()
        announce("Entered", member)
        return seat
      },
      exitNow: (seat) => {
        if (!syncRooms) return false
        const units = accounts.get(seat.member.accountId)
        if (!units || units.get(seat.member.unitName) !== seat) return true
        if (!leaveRoomsNow(seat)) return false
        units.delete(seat.member.unitName)
        if (units.size === 0) accounts.delete(seat.member.accountId)
        unitsGauge.dec()
        announce("Left", seat.member)
        return true
      },
      leaveGroup: leaveRooms,
      exit: (seat) =>
        Effect.map(removeSeat(seat), (removed) => {
          if (removed) announce("Left", seat.member)
        }),
      deliver,
      presence: (room) =>
        Effect.map(rooms.members(`${roomPrefix(room)}all`), (members) =>
          members.map((member) => ({ unitName: member.id, actorType: member.info as ActorType }))
        ),
      snapshot: Effect.sync(() => {
        const accountDetails: Record<string, Array<UnitPresence>> = {}
        for (const [accountId, units] of accounts) {
          accountDetails[accountId] = [...units.values()].map((seat) => ({
            unitName: seat.member.unitName,
            actorType: seat.member.actorType
          }))
        }
        return { accounts: [...accounts.keys()], accountDetails }
      }),
      changes: Effect.acquireRelease(
        Effect.tap(Queue.unbounded<RoomChange>(), (queue) => listeners.add(queue)),
        (queue) =>
          Effect.zipRight(
            Effect.sync(() => listeners.delete(queue)),
            Queue.shutdown(queue)
          )
      ),
      onChange: (changed) =>
        Effect.acquireRelease(
          Effect.sync(() => void changedListeners.add(changed)),
          () => Effect.sync(() => void changedListeners.delete(changed))
        )
    }
    return service
  })

/** DroneEngage's unit rooms on whatever Rooms the program provides (in-process by default). */
export const UnitRoomsLive = (serverName: string) => Layer.effect(UnitRooms, makeUnitRooms(serverName))
