import { brokerCounters } from "../Cluster/BrokerMetrics.ts"
import { Clock, Duration, Effect, Layer, PubSub, Runtime } from "effect"
import { type Broker, ClusterBroker } from "../Cluster/Broker.ts"
import {
  bodyText,
  decodeBatch,
  decodeEnvelope,
  encodeEnvelope,
  envelopeHeader,
  EnvelopeKind,
  isFrom
} from "../Cluster/Envelope.ts"
import { Metrics } from "../Observability/Metrics.ts"
import type { Connection, WireMessage } from "../Transport/Transport.ts"
import { makeInProcessRooms } from "./InProcessRooms.ts"
import { TurnBatches } from "./TurnBatches.ts"
import { RemoteRosters } from "./RemoteRosters.ts"
import { PresenceUnavailable, type RoomChange, type RoomMember, Rooms, type RoomsService } from "./Rooms.ts"
import { repeatEvery } from "../../src/shared/Sweeps.ts"

export interface BrokerRoomsOptions {
  /** How often this node tells the broker it is alive (default 1.5 s). */
  readonly heartbeat?: Duration.DurationInput
  /** How long a silent node's members stay listed (default 5 s). */
  readonly nodeTtl?: Duration.DurationInput
}

/** A member as stored in presence: join time and order on its node give the cluster-wide join order. */
interface StoredMember {
  readonly id: string
  readonly info: string
  readonly at: number
  readonly seq: number
}

interface LocalEntry {
  readonly key: string
  readonly entry: string
}

const changesChannel = "rooms/changes"
const roomChannel = (room: string) => `room/${room}`
const nodeOf = (key: string) => key.slice(0, key.indexOf("/"))

/**
 * Rooms spanning nodes. Local fan-out stays the in-process rooms on native topics; a node subscribes
 * on the broker to a room only while it has local members, so a publish costs one broker message
 * that reaches only the nodes hosting the room. Presence is shared: each member is an entry owned
 * by its node and listed while that node's heartbeat is alive.
 */
export const makeBrokerRooms = (options: BrokerRoomsOptions = {}) =>
  Effect.gen(function* () {
    const broker: Broker = yield* ClusterBroker
    const metrics = yield* Metrics
    const local = yield* makeInProcessRooms
    const runtime = yield* Effect.runtime<never>()
    const changes = yield* PubSub.unbounded<RoomChange>()
    const heartbeatEvery = Duration.decode(options.heartbeat ?? "1500 millis")
    const nodeTtl = Duration.toMillis(options.nodeTtl ?? "5 seconds")
    const header = envelopeHeader(broker.nodeId)
    const { sent, received, undelivered } = brokerCounters(metrics)

    const localEntries = new Map<string, Map<Connection<unknown>, LocalEntry>>()
    const remote = new RemoteRosters()
    const pendingRemovals: Array<readonly [string, string]> = []
    let sequence = 0
    let presenceStale = false
    let lastWarning = Number.NEGATIVE_INFINITY

    const warnUndelivered = () => {
      const now = Date.now()
      if (now - lastWarning < 10_000) return
      lastWarning = now
      Runtime.runFork(runtime)(
        Effect.logWarning(
          "cluster broker unreachable: messages for other nodes are being dropped (see switchboard_cluster_undelivered_total)"
        )
      )
    }
    const lost = () => {
      undelivered.inc()
      warnUndelivered()
    }
    const send = (channel: string, kind: EnvelopeKind, body: WireMessage) => {
      if (broker.publish(channel, encodeEnvelope(header, kind, body), lost)) sent.inc()
      else lost()
    }
    /** One broker message per room and turn; if it is refused or lost, each of its frames is counted. */
    const batches = new TurnBatches(header, (room, envelope, frames) => {
      const lostAll = () => {
        for (let i = 0; i < frames; i++) lost()
      }
      if (broker.publish(roomChannel(room), envelope, lostAll)) sent.inc()
      else lostAll()
    })
    // Frames published in the turn the scope closes in still leave (the broker closes after this layer).
    yield* Effect.addFinalizer(() => Effect.sync(() => batches.flush()))

    /** Rooms whose protocol orders their frames itself (OrderedDelivery.receive): other nodes' frames go to it. */
    const receivers = new Map<string, (frame: WireMessage) => void>()
    const fromOtherNodes = (room: string) => {
      const toMembers = (frame: WireMessage) => local.publish(room, frame)
      return (bytes: Uint8Array) => deliverFromOtherNode(room, bytes, toMembers)
    }
    const deliverFromOtherNode = (room: string, bytes: Uint8Array, toMembers: (frame: WireMessage) => void) => {
      if (isFrom(bytes, header)) return
      received.inc()
      const envelope = decodeEnvelope(bytes)
      if (envelope === undefined) return
      const deliver = receivers.size === 0 ? toMembers : (receivers.get(room) ?? toMembers)
      if (envelope.kind === EnvelopeKind.batch) {
        for (const frame of decodeBatch(envelope.body) ?? []) deliver(frame)
      } else if (envelope.kind <= EnvelopeKind.binary)
        deliver(envelope.kind === EnvelopeKind.text ? bodyText(envelope.body) : envelope.body)
    }
    /** The broker half of a publish: queued for the end of the turn, or counted as lost while the broker is away. */
    const toOtherNodes = (room: string, frame: WireMessage) => {
      if (broker.isUp()) batches.add(room, frame)
      else lost()
    }
    const changeOf = (kind: EnvelopeKind, body: Uint8Array): RoomChange | undefined => {
      try {
        const { room, id, info } = JSON.parse(bodyText(body)) as { room: string; id: string; info: string }
        const member = { id, info }
        return kind === EnvelopeKind.joined ? { _tag: "Joined", room, member } : { _tag: "Left", room, member }
      } catch {
        return undefined
      }
    }
    yield* broker.subscribe(changesChannel, (bytes) => {
      if (isFrom(bytes, header)) return
      const envelope = decodeEnvelope(bytes)
      const change =
        envelope && envelope.kind >= EnvelopeKind.joined ? changeOf(envelope.kind, envelope.body) : undefined
      if (!change) return
      if (change._tag === "Joined") remote.joined(change.room, envelope!.nodeId, change.member)
      else remote.left(change.room, envelope!.nodeId, change.member.id)
      Runtime.runSync(runtime)(PubSub.publish(changes, change))
    })
    yield* Effect.addFinalizer(() => broker.unsubscribe(changesChannel))

    const announce = (change: RoomChange) =>
      Effect.zipRight(
        PubSub.publish(changes, change),
        Effect.sync(() => {
          // Room frames published before this join or leave reach the broker before it, as unbatched.
          batches.flush()
          send(
            changesChannel,
            change._tag === "Joined" ? EnvelopeKind.joined : EnvelopeKind.left,
            JSON.stringify({ room: change.room, ...change.member })
          )
        })
      )

    /** Marks presence for repair at the next heartbeat; logs once per outage, not once per failed call. */
    const presenceFailed = (what: string) => (error: Error) =>
      Effect.suspend(() => {
        const first = !presenceStale
        presenceStale = true
        return first
          ? Effect.logWarning(`cluster presence: ${what} deferred until the broker returns (${error.message})`)
          : Effect.void
      })

    /** Writes this node's entries again (after an outage or an expiry) and retries removals that failed. */
    const repairPresence = Effect.gen(function* () {
      presenceStale = false
      for (const [room, entries] of localEntries)
        for (const { key, entry } of entries.values()) yield* broker.presence.put(room, key, entry)
      while (pendingRemovals.length > 0) {
        const [room, key] = pendingRemovals[0]!
        yield* broker.presence.remove(room, [key])
        pendingRemovals.shift()
      }
    })
    /**
     * Until then presence may still miss live nodes: this node's own liveness key was found gone (the broker lost its
     * data, or this node was away past its TTL), and each other node writes its entries again at its first heartbeat
     * back; one that has not within a node TTL counts as dead, as it would have without the loss.
     */
    let presenceSettlesAt = 0
    const settling = (now: number) => now < presenceSettlesAt
    /** Members of nodes that died, in rooms this node listed: reported as expired leaves, once. */
    const expireDeadNodes = Effect.gen(function* () {
      const nodes = remote.nodes()
      const now = yield* Clock.currentTimeMillis
      if (settling(now)) return
      const alive = nodes.length === 0 ? new Set<string>() : yield* broker.presence.alive(nodes)
      const gone = remote.expire(
        (nodeId) => !alive.has(nodeId),
        (room) => localEntries.has(room),
        now - 2 * Duration.toMillis(heartbeatEvery)
      )
      for (const [room, member] of gone) yield* PubSub.publish(changes, { _tag: "Left", room, member, expired: true })
    })
    let started = false
    const heartbeat = Effect.gen(function* () {
      const wasAlive = yield* broker.presence.heartbeat(broker.nodeId, nodeTtl)
      if (!wasAlive && started) presenceSettlesAt = (yield* Clock.currentTimeMillis) + nodeTtl
      if (!wasAlive || presenceStale || pendingRemovals.length > 0) yield* repairPresence
      yield* expireDeadNodes
    }).pipe(Effect.catchAll(presenceFailed("heartbeat")))
    yield* heartbeat
    started = true
    yield* repeatEvery("cluster heartbeat", heartbeatEvery, () => heartbeat)
    const resumeCallbacks = new Set<() => void>()
    // This node's presence is written again before anyone is told the broker is back: what it sends then (chat's
    // catch-up marker) reaches nodes that may read presence at once, and a lost liveness key starts the settling.
    broker.onReconnect(() => {
      presenceStale = true
      Runtime.runFork(runtime)(
        heartbeat.pipe(
          Effect.ensuring(
            Effect.sync(() => {
              for (const callback of resumeCallbacks) callback()
            })
          )
        )
      )
    })

    /** Members of every live node in join order; a member of a dead node is pruned and reported as an expired leave. */
    const membersExact = (room: string) =>
      Effect.gen(function* () {
        const own = [...(localEntries.get(room)?.values() ?? [])].map(({ key, entry }) => [key, entry] as const)
        const listed = yield* broker.presence.list(room)
        const others = listed.filter(([key]) => nodeOf(key) !== broker.nodeId)
        const otherNodes = [...new Set(others.map(([key]) => nodeOf(key)))]
        // While presence settles a node not alive yet may only not have written its key again: none is pruned.
        const alive = settling(yield* Clock.currentTimeMillis)
          ? new Set(otherNodes)
          : yield* broker.presence.alive(otherNodes)
        const dead = others.filter(([key]) => !alive.has(nodeOf(key)))
        if (dead.length > 0) {
          yield* broker.presence.remove(
            room,
            dead.map(([key]) => key)
          )
          for (const [key, entry] of dead) {
            const { id, info } = JSON.parse(entry) as StoredMember
            // A member this node tracked is reported as expired (its clients saw it); one the heartbeat
            // already reported, or never saw in a tracked room, not again.
            const tracked = remote.tracks(room)
            const expired = remote.left(room, nodeOf(key), id) !== undefined
            if (!expired && tracked) continue
            const change: RoomChange = { _tag: "Left", room, member: { id, info }, ...(expired ? { expired } : {}) }
            yield* PubSub.publish(changes, change)
          }
        }
        const listedAt = yield* Clock.currentTimeMillis
        remote.seed(
          room,
          listedAt,
          others.flatMap(([key, entry]) => {
            if (!alive.has(nodeOf(key))) return []
            const { id, info } = JSON.parse(entry) as StoredMember
            return [[nodeOf(key), { id, info }] as const]
          })
        )
        const rows = [...own, ...others.filter(([key]) => alive.has(nodeOf(key)))].map(([key, entry]) => ({
          key,
          member: JSON.parse(entry) as StoredMember
        }))
        rows.sort((a, b) => a.member.at - b.member.at || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
        return rows.map(({ member }): RoomMember => ({ id: member.id, info: member.info }))
      }).pipe(Effect.mapError((error) => new PresenceUnavailable(error.message)))

    const service: RoomsService = {
      join: (room, connection, member) =>
        Effect.gen(function* () {
          const before = local.localCount(room)
          yield* local.join(room, connection, member)
          if (local.localCount(room) === before) return
          if (before === 0) yield* broker.subscribe(roomChannel(room), fromOtherNodes(room))
          const at = yield* Clock.currentTimeMillis
          const seq = ++sequence
          const stored: StoredMember = { id: member.id, info: member.info, at, seq }
          const entry = { key: `${broker.nodeId}/${seq}`, entry: JSON.stringify(stored) }
          let entries = localEntries.get(room)
          if (!entries) localEntries.set(room, (entries = new Map()))
          entries.set(connection, entry)
          yield* broker.presence.put(room, entry.key, entry.entry).pipe(Effect.catchAll(presenceFailed("join")))
          yield* announce({ _tag: "Joined", room, member })
        }),
      leave: (room, connection) =>
        Effect.gen(function* () {
          const entries = localEntries.get(room)
          const mine = entries?.get(connection)
          yield* local.leave(room, connection)
          if (!entries || !mine) return
          entries.delete(connection)
          if (entries.size === 0) localEntries.delete(room)
          if (local.localCount(room) === 0) yield* broker.unsubscribe(roomChannel(room))
          yield* broker.presence.remove(room, [mine.key]).pipe(
            Effect.catchAll((error) =>
              Effect.zipRight(
                Effect.sync(() => pendingRemovals.push([room, mine.key])),
                presenceFailed("leave")(error)
              )
            )
          )
          const { id, info } = JSON.parse(mine.entry) as StoredMember
          yield* announce({ _tag: "Left", room, member: { id, info } })
        }),
      publish: (room, frame, except) => {
        local.publish(room, frame, except)
        // While the broker is known to be away the frame is counted as lost now, not at the end of the turn.
        toOtherNodes(room, frame)
      },
      ordered: {
        receive: (room, receive) => {
          receivers.set(room, receive)
          return () => {
            if (receivers.get(room) === receive) receivers.delete(room)
          }
        },
        here: local.publish,
        elsewhere: toOtherNodes,
        resumed: (callback) => {
          resumeCallbacks.add(callback)
          return () => void resumeCallbacks.delete(callback)
        },
        presenceSettled: Effect.flatMap(Clock.currentTimeMillis, (now) =>
          settling(now) ? Effect.sleep(presenceSettlesAt - now) : Effect.void
        )
      },
      members: (room) =>
        membersExact(room).pipe(
          Effect.catchAll((error) =>
            Effect.zipRight(
              Effect.logWarning(`cluster presence unreachable, listing this node's members only (${error.message})`),
              local.members(room)
            )
          )
        ),
      membersExact,
      localCount: local.localCount,
      spansNodes: true,
      changes: PubSub.subscribe(changes)
    }
    return service
  })

/** Rooms across the nodes of a cluster; needs a ClusterBroker (memory, Redis or NATS) and Metrics. */
export const BrokerRoomsLive = (options: BrokerRoomsOptions = {}) => Layer.scoped(Rooms, makeBrokerRooms(options))
