import { Clock, Effect } from "effect"
import {
  type Broker,
  BrokerUnavailable,
  type ClaimStore,
  closedRecordText,
  heldRecordText,
  parseHeldRecord,
  recordWritable,
  type CounterStore,
  holderLiveness,
  type PresenceStore,
  type RecordStore
} from "./Broker.ts"

/**
 * The broker of several nodes in one process: what the cluster tests run on, and the shape the
 * Redis and NATS brokers follow. Delivery is synchronous and in order. `setDown` simulates an outage.
 */
export class MemoryBrokerHub {
  private readonly channels = new Map<string, Map<string, (bytes: Uint8Array) => void>>()
  private readonly rooms = new Map<string, Map<string, string>>()
  private readonly aliveUntil = new Map<string, number>()
  private readonly claimed = new Map<string, Map<string, string>>()
  private readonly counted = new Map<string, { n: number; until: number }>()
  private readonly maxima = new Map<string, number>()
  private readonly stored = new Map<string, { text: string; until: number }>()
  private readonly reconnects = new Map<string, Array<() => void>>()
  private readonly disconnects = new Map<string, Array<() => void>>()
  private readonly killed = new Set<string>()
  private down = false
  /** Broker messages delivered, per receiving node. */
  readonly received = new Map<string, number>()

  /** A node's view of the hub; `forget` (node killed) drops its subscriptions. */
  node(nodeId: string): Broker {
    const unavailable = () => new BrokerUnavailable("memory broker", "down")
    const guard = <A>(run: (now: number) => A) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        this.down || this.killed.has(nodeId) ? Effect.fail(unavailable()) : Effect.sync(() => run(now))
      )
    const presence: PresenceStore = {
      put: (room, key, entry) =>
        guard(() => {
          let entries = this.rooms.get(room)
          if (!entries) this.rooms.set(room, (entries = new Map()))
          entries.set(key, entry)
        }),
      remove: (room, keys) =>
        guard(() => {
          const entries = this.rooms.get(room)
          for (const key of keys) entries?.delete(key)
          if (entries?.size === 0) this.rooms.delete(room)
        }),
      list: (room) => guard(() => [...(this.rooms.get(room) ?? [])]),
      heartbeat: (id, ttlMillis) =>
        guard((now) => {
          const wasAlive = (this.aliveUntil.get(id) ?? 0) > now
          this.aliveUntil.set(id, now + ttlMillis)
          return wasAlive
        }),
      alive: (ids) => guard((now) => new Set(ids.filter((id) => (this.aliveUntil.get(id) ?? 0) > now)))
    }
    const isAlive = (id: string, now: number) => (this.aliveUntil.get(id) ?? 0) > now
    const scopeOf = (scope: string) => {
      let names = this.claimed.get(scope)
      if (!names) this.claimed.set(scope, (names = new Map()))
      return names
    }
    const claims: ClaimStore = {
      take: (scope, name, holder, mode) =>
        guard((now) => {
          const names = scopeOf(scope)
          const previous = names.get(name)
          if (mode === "ifFree" && previous !== undefined && isAlive(holderLiveness(previous), now))
            return { taken: false, previous }
          if (typeof mode === "object") {
            let others = 0
            for (const [other, holding] of names) if (other !== name && isAlive(holderLiveness(holding), now)) others++
            if (others >= mode.within) return { taken: false, previous }
          }
          names.set(name, holder)
          return { taken: true, previous }
        }),
      release: (scope, name, holder) =>
        guard(() => {
          const names = this.claimed.get(scope)
          if (names?.get(name) === holder) names.delete(name)
        }),
      get: (scope, name) => guard(() => this.claimed.get(scope)?.get(name)),
      list: (scope) => guard(() => [...(this.claimed.get(scope) ?? [])])
    }
    const counters: CounterStore = {
      add: (key, by, windowMillis) =>
        guard((now) => {
          const current = this.counted.get(key)
          if (current === undefined || current.until <= now) {
            const fresh = { n: by, until: windowMillis === undefined ? Number.POSITIVE_INFINITY : now + windowMillis }
            this.counted.set(key, fresh)
            return fresh.n
          }
          current.n += by
          return current.n
        }),
      raise: (key, value) =>
        guard(() => {
          const previous = this.maxima.get(key) ?? -1
          if (value > previous) this.maxima.set(key, value)
          return previous
        })
    }
    /** The stored text of a record, or undefined once it has expired (Clock time). */
    const storedText = (key: string, now: number) => {
      const record = this.stored.get(key)
      if (record !== undefined && record.until <= now) this.stored.delete(key)
      return record !== undefined && record.until > now ? record.text : undefined
    }
    /** Each check and write is one synchronous step: the hub's compare-and-set. */
    const writeIf = (key: string, text: string, holder: string, mode: "take" | "keep" | "close", ttlMillis: number) =>
      guard((now) => {
        if (!recordWritable(parseHeldRecord(storedText(key, now)), holder, mode)) return false
        this.stored.set(key, { text, until: now + ttlMillis })
        return true
      })
    const records: RecordStore = {
      get: (key) =>
        guard((now) => {
          const record = parseHeldRecord(storedText(key, now))
          return record === "closed" ? undefined : record
        }),
      put: (key, holder, value, ttlMillis, mode) =>
        writeIf(key, heldRecordText(holder, value), holder, mode, ttlMillis),
      close: (key, holder, ttlMillis) => writeIf(key, closedRecordText, holder, "close", ttlMillis)
    }
    return {
      kind: "memory",
      nodeId,
      publish: (channel, bytes) => {
        if (this.down || this.killed.has(nodeId)) return false
        const subscribers = this.channels.get(channel)
        if (!subscribers) return true
        for (const [receiver, deliver] of subscribers) {
          this.received.set(receiver, (this.received.get(receiver) ?? 0) + 1)
          deliver(bytes)
        }
        return true
      },
      subscribe: (channel, deliver) =>
        Effect.sync(() => {
          if (this.killed.has(nodeId)) return
          let subscribers = this.channels.get(channel)
          if (!subscribers) this.channels.set(channel, (subscribers = new Map()))
          subscribers.set(nodeId, deliver)
        }),
      unsubscribe: (channel) =>
        Effect.sync(() => {
          const subscribers = this.channels.get(channel)
          subscribers?.delete(nodeId)
          if (subscribers?.size === 0) this.channels.delete(channel)
        }),
      isUp: () => !this.down && !this.killed.has(nodeId),
      onReconnect: (callback) => {
        const callbacks = this.reconnects.get(nodeId) ?? []
        this.reconnects.set(nodeId, [...callbacks, callback])
      },
      onDisconnect: (callback) => {
        const callbacks = this.disconnects.get(nodeId) ?? []
        this.disconnects.set(nodeId, [...callbacks, callback])
      },
      presence,
      claims,
      counters,
      records,
      sever: Effect.sync(() => this.kill(nodeId))
    }
  }

  /** A node dies: its subscriptions go at once, it can do nothing more; its presence entries stay until its heartbeat expires. */
  kill(nodeId: string) {
    this.killed.add(nodeId)
    for (const [channel, subscribers] of this.channels) {
      subscribers.delete(nodeId)
      if (subscribers.size === 0) this.channels.delete(channel)
    }
    this.reconnects.delete(nodeId)
    this.disconnects.delete(nodeId)
  }

  /** Outage simulation: while down, publishes are refused and presence calls fail; coming back runs every node's reconnect callbacks. */
  setDown(down: boolean) {
    const wasDown = this.down
    this.down = down
    if (wasDown && !down) for (const callbacks of this.reconnects.values()) for (const callback of callbacks) callback()
    if (!wasDown && down)
      for (const callbacks of this.disconnects.values()) for (const callback of callbacks) callback()
  }

  /** Nodes subscribed to a channel now. */
  subscribers(channel: string): ReadonlyArray<string> {
    return [...(this.channels.get(channel)?.keys() ?? [])]
  }
}
